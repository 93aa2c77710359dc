"""index.json: an OCI image layout index of named and dangling images, changed safely."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pallet.errors import NotFound, StoreError
from pallet.oci.descriptor import ANNOTATION_REF_NAME
from pallet.store import Store

BUSYBOX = "docker.io/library/busybox:latest"

# The shape the OCI image-layout spec requires of index.json (the part we write).
INDEX_SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "manifests"],
    "properties": {
        "schemaVersion": {"const": 2},
        "mediaType": {"const": "application/vnd.oci.image.index.v1+json"},
        "manifests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["mediaType", "digest", "size"],
                "properties": {
                    "digest": {"type": "string", "pattern": "^sha256:[a-f0-9]{64}$"},
                    "size": {"type": "integer", "minimum": 0},
                    "annotations": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                    },
                },
            },
        },
    },
}


def index_doc(store: Store) -> Any:
    doc = json.loads((store.root / "index.json").read_text())
    jsonschema.validate(doc, INDEX_SCHEMA)
    return doc


def test_open_creates_a_valid_oci_layout(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "new" / "root")
    layout = json.loads((store.root / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert index_doc(store)["manifests"] == []
    for sub in ("blobs/sha256", "ingest", "snapshots", "containers", "volumes"):
        assert (store.root / sub).is_dir()
    assert (store.root / "state.db").is_file()
    assert Store.open(store.root).images() == []  # reopening is harmless


_OPENER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pallet.oci.descriptor import Descriptor
    from pallet.store import Store

    desc = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 1)
    Store.open(Path(sys.argv[1])).tag(f"docker.io/library/p:{sys.argv[2]}", desc)
    """
)


def test_eight_processes_creating_one_store_at_once(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(root), str(i)]) for i in range(8)]
    assert [p.wait() for p in procs] == [0] * 8
    names = {e.name for e in Store.open(root).images()}
    assert names == {f"docker.io/library/p:{i}" for i in range(8)}


def test_open_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a pallet store or OCI image layout"):
        Store.open(tmp_path / "home")
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store.open(tmp_path / "file")


def test_open_adopts_an_existing_oci_layout(tmp_path: Path, kit: Any) -> None:
    image = kit.simple_image("adopted")
    root = tmp_path / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True)
    for blob in image.blobs:
        (root / "blobs" / "sha256" / kit.sha256(blob).encoded).write_bytes(blob)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {**image.descriptor.to_json(), "annotations": {ANNOTATION_REF_NAME: "v1"}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    store = Store.open(root)
    assert store.resolve("v1") == image.descriptor.with_annotations({ANNOTATION_REF_NAME: "v1"})
    assert store.check().ok


def test_tag_resolve_untag(store: Store, kit: Any) -> None:
    desc = kit.put_image(store, kit.simple_image("a"))
    store.tag(BUSYBOX, desc)
    store.tag("docker.io/library/busybox:1", desc)
    assert store.resolve(BUSYBOX).digest == desc.digest
    names = sorted(e.name for e in store.images())
    assert names == ["docker.io/library/busybox:1", BUSYBOX]
    entries = index_doc(store)["manifests"]
    assert {e["annotations"][ANNOTATION_REF_NAME] for e in entries} == set(names)
    assert store.untag(BUSYBOX).digest == desc.digest
    with pytest.raises(NotFound, match="busybox:latest"):
        store.resolve(BUSYBOX)
    with pytest.raises(NotFound, match="busybox:latest"):
        store.untag(BUSYBOX)
    assert [e.name for e in store.images()] == ["docker.io/library/busybox:1"]


def test_retag_leaves_the_old_image_dangling(store: Store, kit: Any) -> None:
    old = kit.put_image(store, kit.simple_image("old"))
    new = kit.put_image(store, kit.simple_image("new"))
    store.tag(BUSYBOX, old)
    store.tag(BUSYBOX, new)
    entries = {e.digest: e.name for e in store.images()}
    assert entries == {new.digest: BUSYBOX, old.digest: None}
    store.tag("docker.io/library/old:1", old)  # naming it again drops the dangling entry
    assert sorted(e.name or "" for e in store.images()) == [BUSYBOX, "docker.io/library/old:1"]


def test_dangling_images_and_removal(store: Store, kit: Any) -> None:
    desc = kit.put_image(store, kit.simple_image("d"))
    store.add_image(desc)
    store.add_image(desc)  # recorded once
    assert [(e.digest, e.name) for e in store.images()] == [(desc.digest, None)]
    entry = index_doc(store)["manifests"][0]
    assert "annotations" not in entry
    store.tag("docker.io/library/d:1", desc)
    store.remove_image(desc.digest)
    assert store.images() == []
    with pytest.raises(NotFound, match=desc.digest):
        store.remove_image(desc.digest)


def test_entries_written_by_others_survive_untouched(store: Store, kit: Any) -> None:
    foreign = kit.put_image(store, kit.simple_image("foreign"))
    entry = {
        **foreign.to_json(),
        "annotations": {ANNOTATION_REF_NAME: "skopeo-tag", "com.example.note": "keep me"},
        "x-unknown-field": [1, 2, 3],
    }
    odd = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "bogus"}
    doc = {"schemaVersion": 2, "manifests": [entry, odd]}
    (store.root / "index.json").write_text(json.dumps(doc))
    store.tag(BUSYBOX, kit.put_image(store, kit.simple_image("mine")))
    after = json.loads((store.root / "index.json").read_text())["manifests"]
    assert entry in after and odd in after
    assert store.resolve("skopeo-tag").annotations["com.example.note"] == "keep me"


def test_update_index_is_one_transaction(store: Store, kit: Any) -> None:
    a = kit.put_image(store, kit.simple_image("a"))
    store.tag("docker.io/library/a:1", a)
    store.update_index(lambda entries: [*entries, a.with_annotations({ANNOTATION_REF_NAME: "x"})])
    assert sorted(e.name for e in store.images()) == ["docker.io/library/a:1", "x"]
    with pytest.raises(RuntimeError):
        store.update_index(lambda entries: (_ for _ in ()).throw(RuntimeError("boom")))
    assert len(store.images()) == 2


_TAGGER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pallet.oci.descriptor import Descriptor
    from pallet.store import Store

    root, worker, digest, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = Store.open(Path(root))
    desc = Descriptor("application/vnd.oci.image.manifest.v1+json", digest, size)
    for i in range(20):
        store.tag(f"docker.io/library/w{worker}:t{i}", desc)
    """
)

_READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    path = Path(sys.argv[1]) / "index.json"
    reads = 0
    while not (Path(sys.argv[1]) / "stop").exists():
        json.loads(path.read_bytes())  # raises on a torn file
        reads += 1
    print(reads)
    """
)


def test_eight_processes_tagging_at_once_lose_nothing(store: Store, kit: Any) -> None:
    desc = kit.put_image(store, kit.simple_image("shared"))
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(store.root)], stdout=subprocess.PIPE, text=True
    )
    args = [str(store.root), desc.digest, str(desc.size)]
    workers = [
        subprocess.Popen([sys.executable, "-c", _TAGGER, args[0], str(w), *args[1:]])
        for w in range(8)
    ]
    assert [w.wait() for w in workers] == [0] * 8
    (store.root / "stop").touch()
    out, _ = reader.communicate()
    assert reader.returncode == 0 and int(out) > 0
    names = {e["annotations"][ANNOTATION_REF_NAME] for e in index_doc(store)["manifests"]}
    assert names == {f"docker.io/library/w{w}:t{i}" for w in range(8) for i in range(20)}
    assert len(index_doc(store)["manifests"]) == 160
