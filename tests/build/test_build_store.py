"""Builds and the store: reproducibility, the cache under gc, concurrent builds, parallel
stages, and what an interrupted build leaves behind."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import do_build, pallet_cli

from pallet.build import BuildOptions, Progress, build
from pallet.build.cache import BuildCache
from pallet.oci.digest import Digest
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]

DOCKERFILE = """\
FROM busybox
COPY . /src/
RUN mkdir /out && cp -a /src/. /out/ && echo generated > /out/gen.txt
COPY <<EOF /notes.txt
inline
EOF
CMD ["sh"]
"""


def test_source_date_epoch_gives_identical_digests(
    store: Store,
    busybox_template: Path,
    make_context: MakeContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = make_context({"a.txt": "a\n", "dir/b.txt": "b\n"}, DOCKERFILE)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    other_root = tmp_path / "other-store"
    shutil.copytree(busybox_template, other_root, symlinks=True)
    one = do_build(store, ctx)
    time.sleep(1.1)  # a later wall clock must not matter
    (ctx / "a.txt").touch()
    two = do_build(Store.open(other_root), ctx)
    assert one.executed_steps == two.executed_steps == 3
    assert one.manifest.digest == two.manifest.digest
    assert one.config.created == "2023-11-14T22:13:20Z"


def test_check_verifies_built_snapshots_by_their_diff_ids(
    store: Store, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context({"a.txt": "checked\n", "dir/b.txt": "b\n"}, DOCKERFILE)
    # the context's files are newer than the epoch: the layers clamp their mtimes
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    result = do_build(store, ctx)
    assert result.executed_steps == 3
    assert store.check().problems == ()

    def copied_here(chain_id: Digest) -> bool:
        path = store.snapshots.path(chain_id) / "src" / "a.txt"
        return path.is_file() and path.read_text() == "checked\n"

    # the COPY step's snapshot was committed (verified by diff ID), not tree-hashed
    [copied] = [c for c in store.snapshots.chain_ids() if copied_here(c)]
    assert store.snapshots.info(copied).committed is not None
    (store.snapshots.path(copied) / "src" / "a.txt").write_text("tampered\n")
    problems = store.check().problems
    assert [(p.kind, p.subject) for p in problems] == [("corrupt-snapshot", copied)]
    # the content back, with a new mtime the layer clamps to the epoch all the same
    (store.snapshots.path(copied) / "src" / "a.txt").write_text("checked\n")
    assert store.check().problems == ()  # (this module's later tests share the store)


def test_cache_survives_gc_until_builder_prune(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({"a.txt": "gc\n"}, DOCKERFILE)
    first = do_build(store, ctx)
    assert first.executed_steps == 3
    store.gc()  # the image is dangling (no tag); its layers are still build cache
    again = do_build(store, ctx)
    assert (again.cached_steps, again.executed_steps) == (3, 0)
    assert again.image_id == first.image_id  # history times come from the cache
    assert BuildCache(store).prune() >= 3
    store.gc()
    after = do_build(store, ctx)
    assert after.executed_steps == 3


def test_two_builds_of_one_dockerfile_at_once(store: Store, make_context: MakeContext) -> None:
    ctx = make_context({"a.txt": "concurrent\n"}, DOCKERFILE + "RUN sleep 1\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pallet", "--root", str(store.root), "build", str(ctx)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0].startswith("sha256:") and outs[1][0].startswith("sha256:")
    assert store.check().problems == ()


def test_independent_stages_run_concurrently(store: Store, make_context: MakeContext) -> None:
    ctx = make_context(
        {},
        "FROM busybox AS a\nRUN sleep 2 && echo a > /a\n"
        "FROM busybox AS b\nRUN sleep 2 && echo b > /b\n"
        "FROM busybox AS c\nRUN sleep 2 && echo c > /c\n"
        "FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n",
    )
    out = io.StringIO()
    result = build(store, BuildOptions(context=ctx), Progress("plain", out))
    assert len(result.config.diff_ids) == 3
    log = out.getvalue().splitlines()
    runs = {
        m.group(1)
        for line in log
        if (m := re.match(r"#(\d+) \[\w+ 2/2\] RUN /bin/sh -c sleep", line))
    }
    first_done = min(i for i, line in enumerate(log) if re.match(r"#(\d+) DONE", line) and
                     line.split()[0][1:] in runs)  # fmt: skip
    started = [
        i for i, line in enumerate(log) if re.match(r"#\d+ \[\w+ 2/2\] RUN /bin/sh -c sleep", line)
    ]
    assert len(started) == 3 and max(started) < first_done  # all three began before one ended


def _leftovers(root: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if str(root) in line.split()[4]]
    found += [p.name for p in (root / "snapshots").iterdir() if p.name.startswith(".tmp-")]
    found += [p.name for p in (root / "ingest").iterdir()]
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_build_leaves_nothing_behind(
    store: Store, make_context: MakeContext, sig: signal.Signals
) -> None:
    ctx = make_context({}, "FROM busybox\nRUN echo started && sleep 60\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pallet", "--root", str(store.root), "build", str(ctx)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if re.match(r"#\d+ [\d.]+ started", line):  # the command's own output: it runs
            break
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    # the next pallet build cleans what a killed builder could not
    follow = pallet_cli(store.root, "build", str(make_context({}, "FROM busybox\nRUN true\n")))
    assert follow.returncode == 0, follow.stderr
    store.gc()  # half-made snapshots and ingest files of a dead builder are gc's
    assert _leftovers(store.root) == []
    assert store.check().problems == ()
    assert not list((store.root / "build" / "tmp").iterdir())
    listing = subprocess.run(
        ["runc", "--root", str(store.root / "build" / "runc"), "list", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.stdout.strip() == ""


def test_stale_mounts_of_dead_builders_are_unmounted(store: Store, tmp_path: Path) -> None:
    from pallet.build.rootfs import clean_stale_mounts

    dead = store.root / "snapshots" / ".tmp-deadbuilder"
    (dead / "rootfs").mkdir(parents=True)
    source = tmp_path / "src"
    source.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(dead / "rootfs")], check=True)
    assert str(dead / "rootfs") in Path("/proc/self/mountinfo").read_text()
    assert clean_stale_mounts(store) >= 1
    assert str(dead / "rootfs") not in Path("/proc/self/mountinfo").read_text()
    shutil.rmtree(dead)


def test_a_layer_blob_that_cannot_be_stored_fails_the_build_and_tags_nothing(
    store: Store, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pallet.errors import NotFound, StoreError
    from pallet.store.blobs import BlobWriter

    original = BlobWriter.commit
    failed: list[str] = []

    def commit(self: BlobWriter, digest: Digest | None = None) -> tuple[Digest, int]:
        if digest is not None and self.size > 1000:  # the COPY's layer: fsync fails
            failed.append(str(digest))
            self.abort()
            raise StoreError(f"{self.ingest_path}: cannot write: No space left on device")
        return original(self, digest)

    monkeypatch.setattr(BlobWriter, "commit", commit)
    ctx = make_context(
        {"big.bin": os.urandom(64 << 10)}, "FROM busybox\nCOPY big.bin /\nRUN echo x > /x\n"
    )
    with pytest.raises(StoreError, match="No space left on device"):
        do_build(store, ctx, tags=("docker.io/library/unstored:1",))
    assert len(failed) == 1
    assert not store.has_blob(Digest(failed[0]))
    with pytest.raises(NotFound):
        store.find("docker.io/library/unstored:1")
    monkeypatch.setattr(BlobWriter, "commit", original)
    again = do_build(store, ctx, tags=("docker.io/library/unstored:1",))
    # no cache entry pointed at the missing blob: the COPY ran again and stored it
    assert store.has_blob(Digest(failed[0]))
    assert Digest(failed[0]) in [
        layer.digest for layer in store.load_manifest(again.manifest).layers
    ]
