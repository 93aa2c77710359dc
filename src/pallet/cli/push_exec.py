"""What ``pallet push`` does once its flags are parsed, free of click so the fast path
(``pallet.cli.fast_path``) and the click command share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pallet.errors import InvalidArgument
from pallet.paths import default_root


def push_refs(root: Path | None, kw: dict[str, Any]) -> None:
    """Push ``kw["ref"]`` (every tag of its repository with ``all_tags``), printing what
    ``docker push`` prints unless ``quiet``."""
    from pallet.transport.registry_progress import make_progress
    from pallet.transport.registry_push import push, tags_to_push
    from pallet.transport.registry_ref import ImageRef

    store_root = root if root is not None else default_root()
    ref: str = kw["ref"]
    quiet = bool(kw["quiet"])
    image = ImageRef.parse(ref)
    if kw["all_tags"] and ref.rsplit("/", 1)[-1].count(":"):
        raise InvalidArgument(f"{ref}: --all-tags takes a repository name without a tag")
    if not quiet:
        print(f"The push refers to repository [{image.name}]", flush=True)
    for name in tags_to_push(store_root, ref, bool(kw["all_tags"])):
        progress = make_progress(quiet)
        try:
            result = push(
                name,
                store_root,
                max_concurrent=int(kw["max_concurrent_uploads"]),
                progress=progress,
            )
        finally:
            progress.close()
        if not quiet:
            tag = ImageRef.parse(name).tag or "latest"
            print(f"{tag}: digest: {result.digest} size: {result.size}", flush=True)
