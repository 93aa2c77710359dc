"""The OCI image layout's two metadata files, as data (reading and writing them is the
store's and the transports' job).

``oci-layout`` is ``{"imageLayoutVersion": "1.0.0"}``; ``index.json`` is an image index
whose entries name images with ``org.opencontainers.image.ref.name``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pallet.errors import OCIError
from pallet.oci import mediatypes as mt
from pallet.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from pallet.oci.index import Index
from pallet.oci.jsonutil import dump_bytes, load_object

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
LAYOUT_FILE_BYTES = dump_bytes({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})


def parse_layout_file(data: bytes) -> str:
    """Validate an ``oci-layout`` file; returns its version (only 1.0.0 exists)."""
    doc = load_object(data, LAYOUT_FILE, max_size=64 * 1024)
    version = doc.get("imageLayoutVersion")
    if not isinstance(version, str):
        raise OCIError(f"{LAYOUT_FILE} has no imageLayoutVersion string")
    if version != mt.OCI_LAYOUT_VERSION:
        raise OCIError(f"{LAYOUT_FILE}: unsupported imageLayoutVersion {version!r}")
    return version


def blob_path(digest: str) -> str:
    """Where a blob lives relative to the layout root: ``blobs/<alg>/<encoded>``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{BLOBS_DIR}/{algorithm}/{encoded}"


def parse_index_file(data: bytes) -> Index:
    """Parse ``index.json`` (an image index; ``mediaType`` may be absent)."""
    return Index.from_bytes(data, mt.OCI_INDEX)


def build_index_file(manifests: Sequence[Descriptor]) -> Index:
    """A new ``index.json`` listing ``manifests`` in the given order."""
    return Index.build(manifests)


def find_ref(index: Index, name: str) -> list[Descriptor]:
    """The entries whose ``org.opencontainers.image.ref.name`` is ``name``."""
    return [d for d in index.manifests if d.annotations.get(ANNOTATION_REF_NAME) == name]


def with_ref(index: Index, desc: Descriptor, name: str) -> Index:
    """``index`` with ``name`` pointing at ``desc`` (replacing what it named before), the
    way skopeo and umoci tag into a layout."""
    kept = [d for d in index.manifests if d.annotations.get(ANNOTATION_REF_NAME) != name]
    return Index.build(
        [*kept, desc.with_annotation(ANNOTATION_REF_NAME, name)],
        annotations=index.annotations or None,
    )


def without_ref(index: Index, name: str) -> Index:
    """``index`` without the entries named ``name``."""
    kept = [d for d in index.manifests if d.annotations.get(ANNOTATION_REF_NAME) != name]
    return Index.build(kept, annotations=index.annotations or None)
