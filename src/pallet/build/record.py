"""Build records: a rebuild whose inputs all match a fully cached build's is answered
from that build's record, without parsing and planning the Dockerfile again.

A record is kept (in state.db) only of a build that executed no step: every filesystem
step was a cache hit, so its image is a function of what the record checks, and a
replay returns exactly what the planner would return. Its key is a digest of what the
build was asked (the Dockerfile's text and name, the context's path, build args,
labels, target, platform, compression, secrets' and ssh agents' ids, entitlements,
SOURCE_DATE_EPOCH, whether we are root). A replay then checks, under the gc lock:

- the context's listing: path, type, mode, size, mtime, ctime and inode of every entry
  (the context hash cache's key for a file; .dockerignore'd entries count too, so any
  change at all, even one no step reads, means a real build). It is taken when the
  build ends, and kept only if every entry the build read still has the stat it had
  when the build read it;
- the Dockerfile-specific ignore file beside a Dockerfile outside the context;
- each image reference the build resolved (FROM, COPY --from, mounts): still the same
  store entry;
- every step's cache entry: still there, its layer blob too (``builder prune`` rebuilds);
- the image's manifest and config blobs.

Builds whose result depends on anything else are never recorded: ``--no-cache``,
``--no-cache-filter``, ``--pull``, ``--cache-from``/``--cache-to``, ``-o`` other than the
image, ``--push``, ADD of a URL or a git repository (fetched again by every build), and
a build whose image carries its own creation time (no SOURCE_DATE_EPOCH, nothing but
scratch below it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pallet.build.options import BuildOptions
from pallet.build.progress import Progress
from pallet.errors import PalletError
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest, sha256_hex, small_sha256
from pallet.store import Store

FORMAT = 1
_MAX_DOCKERFILE = 16 << 20
_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_records (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Replayed:
    """What a replayed build gives back (the fields of a BuildResult it can fill)."""

    image_id: Digest
    manifest: Descriptor
    tags: tuple[str, ...]
    cached_steps: int
    unused_build_args: tuple[str, ...]


def dockerfile_path(options: BuildOptions) -> Path:
    return options.dockerfile or options.context / "Dockerfile"


def record_key(options: BuildOptions, text: str) -> str | None:
    """The key of a build asked for with ``options`` (the Dockerfile reads ``text``), or
    None when such a build is never recorded."""
    if (
        options.no_cache
        or options.no_cache_filter
        or options.pull
        or options.push
        or options.cache_from
        or options.cache_to
        or any(o.type != "image" for o in options.outputs)
    ):
        return None
    from pallet import __version__

    path = dockerfile_path(options)
    doc = {
        "format": FORMAT,
        "pallet": __version__,
        "context": str(options.context.absolute()),
        "dockerfile": None if options.dockerfile_text is not None else str(path.absolute()),
        "text": text,
        "ignore": _stat_fields(Path(f"{path}.dockerignore")),
        "build_args": sorted(options.build_args.items()),
        "labels": sorted(options.labels.items()),
        "target": options.target,
        "platform": options.platform,
        "compression": [options.compression, options.compression_level],
        "reproducible": options.reproducible,
        "epoch": os.environ.get("SOURCE_DATE_EPOCH"),
        "secrets": sorted(s.id for s in options.secrets),
        "ssh": sorted(a.id for a in options.ssh),
        "allow": sorted(options.allow),
        "root": os.geteuid() == 0,
    }
    raw = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    return "sha256:" + sha256_hex(raw.encode("utf-8", "surrogateescape"))


def _stat_fields(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _walk(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``top`` (relative path, lstat), directories' children sorted."""
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(top, rel) if rel else top) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield path, st
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)


def _fields(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def context_listing(context: Path, used: Mapping[str, os.stat_result] | None = None) -> str | None:
    """A digest of the context's listing (see the module doc); changes with any entry.

    ``used``: the entries (relative path -> lstat) a build read, when it read the
    context; None is returned if any of them is not as it was then (it changed during
    the build, so the image need not match what the context holds now)."""
    h = small_sha256()  # a listing, not contents: no need to load OpenSSL
    root = os.lstat(context)
    h.update(f"{root.st_mode} {root.st_ino} {root.st_dev}\n".encode())
    seen = 0
    for rel, st in _walk(str(context)):
        fields = _fields(st)
        if used is not None and rel in used:
            if _fields(used[rel]) != fields:
                return None
            seen += 1
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + repr(fields).encode() + b"\n")
    if used is not None and seen != len(used):
        return None  # something the build read is gone
    return str(h.hexdigest())


def read_dockerfile_text(options: BuildOptions) -> str | None:
    """The Dockerfile's text, or None if it cannot be read (the build will say why)."""
    if options.dockerfile_text is not None:
        return options.dockerfile_text
    try:
        path = dockerfile_path(options)
        if path.stat().st_size > _MAX_DOCKERFILE:
            return None
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def save(
    store: Store,
    key: str,
    listing: str,
    images: dict[str, Digest],
    step_keys: Sequence[str],
    manifest: Descriptor,
    image_id: Digest,
    vertices: Sequence[tuple[str, bool]],
    unused_build_args: tuple[str, ...],
) -> None:
    """Remember a build that executed no step (see the module doc)."""
    record = {
        "listing": listing,
        "images": images,
        "steps": list(step_keys),
        "manifest": manifest.to_json(),
        "image_id": image_id,
        "vertices": [[label, is_step] for label, is_step in vertices],
        "unused_build_args": list(unused_build_args),
    }
    with store.state.connect() as db:
        db.execute(_SCHEMA)
        db.execute(
            "INSERT OR REPLACE INTO build_records (key, record) VALUES (?, ?)",
            (key, json.dumps(record, sort_keys=True)),
        )


def forget_all(store: Store) -> None:
    """Drop every record (``builder prune``)."""
    with store.state.connect() as db:
        db.execute(_SCHEMA)
        db.execute("DELETE FROM build_records")


def replay(store: Store, options: BuildOptions, progress: Progress) -> Replayed | None:
    """The image of a build recorded with the same inputs, its tags and ``--iidfile``
    written and its progress shown; None when a real build is needed."""
    text = read_dockerfile_text(options)
    key = record_key(options, text) if text is not None else None
    if key is None:
        return None
    try:
        with store.state.connect() as db:
            row = db.execute("SELECT record FROM build_records WHERE key = ?", (key,)).fetchone()
    except PalletError:
        return None  # no record table yet
    if row is None:
        return None
    try:
        record = json.loads(row[0])
        if record["listing"] != context_listing(options.context):
            return None
        from pallet.build.rootfs import clean_stale_mounts

        clean_stale_mounts(store)  # as a real build does first
        with store.gc_lock():
            result = _check_and_tag(store, options, record)
    except (OSError, ValueError, KeyError, TypeError, PalletError):
        return None  # a changed or unreadable store or context: the real build decides
    if result is None:
        return None
    for label, is_step in record["vertices"]:  # every step came from the cache
        number = progress.vertex(label)
        if is_step:
            progress.cached(number)
        else:
            progress.done(number)
    if options.iidfile is not None:
        options.iidfile.write_text(str(result.image_id))
    return result


def _check_and_tag(
    store: Store, options: BuildOptions, record: dict[str, object]
) -> Replayed | None:
    images = record["images"]
    steps = record["steps"]
    assert isinstance(images, dict) and isinstance(steps, list)
    for ref, digest in images.items():
        if store.find(ref).digest != digest:
            return None
    unique = sorted(set(steps))
    with store.state.connect() as db:
        rows = []
        for i in range(0, len(unique), 500):
            batch = unique[i : i + 500]
            rows += db.execute(
                f"SELECT layer FROM build_cache WHERE key IN ({','.join('?' * len(batch))})",
                batch,
            ).fetchall()
    if len(rows) != len(unique):
        return None  # the cache was pruned: the steps run again
    for (layer,) in rows:
        if layer is not None and not store.has_blob(Digest(json.loads(layer)["digest"])):
            return None
    manifest = Descriptor.from_json(record["manifest"])
    image_id = Digest(str(record["image_id"]))
    if not (store.has_blob(manifest.digest) and store.has_blob(image_id)):
        return None
    from pallet.oci.reference import Reference

    names = [str(Reference.parse(n).normalized()) for n in options.tags]
    present = {(e.name, e.digest) for e in store.images()}
    for name in names:
        if (name, manifest.digest) not in present:
            store.tag(name, manifest)
    if not names and not any(digest == manifest.digest for _, digest in present):
        store.add_image(manifest)
    unused = record["unused_build_args"]
    assert isinstance(unused, list)
    vertices = record["vertices"]
    assert isinstance(vertices, list)
    steps_cached = sum(1 for _, is_step in vertices if is_step)
    return Replayed(image_id, manifest, tuple(options.tags), steps_cached, tuple(unused))
