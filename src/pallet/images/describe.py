"""What ``images``, ``inspect`` and ``history`` show of an image, shaped as docker shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pallet.errors import InvalidReference
from pallet.images.humanize import parse_timestamp
from pallet.images.lookup import LocalImage
from pallet.oci.reference import Reference


def _ref(name: str) -> Reference | None:
    try:
        return Reference.parse(name)
    except InvalidReference:
        return None


def repo_tags(image: LocalImage) -> list[str]:
    out = []
    for name in image.names:
        ref = _ref(name)
        out.append(ref.familiar() if ref is not None else name)
    return out


def repo_digests(image: LocalImage) -> list[str]:
    out: list[str] = []
    for name in image.names:
        ref = _ref(name)
        if ref is None:
            continue
        entry = f"{ref.familiar_name()}@{image.descriptor.digest}"
        if entry not in out:
            out.append(entry)
    return out


@dataclass(frozen=True)
class ImageRow:
    """One row of ``pallet images``."""

    repository: str
    tag: str
    image: LocalImage

    @property
    def digest(self) -> str:
        return str(self.image.descriptor.digest) if self.repository != "<none>" else "<none>"


def image_rows(image: LocalImage) -> list[ImageRow]:
    """A row per tag, or one ``<none>:<none>`` row for a dangling image."""
    rows = []
    for name in image.names:
        ref = _ref(name)
        if ref is None:
            continue
        rows.append(ImageRow(ref.familiar_name(), ref.tag or "<none>", image))
    return rows or [ImageRow("<none>", "<none>", image)]


def inspect_document(image: LocalImage) -> dict[str, Any]:
    cfg = image.config
    extra = dict(cfg.extra)
    doc: dict[str, Any] = {
        "Id": str(image.id),
        "RepoTags": repo_tags(image),
        "RepoDigests": repo_digests(image),
        "Parent": "",
        "Comment": extra.get("comment", "") if isinstance(extra.get("comment"), str) else "",
        "Created": cfg.created or "0001-01-01T00:00:00Z",
        "Container": extra.get("container", "") if isinstance(extra.get("container"), str) else "",
        "ContainerConfig": extra.get("container_config") or {},
        "DockerVersion": extra.get("docker_version", "")
        if isinstance(extra.get("docker_version"), str)
        else "",
        "Author": cfg.author,
        "Config": cfg.config.to_json(),
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Data": None, "Name": "pallet"},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in cfg.diff_ids]},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        "Descriptor": image.descriptor.to_json(),
    }
    if cfg.variant:
        doc["Variant"] = cfg.variant
    if cfg.os_version:
        doc["OsVersion"] = cfg.os_version
    return doc


@dataclass(frozen=True)
class HistoryRow:
    image_id: str  # the image ID on the newest row, "<missing>" below it, as docker shows
    created: str | None
    created_by: str
    size: int
    comment: str


def history_rows(image: LocalImage) -> list[HistoryRow]:
    """Newest first; layer sizes are the compressed blob sizes of the matching layers."""
    rows: list[HistoryRow] = []
    layers = list(image.manifest.layers)
    layer_index = 0
    for entry in image.config.history:
        size = 0
        if not entry.empty_layer:
            if layer_index < len(layers):
                size = layers[layer_index].size
            layer_index += 1
        rows.append(HistoryRow("<missing>", entry.created, entry.created_by, size, entry.comment))
    if not rows:
        rows = [
            HistoryRow("<missing>", image.config.created, "", layer.size, "") for layer in layers
        ]
    rows.reverse()
    if rows:
        top = rows[0]
        rows[0] = HistoryRow(str(image.id), top.created, top.created_by, top.size, top.comment)
    return rows


def created_at(image: LocalImage) -> str:
    when = parse_timestamp(image.config.created)
    return when.strftime("%Y-%m-%d %H:%M:%S +0000 UTC") if when else ""
