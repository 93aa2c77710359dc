"""``pallet build`` through the real entry point: flags, progress, cache, errors, outputs."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import pallet_cli

from pallet.build import BuildOptions, Progress, build
from pallet.errors import PalletError
from pallet.images.lookup import find_image
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]

CACHE_DOCKERFILE = """\
FROM busybox
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copy
COPY b.txt /b.txt
"""


def _steps(stderr: str) -> dict[str, str]:
    """Each step title -> "CACHED" or "DONE", from BuildKit-style plain progress."""
    titles: dict[str, str] = {}
    for number, title in re.findall(r"^#(\d+) (\[.*)$", stderr, re.M):
        state = re.search(rf"^#{number} (CACHED|DONE)", stderr, re.M)
        titles[re.sub(r"^\[\S+ \d+/\d+\] ", "", title)] = state.group(1) if state else "?"
    return titles


def test_tags_labels_args_iidfile(store: Store, make_context: MakeContext, tmp_path: Path) -> None:
    ctx = make_context({}, "FROM busybox\nARG WHAT=default\nRUN echo $WHAT > /what\n")
    iid = tmp_path / "iid"
    proc = pallet_cli(
        store.root,
        "build",
        "-t",
        "demo:one",
        "-t",
        "demo:two",
        "--label",
        "team=build",
        "--build-arg",
        "WHAT=given",
        "--iidfile",
        str(iid),
        "-q",
        str(ctx),
    )
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert image_id.startswith("sha256:") and iid.read_text() == image_id
    assert "#" not in proc.stderr  # -q: no progress
    one, two = find_image(store, "demo:one"), find_image(store, "demo:two")
    assert one.id == two.id == image_id
    assert dict(one.config.config.labels or {}) == {"team": "build"}
    assert one.config.history[-1].created_by.startswith("RUN |1 WHAT=given /bin/sh -c")


def test_rebuild_is_cached_and_one_change_reruns_from_its_reader(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({"a.txt": "a1\n", "b.txt": "b1\n"}, CACHE_DOCKERFILE)
    first = pallet_cli(store.root, "build", "--progress=plain", str(ctx))
    assert first.returncode == 0, first.stderr
    assert set(_steps(first.stderr).values()) == {"DONE"}

    again = pallet_cli(store.root, "build", "--progress=plain", str(ctx))
    assert again.returncode == 0, again.stderr
    steps = _steps(again.stderr)
    assert [v for k, v in steps.items() if not k.startswith("FROM")] == ["CACHED"] * 4
    assert again.stdout == first.stdout  # same image ID, as Docker gives

    def api_build(**options: object) -> dict[str, str]:
        out = io.StringIO()
        build(store, BuildOptions(context=ctx, **options), Progress("plain", out))  # type: ignore[arg-type]
        return _steps(out.getvalue())

    (ctx / "b.txt").write_text("b2\n")
    changed_b = api_build()
    assert changed_b == {
        "FROM busybox": "DONE",
        "RUN /bin/sh -c echo one > /one": "CACHED",
        "COPY a.txt /a.txt": "CACHED",
        "RUN /bin/sh -c cat /a.txt > /copy": "CACHED",
        "COPY b.txt /b.txt": "DONE",
    }
    # only content counts: touching a file without changing it keeps the cache
    (ctx / "a.txt").write_text("a1\n")
    touched = api_build()
    assert touched["COPY a.txt /a.txt"] == "CACHED"
    (ctx / "a.txt").write_text("a2\n")
    changed_a = api_build()
    assert changed_a["RUN /bin/sh -c echo one > /one"] == "CACHED"
    assert changed_a["COPY a.txt /a.txt"] == "DONE"
    assert changed_a["RUN /bin/sh -c cat /a.txt > /copy"] == "DONE"

    no_cache = api_build(no_cache=True)
    assert "CACHED" not in no_cache.values()

    pruned = pallet_cli(store.root, "builder", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert re.match(r"removed \d+ cache entries", pruned.stdout)
    assert "CACHED" not in api_build().values()


def test_failing_run_shows_step_exit_code_and_output_tail(
    store: Store, make_context: MakeContext
) -> None:
    lines = "; ".join(f"echo line{i}" for i in range(40))
    ctx = make_context({}, f"FROM busybox\nRUN echo fine\nRUN {lines}; exit 7\nRUN echo never\n")
    proc = pallet_cli(store.root, "build", str(ctx))
    assert proc.returncode != 0
    error = proc.stderr[proc.stderr.index("error: ") :]
    assert "[stage-0 3/4] RUN /bin/sh -c echo line0" in error
    assert "exit code: 7" in error
    assert "line39" in error and "line0\n" not in error  # the tail, not everything
    assert "echo never" not in proc.stderr


def test_errors_before_any_step_runs(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo ran\nNOTANINSTRUCTION x\n")
    proc = pallet_cli(store.root, "build", str(ctx))
    assert proc.returncode != 0
    assert "NOTANINSTRUCTION" in proc.stderr.upper() and "#" not in proc.stderr
    for dockerfile, options, expected in (
        ("FROM busybox\nCOPY --from=nowhere /x /y\n", {}, "nowhere"),
        ("FROM busybox\n", {"platform": "linux/s390x"}, "s390x"),
        ("FROM localhost:1/absent/image:1\n", {}, "localhost:1/absent/image:1 is not in the store"),
    ):
        out = io.StringIO()
        with pytest.raises(PalletError) as err:
            build(
                store,
                BuildOptions(context=make_context({}, dockerfile), **options),  # type: ignore[arg-type]
                Progress("plain", out),
            )
        assert expected in str(err.value) and out.getvalue() == ""


def test_dockerfile_from_stdin_and_file_flag(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({"x": "x\n", "other/Dockerfile.alt": "FROM busybox\nCOPY x /alt\n"})
    proc = pallet_cli(
        store.root, "build", "-f", "-", "-t", "stdin:1", str(ctx), stdin="FROM busybox\nCOPY x /\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert find_image(store, "stdin:1").config.history[-1].created_by == "COPY x / # buildkit"
    alt = build(store, BuildOptions(context=ctx, dockerfile=ctx / "other/Dockerfile.alt"))
    assert alt.config.history[-1].created_by == "COPY x /alt # buildkit"


def test_outputs_oci_docker_local(store: Store, make_context: MakeContext, tmp_path: Path) -> None:
    ctx = make_context({"f.txt": "F\n"}, "FROM busybox\nCOPY f.txt /f.txt\nRUN rm /bin/vi\n")
    oci, docker, local = tmp_path / "img.oci.tar", tmp_path / "img.docker.tar", tmp_path / "root"
    fs_tar = tmp_path / "fs.tar"
    proc = pallet_cli(
        store.root,
        "build",
        "-t",
        "out:1",
        "-o",
        f"type=oci,dest={oci}",
        "-o",
        f"type=docker,dest={docker}",
        "-o",
        f"type=local,dest={local}",
        "-o",
        f"type=tar,dest={fs_tar}",
        str(ctx),
    )
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(oci) as tf:
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
        assert index["manifests"]
    with tarfile.open(docker) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert len(manifest[0]["Layers"]) == 3
    assert (local / "f.txt").read_text() == "F\n"
    assert (local / "bin/sh").exists() and not (local / "bin/vi").exists()
    with tarfile.open(fs_tar) as tf:
        names = set(tf.getnames())
        assert "f.txt" in names and "bin/sh" in names and "bin/vi" not in names
        assert not any(".wh." in n for n in names)  # whiteouts applied, not carried


def test_unused_build_arg_is_a_warning_not_an_error(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context({}, "FROM busybox\nARG USED\nENV U=$USED\n")
    proc = pallet_cli(
        store.root, "build", "-q", "--build-arg", "USED=1", "--build-arg", "NOPE=2",
        "--build-arg", "HTTP_PROXY=http://127.0.0.1:1", str(ctx),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[Warning] One or more build-args [NOPE] were not consumed" in proc.stderr
    assert find_image(store, proc.stdout.strip()).config.config.env_dict()["U"] == "1"
