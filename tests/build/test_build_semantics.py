"""More of Docker's documented semantics: existing directories as destinations, opaque
directories, ONBUILD triggers, early refusals, zstd layers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import do_build, rootfs_of

from pallet.build import BuildOptions, Progress, build
from pallet.errors import BuildError
from pallet.oci import mediatypes as mt
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]


def test_existing_directory_and_opaque_replacement(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context(
        {"a.txt": "A\n"},
        "FROM busybox\nCOPY a.txt /tmp\n"
        "RUN rm -rf /var/spool && mkdir -p /var/spool/new && touch /var/spool/new/f\n",
    )
    result = do_build(store, ctx)
    fs = rootfs_of(store, result, tmp_path / "fs")
    # an existing directory as destination receives the file even without a slash
    assert (fs / "tmp/a.txt").read_text() == "A\n"
    # the directory was replaced: nothing of the lower one survives (opaque whiteout)
    assert sorted(os.listdir(fs / "var/spool")) == ["new"]


def test_onbuild_triggers_run_in_the_child(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    parent = make_context(
        {},
        "FROM busybox\nONBUILD COPY marker.txt /from-trigger.txt\n"
        'ONBUILD RUN echo "ran by trigger" > /trigger-ran\n',
    )
    do_build(store, parent, tags=("onbuild-parent:1",))
    child = make_context({"marker.txt": "child context\n"}, "FROM onbuild-parent:1\n")
    result = do_build(store, child)
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert (fs / "from-trigger.txt").read_text() == "child context\n"
    assert (fs / "trigger-ran").read_text() == "ran by trigger\n"
    assert result.config.config.on_build is None  # triggers do not pass to grandchildren


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("COPY a.txt b.txt /nodir", "destination must be a directory and end with a /"),
        ("COPY --chmod=u+q a.txt /x", "--chmod=u+q"),
        ("ADD --checksum=sha256:00 a.txt /x", "--checksum is only supported for URL"),
        ("RUN --mount=type=ssh,required true", "RUN needs ssh agent 'default'"),
    ],
)
def test_refused_before_any_step_runs(
    store: Store, make_context: MakeContext, dockerfile: str, expected: str
) -> None:
    ctx = make_context({"a.txt": "a", "b.txt": "b"}, f"FROM busybox\nRUN echo ran\n{dockerfile}\n")
    out = io.StringIO()
    with pytest.raises(BuildError) as err:
        build(store, BuildOptions(context=ctx), Progress("plain", out))
    assert expected in str(err.value)
    assert out.getvalue() == ""


def test_unknown_user_fails_the_run_step(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({}, "FROM busybox\nUSER ghost\nRUN true\n")
    with pytest.raises(BuildError, match="unable to find user ghost"):
        do_build(store, ctx)


def test_zstd_layers(store: Store, make_context: MakeContext, tmp_path: Path) -> None:
    ctx = make_context({"z.txt": "zstd\n"}, "FROM busybox\nCOPY z.txt /z.txt\n")
    result = do_build(store, ctx, compression="zstd", compression_level=3)
    manifest = store.load_manifest(result.manifest)
    assert manifest.layers[-1].media_type == mt.OCI_LAYER_ZSTD
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert (fs / "z.txt").read_text() == "zstd\n"


def test_copy_link_layer_is_reused_when_the_steps_below_change(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context(
        {"a.txt": "linked\n"},
        "FROM busybox\nARG V=1\nRUN echo $V > /v\nCOPY --link --chown=mail a.txt /etc/linked/a.txt\n",
    )
    first = do_build(store, ctx, build_args={"V": "1"})
    out = io.StringIO()
    second = build(store, BuildOptions(context=ctx, build_args={"V": "2"}), Progress("plain", out))
    log = out.getvalue()
    assert (second.cached_steps, second.executed_steps) == (1, 1)
    copy_line = next(line for line in log.splitlines() if "COPY a.txt /etc/linked/a.txt" in line)
    number = copy_line.split()[0]
    assert f"{number} CACHED" in log
    assert first.config.diff_ids[-1] == second.config.diff_ids[-1]  # the very same layer
    fs = rootfs_of(store, second, tmp_path / "fs")
    assert (fs / "v").read_text() == "2\n"
    assert (fs / "etc/linked/a.txt").read_text() == "linked\n"
    assert os.stat(fs / "etc/linked/a.txt").st_uid == 8  # --chown names from the image below
    assert (fs / "etc/passwd").exists()  # the layer adds to /etc, it does not replace it


def test_no_cache_filter_reruns_only_the_named_stage(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context(
        {},
        "FROM busybox AS deps\nRUN echo deps > /deps\n"
        "FROM busybox AS app\nCOPY --from=deps /deps /deps\nRUN echo app > /app\n",
    )
    do_build(store, ctx)
    again = do_build(store, ctx, no_cache_filter=("app",))
    # deps is cached; app's two steps run again
    assert (again.cached_steps, again.executed_steps) == (1, 2)


def test_hostile_context_cannot_reach_the_host(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    import tarfile

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tf:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    ctx = make_context(
        {"outside": ("symlink", "/etc/hostname"), "up": ("symlink", "../../..")},
        "FROM scratch\nCOPY outside /x\n",
    )
    # a symlink source resolves inside the context, never to the host's file
    with pytest.raises(BuildError, match="outside: not found in the build context"):
        do_build(store, ctx)
    with pytest.raises(BuildError, match="not found in the build context"):
        do_build(store, make_context({}, "FROM scratch\nCOPY ../../etc/hostname /x\n"))
    (ctx / "evil.tar").write_bytes(evil.getvalue())
    (ctx / "Dockerfile").write_text("FROM scratch\nADD evil.tar /dest/\n")
    with pytest.raises(BuildError, match=r"cannot extract evil\.tar"):
        do_build(store, ctx)


def test_exec_form_shell_and_remaining_config(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    dockerfile = """\
FROM busybox
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
SHELL ["/bin/sh", "-ec"]
RUN echo "$0 $-" > /shell-flags
VOLUME /data
HEALTHCHECK --interval=30s --retries=2 CMD wget -q localhost || exit 1
MAINTAINER someone@example.com
"""
    result = do_build(store, make_context({}, dockerfile))
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert (fs / "exec").read_text() == "exec-form\n"
    assert "e" in (fs / "shell-flags").read_text().split()[1]  # SHELL's -e is in effect
    cfg = result.config
    assert cfg.config.shell == ("/bin/sh", "-ec")
    assert cfg.config.volumes == ("/data",)
    check = dict(cfg.config.healthcheck or {})
    assert check["Test"] == ["CMD-SHELL", "wget -q localhost || exit 1"]
    assert check["Retries"] == 2 and check["Interval"] == 30 * 10**9
    assert cfg.author == "someone@example.com"
    assert [h.created_by for h in cfg.history[-6:-4]] == [
        "RUN /bin/sh -c echo exec-form > /exec # buildkit",
        "SHELL [/bin/sh -ec]",
    ]


def test_fifo_in_context_is_recreated_not_read(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    import stat

    ctx = make_context({"dir/f.txt": "x"}, "FROM busybox\nCOPY dir /l/\n")
    os.mkfifo(ctx / "dir" / "pipe")  # reading it would hang the build
    result = do_build(store, ctx)
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert stat.S_ISFIFO(os.lstat(fs / "l/pipe").st_mode)
    assert (fs / "l/f.txt").read_text() == "x"


def test_copy_from_stage_of_a_globbed_symlink_follows_the_stage(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    # the matched symlink keeps its own name; the stage's content is still in the key
    dockerfile = (
        "FROM busybox AS src\nCOPY v.txt /v.txt\nRUN ln -s v.txt /link.txt\n"
        "FROM scratch\nCOPY --from=src /*.txt /out/\n"
    )
    ctx = make_context({"v.txt": "one\n"}, dockerfile)
    first = rootfs_of(store, do_build(store, ctx), tmp_path / "one")
    assert (first / "out/link.txt").read_text() == "one\n"
    (ctx / "v.txt").write_text("two\n")
    second = rootfs_of(store, do_build(store, ctx), tmp_path / "two")
    assert (second / "out/link.txt").read_text() == "two\n"
