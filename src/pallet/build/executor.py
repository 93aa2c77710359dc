"""Execute a build plan: stages on threads, steps through the cache, layers into the store.

Each filesystem step (RUN, COPY, ADD, WORKDIR) has a cache key: the key of the state
before it, the expanded instruction (argv, env, user, workdir, mounts, flags), the build
args it can see, and the content digests of what it reads from the context (or the key
of the stage it reads from). Metadata steps only change the config. A miss mounts the
parent's snapshots under a fresh upper dir, runs the step, and commits the upper dir:
tar + compress + hash in one pass into a blob, then a rename into a snapshot.
"""

from __future__ import annotations

import datetime as _dt
import os
import posixpath
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from pallet.build.cache import BuildCache, CacheEntry
from pallet.build.copy_step import (
    CopyContext,
    Download,
    Match,
    download,
    execute_copy,
    is_url,
    match_sources,
)
from pallet.build.fsops import Owner, make_dirs
from pallet.build.git_source import GitRef, checkout, parse_git_ref, resolve_commit
from pallet.build.keys import digest_of, step_doc
from pallet.build.options import BuildOptions
from pallet.build.progress import Progress
from pallet.build.rootfs import readonly_rootfs, writable_rootfs
from pallet.build.sources import ContextTree, SourceTree
from pallet.dockerfile.plan import BuildPlan, CopySource, CopyStep, StagePlan, Step
from pallet.errors import BuildError, ContainerError
from pallet.images.lookup import LocalImage
from pallet.oci.chainid import chain_ids as compute_chain_ids
from pallet.oci.config import ImageConfig, history_entry
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.store import Store
from pallet.store.snapshots import LayerOrigin

if TYPE_CHECKING:
    from pallet.build.cache_io import CacheSpec, ImportedCache
    from pallet.runtime.oci_runtime import OCIRuntime

HISTORY_COMMENT = "buildkit.dockerfile.v0"


@dataclass(frozen=True)
class FsState:
    """A filesystem as a stack of layers (bottom first)."""

    layers: tuple[Descriptor, ...] = ()
    diff_ids: tuple[Digest, ...] = ()

    def chain_ids(self) -> list[Digest]:
        return compute_chain_ids(list(self.diff_ids)) if self.diff_ids else []

    def plus(self, layer: Descriptor, diff_id: Digest) -> FsState:
        return FsState((*self.layers, layer), (*self.diff_ids, diff_id))


@dataclass(frozen=True)
class StageResult:
    fs: FsState
    image: ImageConfig
    key: str


@dataclass(frozen=True)
class StepOutcome:
    fs: FsState
    key: str
    empty: bool  # the step made no layer
    created: str  # its history time: when it ran (a cache hit keeps the first run's)


@dataclass
class Counters:
    cached: int = 0
    executed: int = 0


def created_time(options: BuildOptions) -> tuple[str, int | None]:
    """The build's timestamp and the SOURCE_DATE_EPOCH clamping layer mtimes, if any."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    epoch: int | None = int(value) if value.isdigit() else None
    if epoch is None and options.reproducible:
        epoch = 0
    when = (
        _dt.datetime.fromtimestamp(epoch, _dt.UTC)
        if epoch is not None
        else _dt.datetime.now(_dt.UTC)
    )
    return rfc3339_nano(when), epoch


def rfc3339_nano(when: _dt.datetime) -> str:
    """Go's RFC3339Nano, as BuildKit writes ``created``: no trailing zeros in the fraction."""
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


class StageRunner:
    """Shared state of one build: the store, cache, context, images and stage results."""

    def __init__(
        self,
        store: Store,
        options: BuildOptions,
        plan: BuildPlan,
        context: ContextTree,
        images: Mapping[str, LocalImage],
        runtime: Callable[[], OCIRuntime] | None,
        scratch: Path,
        progress: Progress,
        secrets: Mapping[str, Path],
    ) -> None:
        self.store = store
        self.options = options
        self.plan = plan
        self.context = context
        self.images = images
        #: makes the OCI runtime at the first RUN that misses the cache (a cached build
        #: never starts one); None: the plan has no RUN
        self._make_runtime = runtime
        self._runtime: OCIRuntime | None = None
        self.scratch = scratch
        self.progress = progress
        self.secrets = secrets
        self.cache = BuildCache(store)
        #: ``--cache-from`` layouts, consulted on a local miss
        self.imported = [
            cache for spec in options.cache_from if (cache := _load_cache(spec)) is not None
        ]
        #: every step's cache entry, hit or run, for ``--cache-to``
        self.records: dict[str, CacheEntry] = {}
        self.created, self.epoch = created_time(options)
        self.results: dict[int, Future[StageResult]] = {}
        self.cancel = threading.Event()
        self.counters = Counters()
        #: progress vertices shown (label, whether a step), for the build record
        self.vertices: list[tuple[str, bool]] = []
        #: whether a step fetched a URL or a git repository
        self.fetches = False
        self._lock = threading.Lock()

    # -- stages -----------------------------------------------------------------------

    def run_all(self) -> StageResult:
        stages = self.plan.stages
        with ThreadPoolExecutor(max_workers=len(stages), thread_name_prefix="stage") as pool:
            for stage in stages:
                self.results[stage.index] = pool.submit(self._stage_guarded, stage)
            try:
                for stage in stages:
                    self.results[stage.index].exception()
            except BaseException:
                self.cancel.set()
                raise
            finally:
                errors = [f.exception() for f in self.results.values() if f.done()]
                if any(errors):
                    self.cancel.set()
        first = _first_error(self.results, stages)
        if first is not None:
            raise first
        return self.results[self.plan.target].result()

    def _stage_guarded(self, stage: StagePlan) -> StageResult:
        try:
            return self._stage(stage)
        except BaseException:
            self.cancel.set()
            raise

    def _dep(self, index: int) -> StageResult:
        return self.results[index].result()

    def stage_name(self, stage: StagePlan) -> str:
        return stage.name or f"stage-{stage.index}"

    def _stage(self, stage: StagePlan) -> StageResult:
        if stage.base.kind == "stage":
            assert stage.base.stage is not None
            parent = self._dep(stage.base.stage)
            fs, image, key = parent.fs, parent.image, parent.key
        elif stage.base.kind == "image":
            assert stage.base.image is not None
            img = self.images[stage.base.image]
            fs = FsState(tuple(img.manifest.layers), tuple(img.config.diff_ids))
            image, key = img.config, f"image:{img.manifest.digest}"
        else:
            fs, image, key = FsState(), stage.base_config, "scratch"
        fs_steps = [s for s in stage.steps if s.changes_filesystem]
        total = len(fs_steps) + 1
        name = self.stage_name(stage)
        number = self._vertex(
            f"[{name} 1/{total}] FROM {stage.base.image or 'scratch'}"
            if stage.base.kind != "stage"
            else f"[{name} 1/{total}] FROM {self._stage_label(stage)}",
            step=False,
        )
        self.progress.done(number)
        use_cache = not self.options.no_cache and not self._filtered(stage)
        position = 1
        # BuildKit dates a metadata step like the layer before it, and the image like
        # its last step, so an unchanged rebuild gives the same image ID
        last = self.created if self.epoch is not None else (image.created or self.created)
        for step in stage.steps:
            if self.cancel.is_set():
                raise BuildError("build cancelled")
            empty = True
            if step.changes_filesystem:
                position += 1
                label = f"[{name} {position}/{total}] {_title(step)}"
                try:
                    outcome = self._fs_step(step, label, fs, key, use_cache)
                except (OSError, ValueError) as exc:  # reading sources: name the step
                    raise BuildError(f"{label}: {exc}") from exc
                fs, key, empty, last = outcome.fs, outcome.key, outcome.empty, outcome.created
            hist = history_entry(
                step.created_by,
                created=last,
                comment=HISTORY_COMMENT,
                empty_layer=empty,
            )
            if empty:
                image = image.with_history(hist)
            else:
                image = image.with_layer(fs.diff_ids[-1], hist)
            image = image.replace(config=step.config)
        image = image.replace(created=last, author=stage.author)
        if not stage.steps:
            image = image.replace(config=stage.config)
        return StageResult(fs, image, key)

    def _stage_label(self, stage: StagePlan) -> str:
        assert stage.base.stage is not None
        parent = self.plan.stage(stage.base.stage)
        return self.stage_name(parent)

    def _vertex(self, label: str, *, step: bool) -> int:
        with self._lock:
            self.vertices.append((label, step))
        return self.progress.vertex(label)

    def _filtered(self, stage: StagePlan) -> bool:
        names = {n.lower() for n in self.options.no_cache_filter}
        return bool(names) and ((stage.name or "").lower() in names or str(stage.index) in names)

    # -- steps ------------------------------------------------------------------------

    def _fs_step(
        self, step: Step, label: str, fs: FsState, parent_key: str, use_cache: bool
    ) -> StepOutcome:
        number = self._vertex(label, step=True)
        with ExitStack() as stack:
            inputs: dict[str, object] = {}
            tree: SourceTree | None = None
            matches = []
            downloads: list[Download] = []
            gits: list[tuple[GitRef, str]] = []
            mount_trees: dict[int, SourceTree] = {}
            if step.copy is not None:
                copy = step.copy
                tree, source_key = self._source_tree(copy.source, stack)
                matches = match_sources(copy, tree, f"{label}")
                if isinstance(tree, ContextTree):
                    inputs["content"] = tree.content_digest([m.path for m in matches])
                else:
                    inputs["source"] = source_key
                renamed = [m.name for m in matches if m.name != posixpath.basename(m.path)]
                if renamed:  # a symlink's target copied under the link's name
                    inputs["names"] = renamed
                if any(is_url(src) or parse_git_ref(src) for src in copy.sources):
                    self.fetches = True  # fetched again by every build: never recorded
                try:
                    downloads, gits = self._remote_sources(copy, label)
                except BuildError as exc:
                    self.progress.error(number, str(exc).removeprefix(f"{label}: "))
                    raise
                inputs["downloads"] = [str(d.digest) for d in downloads]
                if gits:  # the commit, not the ref: a moved branch reruns the step
                    inputs["git"] = [[g.remote, c, g.subdir, copy.keep_git_dir] for g, c in gits]
            if step.run is not None:
                for index, mount in enumerate(step.run.mounts):
                    if mount.type == "bind" or (mount.type == "cache" and mount.from_):
                        mtree, mkey = self._source_tree(step.run.mount_sources[index], stack)
                        mount_trees[index] = mtree
                        if isinstance(mtree, ContextTree):
                            rel = mtree.resolve(mount.source.strip("/")) if mount.source else ""
                            inputs[f"mount{index}"] = mtree.content_digest([rel])
                        else:
                            inputs[f"mount{index}"] = mkey
            # COPY --link makes a layer independent of what is below it: its cache key
            # leaves the parent out, and the state after it chains both
            link = step.copy is not None and step.copy.link
            layer_key = digest_of(
                {
                    "parent": "link" if link else parent_key,
                    "step": step_doc(step),
                    "inputs": inputs,
                    "compression": [self.options.compression, self.options.compression_level],
                    "epoch": self.epoch,
                }
            )
            key = digest_of({"parent": parent_key, "link": layer_key}) if link else layer_key
            if use_cache:
                hit = self.cache.get(layer_key) or self._imported(layer_key)
                if hit is not None:
                    with self._lock:
                        self.records[layer_key] = hit
                    self.progress.cached(number)
                    with self._lock:
                        self.counters.cached += 1
                    created = hit.created or self.created
                    if hit.layer is None or hit.diff_id is None:
                        return StepOutcome(fs, key, True, created)
                    return StepOutcome(fs.plus(hit.layer, hit.diff_id), key, False, created)
            with self._lock:
                self.counters.executed += 1
            try:
                result = self._execute(
                    step, label, number, fs, tree, matches, downloads, gits, mount_trees
                )
            except BuildError as exc:
                self.progress.error(number, str(exc).removeprefix(f"{label}: "))
                raise
            except (OSError, ValueError) as exc:
                # e.g. a path the filesystem refuses: one line naming the step, no traceback
                reason = getattr(exc, "strerror", None) or str(exc)
                where = getattr(exc, "filename", None)
                message = f"{reason}: {where}" if where else reason
                self.progress.error(number, message)
                raise BuildError(f"{label}: {message}") from exc
        with self._lock:
            self.records[layer_key] = (
                CacheEntry(None, None, self.created)
                if result is None
                else CacheEntry(result[0], result[1], self.created)
            )
        if result is None:
            self.cache.put(layer_key, None, None, None, self.created)
            self.progress.done(number)
            return StepOutcome(fs, key, True, self.created)
        layer, diff_id, chain_id = result
        self.cache.put(layer_key, layer, diff_id, chain_id, self.created)
        self.progress.done(number)
        return StepOutcome(fs.plus(layer, diff_id), key, False, self.created)

    def _remote_sources(
        self, copy: CopyStep, label: str
    ) -> tuple[list[Download], list[tuple[GitRef, str]]]:
        """ADD's URLs downloaded and git sources resolved to commits, for the key."""
        downloads: list[Download] = []
        gits: list[tuple[GitRef, str]] = []
        for src in copy.sources:
            git = parse_git_ref(src)
            if git is not None:
                if not copy.add:
                    raise BuildError(f"{label}: COPY cannot read a git repository ({src}); use ADD")
                gits.append((git, resolve_commit(git, label)))
            elif is_url(src):
                if not copy.add:
                    raise BuildError(f"{label}: COPY cannot read a URL ({src}); use ADD")
                downloads.append(download(src, self.scratch, copy.checksum, label))
        return downloads, gits

    def _imported(self, key: str) -> CacheEntry | None:
        """An entry from a ``--cache-from`` layout, copied into the local cache."""
        for cache in self.imported:
            entry = cache.get(self.store, key)
            if entry is not None:
                self.cache.put(key, entry.layer, entry.diff_id, None, entry.created)
                return entry
        return None

    def _source_tree(self, source: CopySource, stack: ExitStack) -> tuple[SourceTree, str]:
        if source.kind == "context":
            return self.context, "context"
        if source.kind == "stage":
            assert source.stage is not None
            dep = self._dep(source.stage)
            fs, key = dep.fs, dep.key
        else:
            assert source.image is not None
            img = self.images[source.image]
            fs = FsState(tuple(img.manifest.layers), tuple(img.config.diff_ids))
            key = f"image:{img.manifest.digest}"
        lowers = self.lowerdirs(fs)
        root = stack.enter_context(readonly_rootfs(lowers, self.scratch))
        return SourceTree(root), key

    def runtime(self, label: str) -> OCIRuntime:
        with self._lock:
            if self._runtime is None:
                if self._make_runtime is None:
                    raise BuildError(f"{label}: no OCI runtime to run it")
                self._runtime = self._make_runtime()
            return self._runtime

    def lowerdirs(self, fs: FsState) -> list[Path]:
        if not fs.layers:
            return []
        return self.store.snapshots.ensure(list(fs.layers), list(fs.diff_ids))

    def _execute(
        self,
        step: Step,
        label: str,
        number: int,
        fs: FsState,
        tree: SourceTree | None,
        matches: list[Match],
        downloads: list[Download],
        gits: list[tuple[GitRef, str]],
        mount_trees: Mapping[int, SourceTree],
    ) -> tuple[Descriptor, Digest, Digest] | None:
        lowers = self.lowerdirs(fs)
        parent_chain = fs.chain_ids()[-1] if fs.diff_ids else None
        link = step.copy is not None and step.copy.link
        with ExitStack() as stack, self.store.snapshots.workspace() as work:
            accounts: Path | None = None
            if link and step.copy is not None and step.copy.chown:
                # user and group names still resolve in the image below
                accounts = stack.enter_context(readonly_rootfs(lowers, self.scratch))
            parents: Mapping[str, tuple[int, int, int]] = {}
            with writable_rootfs([] if link else lowers, work) as step_root:
                root = step_root.merged
                if step.copy is not None:
                    assert tree is not None
                    checkouts = tuple(
                        checkout(git, commit, self.scratch, step.copy.keep_git_dir, label)
                        for git, commit in gits
                    )
                    for path in checkouts:  # gone with the step, not at the build's end
                        top = self.scratch / path.relative_to(self.scratch).parts[0]
                        stack.callback(shutil.rmtree, top, ignore_errors=True)
                    cx = CopyContext(
                        label,
                        tree,
                        isinstance(tree, ContextTree),
                        tuple(downloads),
                        (self.epoch if self.epoch is not None else int(time.time())) * 10**9,
                        checkouts,
                    )
                    try:
                        execute_copy(step, step.copy, matches, root, cx, accounts, work / "fs")
                    except OSError as exc:
                        raise BuildError(
                            f"{label}: {exc.strerror or exc}: {exc.filename}"
                        ) from None
                elif step.run is not None:
                    from pallet.build.run_step import RunEnv, run_command

                    env = RunEnv(
                        self.runtime(label),
                        self.scratch,
                        self.store.root / "build" / "cache-mounts",
                        self.secrets,
                        label,
                        self.cancel,
                        {agent.id: agent.socket for agent in self.options.ssh},
                    )
                    parents = run_command(
                        step, root, env, mount_trees, lambda line: self.progress.log(number, line)
                    )
                elif step.workdir is not None:
                    owner = None
                    if step.config.user:
                        from pallet.runtime.users import resolve_user

                        try:
                            u = resolve_user(root, step.config.user)
                            owner = Owner(u.uid, u.gid)
                        except ContainerError as exc:
                            raise BuildError(f"{label}: {exc}") from None
                    make_dirs(root, step.workdir, owner)
                # RUN: the upper dir is tidied below, so it must be at rest first; a
                # COPY's commit reads its files while the mount's leftovers are removed
                step_root.release(background=not parents)
                upper = work / "fs"
                if parents:
                    from pallet.build.run_step import drop_untouched_copy_ups

                    drop_untouched_copy_ups(upper, parents)
                if not any(upper.iterdir()):
                    return None  # an empty diff makes no layer, as in Docker
                from pallet.layer.commit import commit_layer  # not needed by cached builds

                with self.store.ingest(hashed_by_caller=True) as writer:
                    info = commit_layer(
                        upper,
                        cast(BinaryIO, writer),
                        compression=self.options.compression,
                        level=self.options.compression_level,
                        overlay=True,
                        source_date_epoch=self.epoch,
                    )
                    digest, size = writer.commit(info.digest)
            # the tree was just written as this layer: check verifies it by its diff ID
            chain_id = self.store.snapshots.adopt(
                work, info.diff_id, parent_chain, LayerOrigin(self.epoch)
            )
        return Descriptor(info.media_type, digest, size), info.diff_id, chain_id


def _first_error(
    results: Mapping[int, Future[StageResult]], stages: tuple[StagePlan, ...]
) -> BaseException | None:
    cancelled: BaseException | None = None
    for stage in stages:
        exc = results[stage.index].exception()
        if exc is None:
            continue
        from pallet.build.run_step import Cancelled  # an error path only

        if isinstance(exc, Cancelled) or (
            isinstance(exc, BuildError) and str(exc) == "build cancelled"
        ):
            cancelled = cancelled or exc
            continue
        return exc
    return cancelled


def _title(step: Step) -> str:
    text = step.created_by.removesuffix(" # buildkit")
    return text if len(text) <= 200 else text[:197] + "..."


def _load_cache(spec: CacheSpec) -> ImportedCache | None:
    from pallet.build.cache_io import ImportedCache  # only builds given --cache-from pay for it

    return ImportedCache.load(spec)
