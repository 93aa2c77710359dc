"""Dockerfiles and the image Docker documents for each: final filesystem (layers extracted
in order, whiteouts applied) and config (env, cmd, user, ports, labels, history, layers)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard
from build_kit import describe, do_build, rootfs_of

from pallet.errors import BuildError
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]


def test_copy_rules_and_metadata_instructions(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    dockerfile = """\
FROM busybox
ENV GREETING=hello
COPY a.txt /dst/
COPY a.txt /file
COPY dir /d2
COPY *.txt /glob/
COPY a.txt b.txt /multi/
COPY --chown=sync a.txt /own/user-only
COPY --chown=mail:wheel a.txt /own/user-group
COPY --chown=1234:5678 a.txt /own/numbers
COPY --chmod=0700 a.txt /mode/octal
COPY --chmod=u+x,g-r a.txt /mode/symbolic
COPY link.txt /followed
COPY --exclude=*.log dir /excluded/
COPY --parents dir/sub/deep.txt /par/
COPY . /all/
WORKDIR /work/deep
COPY a.txt relative.txt
RUN rm /bin/vi && echo "$GREETING" > /from-run && ln -s /from-run /run-link
LABEL org.example.team=build version=1
EXPOSE 80 8080/udp
USER nobody
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"""
    ctx = make_context(
        {
            "a.txt": "A\n",
            "b.txt": "B\n",
            "skip.tmp": "ignored\n",
            "dir/x": "X\n",
            "dir/sub/deep.txt": "deep\n",
            "dir/noise.log": "log\n",
            "dir/inner-link": ("symlink", "x"),
            "link.txt": ("symlink", "a.txt"),
            ".dockerignore": "*.tmp\n",
        },
        dockerfile,
    )
    os.chmod(ctx / "dir" / "x", 0o751)
    os.link(ctx / "dir" / "x", ctx / "dir" / "x-hardlink")
    result = do_build(store, ctx, tags=("conformance:one",))
    fs = rootfs_of(store, result, tmp_path / "fs")

    def text(rel: str) -> str:
        return (fs / rel).read_text()

    # destination rules: trailing slash = directory; none = the file's new name
    assert text("dst/a.txt") == "A\n" and describe(fs / "dst/a.txt") == ("file", 0o644, 0, 0)
    assert describe(fs / "file")[0] == "file" and text("file") == "A\n"
    # a directory source copies its contents, keeping modes; context files become root's
    assert text("d2/x") == "X\n" and describe(fs / "d2/x") == ("file", 0o751, 0, 0)
    assert text("d2/sub/deep.txt") == "deep\n"
    assert not (fs / "d2/dir").exists()
    assert os.readlink(fs / "d2/inner-link") == "x"
    assert os.stat(fs / "d2/x").st_ino == os.stat(fs / "d2/x-hardlink").st_ino
    # a matched symlink is copied as its target's content under its own name (fsutil)
    assert sorted(os.listdir(fs / "glob")) == ["a.txt", "b.txt", "link.txt"]
    assert describe(fs / "glob/link.txt")[0] == "file" and text("glob/link.txt") == "A\n"
    assert sorted(os.listdir(fs / "multi")) == ["a.txt", "b.txt"]
    # --chown: a user alone uses the same number as its group (Docker's documented rule)
    assert describe(fs / "own/user-only")[2:] == (4, 4)
    assert describe(fs / "own/user-group")[2:] == (8, 10)
    assert describe(fs / "own/numbers")[2:] == (1234, 5678)
    assert describe(fs / "mode/octal")[1] == 0o700
    assert describe(fs / "mode/symbolic")[1] == 0o704
    # a symlink named as the source is followed
    assert describe(fs / "followed")[0] == "file" and text("followed") == "A\n"
    assert sorted(os.listdir(fs / "excluded")) == ["inner-link", "sub", "x", "x-hardlink"]
    assert text("par/dir/sub/deep.txt") == "deep\n"
    # .dockerignore'd files never reach the image; the rest of the context does
    assert "skip.tmp" not in os.listdir(fs / "all")
    assert {"a.txt", "b.txt", "dir", "Dockerfile", ".dockerignore"} <= set(os.listdir(fs / "all"))
    # WORKDIR creates the directory; a relative destination is under it
    assert text("work/deep/relative.txt") == "A\n"
    # RUN's deletion is a whiteout applied on extraction
    assert not os.path.lexists(fs / "bin/vi") and (fs / "bin/sh").exists()
    assert text("from-run") == "hello\n" and os.readlink(fs / "run-link") == "/from-run"
    # no mount stub of the runtime leaks into the image
    assert not os.path.lexists(fs / "etc/resolv.conf")

    cfg = result.config.config
    assert "GREETING=hello" in (cfg.env or ())
    assert any(e.startswith("PATH=") for e in cfg.env or ())
    assert cfg.working_dir == "/work/deep"
    assert cfg.user == "nobody"
    assert cfg.exposed_ports == ("80/tcp", "8080/udp")
    assert dict(cfg.labels or {}) == {"org.example.team": "build", "version": "1"}
    assert cfg.stop_signal == "SIGTERM"
    assert cfg.entrypoint == ("/bin/sh", "-c") and cfg.cmd == ("echo hi",)
    # one layer per filesystem step (+1 for busybox), metadata steps are empty_layer
    fs_steps = 17
    assert len(result.config.diff_ids) == 1 + fs_steps
    history = result.config.history
    assert [h.created_by for h in history[-6:]] == [
        "LABEL org.example.team=build version=1",
        "EXPOSE map[80/tcp:{} 8080/udp:{}]",
        "USER nobody",
        "STOPSIGNAL SIGTERM",
        'ENTRYPOINT ["/bin/sh" "-c"]',
        'CMD ["echo hi"]',
    ]
    assert [
        h.empty_layer for h in history if h.created_by.startswith(("ENV", "LABEL", "USER"))
    ] == [
        True,
        True,
        True,
    ]
    assert history[-1].created_by == 'CMD ["echo hi"]' and history[-1].empty_layer
    assert history[2].created_by == "ENV GREETING=hello"
    assert history[3].created_by == "COPY a.txt /dst/ # buildkit"
    assert not history[3].empty_layer
    assert sum(not h.empty_layer for h in history) == len(result.config.diff_ids)


def test_multi_stage_builds_only_what_the_target_needs(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    dockerfile = """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/result.txt && chown 33:33 /out/result.txt \
 && mkdir -m 700 /private && touch /private/f && chown 33:33 /private
FROM busybox AS unused
RUN exit 1
FROM scratch AS final
COPY --from=builder /out/ /
COPY --from=busybox:latest /bin/busybox /bin/busybox
COPY --from=builder /private /copied
"""
    ctx = make_context({}, dockerfile)
    result = do_build(store, ctx)
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert sorted(os.listdir(fs)) == ["bin", "copied", "result.txt"]
    # a directory source gives its contents; the new destination is a plain 0755 root dir
    assert describe(fs / "copied") == ("dir", 0o755, 0, 0)
    assert describe(fs / "copied/f") == ("file", 0o644, 0, 0)
    # COPY --from keeps the owner the file has in the source stage
    assert describe(fs / "result.txt") == ("file", 0o644, 33, 33)
    assert (fs / "result.txt").read_text() == "built\n"
    assert len(result.config.diff_ids) == 3
    # --target picks an earlier stage; the failing stage still never runs
    target = do_build(store, ctx, target="builder")
    assert len(target.config.diff_ids) == 2


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o640
            tf.addfile(info, io.BytesIO(data))
        tool = tarfile.TarInfo("pkg/tool")  # setuid, owned by a user the host lacks
        tool.mode, tool.uid, tool.gid, tool.uname = 0o4755, 1234, 1234, "no-such-host-user"
        tool.size = 2
        tf.addfile(tool, io.BytesIO(b"#!"))
    return buf.getvalue()


def test_add_extracts_local_archives_and_copy_does_not(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    import bz2
    import gzip
    import lzma

    plain = _tar_bytes({"pkg/one.txt": b"one\n", "pkg/two.txt": b"two\n"})
    ctx = make_context(
        {
            "plain.tar": plain,
            "a.tar.gz": gzip.compress(plain),
            "a.tar.bz2": bz2.compress(plain),
            "a.tar.xz": lzma.compress(plain),
            "a.tar.zst": zstandard.ZstdCompressor().compress(plain),
            "notes.txt": "not an archive\n",
        },
        "FROM scratch\n"
        "ADD plain.tar /p/\nADD a.tar.gz /g/\nADD a.tar.bz2 /b/\nADD a.tar.xz /x/\n"
        "ADD a.tar.zst /z/\nADD notes.txt /n/\nCOPY a.tar.gz /copied/\nADD plain.tar /noslash\n",
    )
    result = do_build(store, ctx)
    fs = rootfs_of(store, result, tmp_path / "fs")
    for d in ("p", "g", "b", "x", "z"):
        assert (fs / d / "pkg/one.txt").read_bytes() == b"one\n", d
        assert describe(fs / d / "pkg/two.txt")[1] == 0o640
    assert (fs / "n/notes.txt").read_text() == "not an archive\n"
    # modes (setuid too) and numeric owners come from the archive
    assert describe(fs / "p/pkg/tool") == ("file", 0o4755, 1234, 1234)
    # an archive unpacks into the destination even without a trailing slash
    assert (fs / "noslash/pkg/one.txt").read_bytes() == b"one\n"
    assert sorted(os.listdir(fs / "copied")) == ["a.tar.gz"]


def test_heredocs_run_scripts_and_inline_files(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    dockerfile = """\
FROM busybox
ARG NAME=world
RUN <<EOF
echo "hello $NAME" > /greeting
echo '$NAME stays literal' > /literal
EOF
RUN <<EOF
#!/bin/sh
echo "from a shebang script: $0" > /shebang
EOF
COPY <<EOF /etc/app.conf
name=${NAME}
EOF
"""
    result = do_build(store, make_context({}, dockerfile))
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert (fs / "greeting").read_text() == "hello world\n"
    assert (fs / "literal").read_text() == "$NAME stays literal\n"
    assert (fs / "shebang").read_text() == "from a shebang script: /dev/pipes/EOF\n"
    assert (fs / "etc/app.conf").read_text() == "name=world\n"
    assert not os.path.lexists(fs / "dev/pipes")


def test_empty_diff_makes_no_layer(store: Store, make_context: MakeContext) -> None:
    dockerfile = "FROM busybox\nWORKDIR /tmp\nRUN true\nRUN echo nothing written\n"
    result = do_build(store, make_context({}, dockerfile))
    assert len(result.config.diff_ids) == 1
    steps = result.config.history[-3:]
    assert [h.empty_layer for h in steps] == [True, True, True]


def test_missing_source_names_the_dockerignore_pattern(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context(
        {"secret.key": "k", ".dockerignore": "*.md\n*.key\n"},
        "FROM busybox\nRUN echo first\nCOPY secret.key /\n",
    )
    with pytest.raises(BuildError) as err:
        do_build(store, ctx)
    assert "secret.key" in str(err.value) and "'*.key'" in str(err.value)
    ctx2 = make_context({}, "FROM busybox\nCOPY nothing-here /\n")
    with pytest.raises(BuildError, match="nothing-here: not found in the build context"):
        do_build(store, ctx2)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "file.bin").write_bytes(b"payload from 127.0.0.1\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_with_checksum(
    store: Store, make_context: MakeContext, http_server: str, tmp_path: Path
) -> None:
    import hashlib

    good = "sha256:" + hashlib.sha256(b"payload from 127.0.0.1\n").hexdigest()
    ctx = make_context({}, f"FROM scratch\nADD --checksum={good} {http_server}/file.bin /dl/\n")
    fs = rootfs_of(store, do_build(store, ctx), tmp_path / "fs")
    assert (fs / "dl/file.bin").read_bytes() == b"payload from 127.0.0.1\n"
    assert describe(fs / "dl/file.bin") == ("file", 0o600, 0, 0)

    bad = "sha256:" + "0" * 64
    ctx2 = make_context({}, f"FROM scratch\nADD --checksum={bad} {http_server}/file.bin /x\n")
    with pytest.raises(BuildError, match="checksum mismatch"):
        do_build(store, ctx2)
    ctx3 = make_context({}, "FROM scratch\nADD http://127.0.0.1:9/nothing /x\n")
    with pytest.raises(BuildError, match=r"cannot download http://127\.0\.0\.1:9/nothing"):
        do_build(store, ctx3)
