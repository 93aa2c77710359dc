"""``rmi`` and ``image prune`` with docker's untag-versus-delete rules."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pallet.errors import Conflict, InvalidArgument, InvalidReference, PalletError
from pallet.images.humanize import parse_duration, parse_timestamp
from pallet.images.lookup import LocalImage, all_images, find_image
from pallet.oci.reference import Reference
from pallet.store import Store


@dataclass(frozen=True)
class RemovalEvent:
    """One line of rmi/prune output: ``Untagged: busybox:latest`` or ``Deleted: sha256:...``."""

    action: str  # "Untagged" or "Deleted"
    subject: str
    freed: int = 0

    def __str__(self) -> str:
        return f"{self.action}: {self.subject}"


def _familiar(name: str) -> str:
    try:
        return Reference.parse(name).familiar()
    except InvalidReference:
        return name


def _repository(name: str) -> str:
    return name.rsplit("@", 1)[0].rsplit(":", 1)[0] if "/" in name else name


def _delete(store: Store, image: LocalImage, events: list[RemovalEvent]) -> None:
    # One index.json transaction drops every name and the image itself.
    store.remove_image(image.descriptor.digest)
    events.extend(RemovalEvent("Untagged", _familiar(name)) for name in image.names)
    events.append(RemovalEvent("Deleted", str(image.id), image.size))


def remove_image(store: Store, text: str, *, force: bool = False) -> list[RemovalEvent]:
    """Remove one image argument of ``pallet rmi``.

    A tag that is not the image's last name is only untagged; the last name, an ID or a
    digest deletes the image. An ID naming an image tagged in several repositories needs
    ``force``, as in docker.
    """
    image = find_image(store, text)
    events: list[RemovalEvent] = []
    by_name: str | None = None
    try:
        ref = Reference.parse(text)
        if ref.digest is None and str(ref.normalized()) in image.names:
            by_name = str(ref.normalized())
    except InvalidReference:
        pass
    if by_name is not None and len(image.names) > 1:
        store.untag(by_name)
        return [RemovalEvent("Untagged", _familiar(by_name))]
    repos = {_repository(n) for n in image.names}
    if by_name is None and len(repos) > 1 and not force:
        raise Conflict(
            f"conflict: unable to delete {image.id.short()} (must be forced) - image is "
            "referenced in multiple repositories"
        )
    user = _container_using(store, image)
    if user is not None:
        if not force:
            raise Conflict(
                f'conflict: unable to remove repository reference "{text}" (must force) - '
                f"container {user[:12]} is using its referenced image {image.id.short()}"
            )
        for name in image.names:  # forced: untag, but keep what the container runs on
            store.untag(name)
            events.append(RemovalEvent("Untagged", _familiar(name)))
        return events
    _delete(store, image, events)
    return events


def _container_using(store: Store, image: LocalImage) -> str | None:
    """The ID of a container created from ``image`` (they live in state.db), if any."""
    import json
    import sqlite3

    try:
        with store.state.connect() as db:
            rows = db.execute("SELECT id, record FROM containers").fetchall()
    except (PalletError, sqlite3.Error):
        return None  # no container was ever made in this store
    for container_id, record in rows:
        try:
            if json.loads(record).get("image_id") == str(image.id):
                return str(container_id)
        except (ValueError, AttributeError):
            continue
    return None


def remove_images(
    store: Store, names: Sequence[str], *, force: bool = False, prune: bool = True
) -> tuple[list[RemovalEvent], list[str]]:
    """rmi of several arguments: every one is tried; errors are collected like docker's."""
    events: list[RemovalEvent] = []
    errors: list[str] = []
    for name in names:
        try:
            events.extend(remove_image(store, name, force=force))
        except PalletError as exc:  # docker reports each argument and goes on
            errors.append(str(exc))
    if prune and any(e.action == "Deleted" for e in events):
        store.gc()
    return events, errors


def _created(image: LocalImage) -> _dt.datetime | None:
    return parse_timestamp(image.config.created)


def _label_matches(image: LocalImage, spec: str) -> bool:
    labels = image.config.config.labels or {}
    key, has_value, want = spec.partition("=")
    return key in labels and (not has_value or labels[key] == want)


def _until_cutoff(value: str) -> _dt.datetime:
    try:
        return _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=parse_duration(value))
    except ValueError:
        parsed = parse_timestamp(value)
        if parsed is None:
            raise InvalidArgument(f"invalid filter 'until={value}'") from None
        return parsed


def image_filter(filters: Mapping[str, Sequence[str]]) -> Callable[[LocalImage], bool]:
    """Docker's prune/images filters: ``until``, ``label``, ``label!``, ``dangling``."""
    unknown = set(filters) - {"until", "label", "label!", "dangling"}
    if unknown:
        raise InvalidArgument(f"invalid filter {sorted(unknown)[0]!r}")
    cutoffs = [_until_cutoff(v) for v in filters.get("until", ())]
    dangling = [v.lower() in ("true", "1") for v in filters.get("dangling", ())]

    def keep(image: LocalImage) -> bool:
        created = _created(image)
        if cutoffs and (created is None or any(created >= c for c in cutoffs)):
            return False
        if not all(_label_matches(image, spec) for spec in filters.get("label", ())):
            return False
        if any(_label_matches(image, spec) for spec in filters.get("label!", ())):
            return False
        return all(image.dangling == d for d in dangling)

    return keep


def prune_images(
    store: Store, *, all_images_too: bool = False, filters: Mapping[str, Sequence[str]] = {}
) -> tuple[list[RemovalEvent], int]:
    """Remove dangling images (every image with ``all_images_too``); returns events and bytes freed."""
    keep = image_filter(filters)
    events: list[RemovalEvent] = []
    for image in all_images(store):
        if (image.dangling or all_images_too) and keep(image):
            _delete(store, image, events)
    freed = store.gc().freed_bytes if events else 0
    return events, freed
