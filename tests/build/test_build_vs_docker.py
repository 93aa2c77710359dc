"""Differential test: Dockerfiles built by ``pallet build`` and by dockerd 20.10's BuildKit
(``DOCKER_BUILDKIT=1 docker build``, a private daemon from tests/docker_daemon.py) from
the same busybox image (``pallet save`` then ``docker load``), compared on what a user
of the image sees: the final filesystem (paths, types, modes, owners, contents, link
targets, hard-link groups; layers applied in order, whiteouts honoured), the number of
layers, the config fields of test_build_vs_buildah.py and the history (``created_by``
and ``empty_layer`` of every step: pallet writes BuildKit's text).

BuildKit is the reference pallet follows, but dockerd 20.10 embeds BuildKit 0.8, and
pallet follows today's. What 0.8 does differently is undone on docker's side before
comparing, and nothing else is:

- mount stubs: 0.8 leaves behind what it created for RUN's mounts, the mount points of
  ``RUN --mount`` targets (``/mnt``, ``/var/cache/app`` ...) and the new mtime of
  ``/etc`` (from the /etc/resolv.conf stub), so every RUN layer holds at least ``etc/``;
  later BuildKit removes empty stubs and restores the parent's times (executor/stubs.go);
- empty layers: 0.8 in dockerd keeps a step that changed nothing (WORKDIR of an existing
  directory, ``RUN true``) as a layer of its own; BuildKit's exporter makes it
  ``empty_layer`` with no layer, as pallet does.

Times (file mtimes, ``created``) are never compared. dockerd 20.10's built-in
Dockerfile frontend predates heredocs, ``COPY --link``, ``--exclude``/``--parents``
and ``ADD --checksum`` (a newer one would come from Docker Hub), so the cases below use
what it knows.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from build_kit import Files, pallet_cli
from test_build_vs_buildah import (
    _CONFIG_FIELDS,
    CONTEXT,
    DOCKERFILE,
    _oci_image,
    _pallet_image,
    _tree,
)

import docker_daemon
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime, pytest.mark.peer]

private_dockerd = docker_daemon.dockerd_fixture  # the session fixture `dockerd`, here too

MakeContext = Callable[..., Path]


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
        tool = tarfile.TarInfo("pkg/tool")  # setuid, owned by a user the host lacks
        tool.mode, tool.uid, tool.gid, tool.uname = 0o4755, 1234, 1234, "no-such-host-user"
        tool.size, tool.mtime = 2, 1_600_000_000
        tf.addfile(tool, io.BytesIO(b"#!"))
    return buf.getvalue()


_PLAIN = _archive({"pkg/one.txt": b"one\n", "pkg/sub/two.txt": b"two\n"})

#: name -> (context files, Dockerfile)
CASES: dict[str, tuple[Files, str]] = {
    # the buildah test's Dockerfile: COPY rules, --chown/--chmod, WORKDIR, ENV/ARG,
    # COPY --from a stage, RUN whiteouts, symlinks and hard links, metadata
    "copy-run-metadata": (CONTEXT, DOCKERFILE),
    "multi-stage-scratch": (
        {},
        """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/result.txt && chown 33:33 /out/result.txt \
 && mkdir -m 700 /private && touch /private/f && chown 33:33 /private
FROM busybox AS unused
RUN exit 1
FROM scratch AS final
COPY --from=builder /out/ /
COPY --from=busybox:latest /bin/busybox /bin/busybox
COPY --from=builder /private /copied
""",
    ),
    "add-archives-and-ignore": (
        {
            "plain.tar": _PLAIN,
            "a.tar.gz": gzip.compress(_PLAIN, mtime=0),
            "a.tar.bz2": bz2.compress(_PLAIN),
            "a.tar.xz": lzma.compress(_PLAIN),
            "notes.txt": "not an archive\n",
            "skip.tmp": "ignored\n",
            "keep/x.txt": "x\n",
            "keep/y.tmp": "ignored too\n",
            ".dockerignore": "*.tmp\n**/*.tmp\n",
        },
        """\
FROM scratch
ADD plain.tar /p/
ADD a.tar.gz /g/
ADD a.tar.bz2 /b/
ADD a.tar.xz /x/
ADD notes.txt /n/
COPY a.tar.gz /copied/
ADD plain.tar /noslash
COPY . /all/
""",
    ),
    "run-mounts-and-empty-diffs": (
        {"a.txt": "A\n", "dir/x": "X\n"},
        """\
FROM busybox AS other
RUN echo from-stage > /made
FROM busybox
WORKDIR /tmp
RUN true
RUN echo nothing written
RUN --mount=type=bind,source=a.txt,target=/mnt/a.txt cat /mnt/a.txt > /bound
RUN --mount=type=bind,from=other,source=/made,target=/m cp /m /from-other
RUN --mount=type=cache,target=/var/cache/app echo cached > /var/cache/app/f && ls /var/cache/app > /listed
RUN --mount=type=tmpfs,target=/scratch echo gone > /scratch/f && ls /scratch > /tmpfs-listed
USER nobody
RUN id -u > /tmp/uid || true
""",
    ),
}


@pytest.fixture(scope="module")
def docker_busybox(store: Store, dockerd: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The private dockerd, holding the busybox image pallet's store has."""
    archive = tmp_path_factory.mktemp("docker") / "busybox.tar"
    saved = pallet_cli(store.root, "save", "-o", str(archive), "busybox:latest")
    assert saved.returncode == 0, saved.stderr
    dockerd.load(archive)
    return dockerd


#: what BuildKit 0.8 leaves in a RUN layer that changed nothing: the parent of the
#: /etc/resolv.conf mount stub, with a new mtime
_STUB_PARENTS = frozenset({"etc"})


def _members(layer: Path) -> set[str]:
    with tarfile.open(layer) as tar:
        return {member.name.strip("/") for member in tar.getmembers()}


def _without_empty_steps(
    layers: list[Path], history: list[tuple[str, bool]]
) -> tuple[list[Path], list[tuple[str, bool]]]:
    """BuildKit 0.8's layers of steps that changed nothing (nothing but stub parents)
    dropped and their history marked ``empty_layer``, as later BuildKit exports them."""
    kept, steps = [], []
    remaining = iter(layers)
    for created_by, empty in history:
        if not empty:
            layer = next(remaining)
            empty = _members(layer) <= _STUB_PARENTS
            if not empty:
                kept.append(layer)
        steps.append((created_by, empty))
    assert next(remaining, None) is None, "more layers than history entries"
    return kept, steps


def _mount_stubs(dockerfile: str) -> set[str]:
    """Paths a ``RUN --mount`` target may have created: each target and its parents."""
    stubs = set()
    for target in re.findall(r"--mount=\S*?target=([^,\s]+)", dockerfile):
        parts = target.strip("/").split("/")
        stubs |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return stubs


def _docker_image(dockerd: Any, ctx: Path, work: Path) -> tuple[list[Path], dict[str, Any]]:
    """Build ``ctx`` with BuildKit; the image's layer tars (in order) and config."""
    tag = f"differential:{work.name.lower()}"
    dockerd.docker("build", "--network", "host", "-q", "-t", tag, str(ctx), buildkit=True)
    archive = work / "docker.tar"
    dockerd.docker("save", "-o", str(archive), tag)
    dockerd.docker("rmi", tag)
    out = work / "docker-archive"
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    (entry,) = json.loads((out / "manifest.json").read_text())
    config = json.loads((out / entry["Config"]).read_text())
    return [out / layer for layer in entry["Layers"]], config


def _user_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("config") or {}
    return {key: inner.get(key) or None for key in _CONFIG_FIELDS}


def _history(config: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in config["history"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_image_as_docker_buildkit(
    store: Store, docker_busybox: Any, make_context: MakeContext, tmp_path: Path, case: str
) -> None:
    files, dockerfile = CASES[case]
    ctx = make_context(files, dockerfile)
    if case == "copy-run-metadata":
        os.chmod(ctx / "dir" / "x", 0o751)
    # the two builds are independent processes: run them side by side
    with ThreadPoolExecutor(1) as pool:
        docker = pool.submit(_docker_image, docker_busybox, ctx, tmp_path)
        our_layers, our_config = _oci_image(_pallet_image(store, ctx, tmp_path))
        their_layers, their_config = docker.result()

    assert _user_config(our_config) == _user_config(their_config)
    kept_layers, their_history = _without_empty_steps(their_layers, _history(their_config))
    assert _history(our_config) == their_history
    assert len(our_layers) == len(kept_layers)

    our_tree, our_links = _tree(our_layers, tmp_path / "ours")
    their_tree, their_links = _tree(their_layers, tmp_path / "theirs")
    for rel in _mount_stubs(dockerfile) - set(our_tree):
        if their_tree.get(rel, ("",))[0] == "dir":
            their_tree.pop(rel)
    only_ours = sorted(set(our_tree) - set(their_tree))
    only_theirs = sorted(set(their_tree) - set(our_tree))
    differing = {
        rel: (our_tree[rel], their_tree[rel])
        for rel in sorted(set(our_tree) & set(their_tree))
        if our_tree[rel] != their_tree[rel]
    }
    assert (only_ours, only_theirs, differing) == ([], [], {})
    assert our_links == their_links
    assert our_tree, "the build produced an empty filesystem: nothing was compared"


def test_scratch_image_working_dir_is_root(
    store: Store, docker_busybox: Any, make_context: MakeContext, tmp_path: Path
) -> None:
    """BuildKit's empty image config has WorkingDir "/" (pallet once left it out)."""
    ctx = make_context({"a.txt": "A\n"}, "FROM scratch\nCOPY a.txt /\n")
    _, their_config = _docker_image(docker_busybox, ctx, tmp_path)
    assert their_config["config"]["WorkingDir"] == "/"
    _, our_config = _oci_image(_pallet_image(store, ctx, tmp_path))
    assert our_config["config"].get("WorkingDir") == "/"
