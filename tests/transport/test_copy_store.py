"""The local store as a copy end: round trips through every local transport keep the
image ID; a failed load or save leaves the store (and the output path) as they were."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import DigestMismatch, PalletError, TransportError
from pallet.transport.copy import copy, parse_image_manifest
from pallet.transport.names import open_destination, open_source, parse_spec
from pallet.transport.oci_archive import ArchiveIndex
from pallet.transport.store import StoreSource, load_archive, save_images

LOCAL = ["oci", "oci-archive", "docker-archive", "pallet"]


def transfer(src: str, dst: str, root: Path, **kwargs):
    source = open_source(parse_spec(src), root)
    try:
        destination = open_destination(parse_spec(dst), root)
        try:
            return copy(source, destination, **kwargs)
        finally:
            destination.close()
    finally:
        source.close()


def spec_for(transport: str, base: Path, name: str) -> str:
    if transport == "pallet":
        return f"pallet:{name}"
    path = base / (name.replace(":", "-") + ("" if transport == "oci" else ".tar"))
    return f"{transport}:{path}:{name}"


def image_of(spec: str, root: Path) -> tuple[bytes, list[str]]:
    """The config bytes and layer diff_ids of the image ``spec`` names."""
    source = open_source(parse_spec(spec), root)
    try:
        manifest = parse_image_manifest(source.get_manifest())
        with source.open_blob(manifest.config) as f:
            config = f.read()
    finally:
        source.close()
    return config, json.loads(config)["rootfs"]["diff_ids"]


def store_state(root: Path) -> tuple[str, set[str]]:
    index = root / "index.json"
    blobs = {str(p.relative_to(root)) for p in (root / "blobs").rglob("*") if p.is_file()}
    return (index.read_text() if index.exists() else ""), blobs


@pytest.mark.parametrize("first", LOCAL)
@pytest.mark.parametrize("second", LOCAL)
def test_copy_between_every_pair_keeps_the_image(first, second, tiny_layout, tmp_path) -> None:
    layout, image = tiny_layout("v1")
    root = tmp_path / "store"
    a = spec_for(first, tmp_path / "a", "one:1")
    b = spec_for(second, tmp_path / "b", "two:1")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    transfer(f"oci:{layout}:v1", a, root)
    transfer(a, b, root)
    config, diff_ids = image_of(b, root)
    assert config == image.config  # same bytes, so the same image ID
    assert diff_ids == image.diff_ids


def _save_and_load(tiny_layout, tmp_path: Path, fmt: str):
    """Put the tiny image in a store, save it as ``fmt``, load that into a fresh store."""
    layout, image = tiny_layout("v1")
    root = tmp_path / "store"
    transfer(f"oci:{layout}:v1", "pallet:tiny:1", root)
    archive = tmp_path / "saved.tar"
    save_images(root, ["tiny:1"], archive, fmt)
    fresh = tmp_path / "fresh"
    index = ArchiveIndex.open_path(archive)
    (loaded,) = load_archive(fresh, index)
    index.close()
    return image, fresh, loaded


def test_docker_archive_round_trip_through_the_store(tiny_layout, tmp_path) -> None:
    image, fresh, loaded = _save_and_load(tiny_layout, tmp_path, "docker-archive")
    assert loaded.names == ("docker.io/library/tiny:1",)
    assert loaded.image_id == image.image_id
    source = StoreSource.open(fresh, "tiny:1")
    manifest = parse_image_manifest(source.get_manifest())
    assert manifest.config.digest == image.image_id
    # layers come back gzip-compressed, holding the same tars
    assert all(d.media_type.endswith("gzip") for d in manifest.layers)


def test_oci_archive_round_trip_keeps_the_manifest_digest(tiny_layout, tmp_path) -> None:
    image, fresh, loaded = _save_and_load(tiny_layout, tmp_path, "oci-archive")
    assert loaded.names == ("docker.io/library/tiny:1",)
    assert StoreSource.open(fresh, "tiny:1").get_manifest().raw == image.manifest


def _corrupt_second_image(tiny_layout, tmp_path) -> Path:
    """A docker-archive of two images whose second image has a corrupt layer."""
    root = tmp_path / "store"
    for tag in ("a", "b"):
        layout, _ = tiny_layout("v1", tag=tag)
        transfer(f"oci:{layout}:v1", f"pallet:{tag}:1", root)
    good = tmp_path / "good.tar"
    save_images(root, ["a:1", "b:1"], good, "docker-archive")
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as tin, tarfile.open(bad, "w") as tout:
        entries = json.load(tin.extractfile("manifest.json"))
        victim = entries[1]["Layers"][-1]
        for info in tin:
            data = tin.extractfile(info).read() if info.isfile() else None
            if info.name == victim:
                data = data[:-600] + b"\xff" * 600
            tout.addfile(info, None if data is None else io.BytesIO(data))
    return bad


def test_failed_load_leaves_the_store_as_it_was(tiny_layout, tmp_path) -> None:
    bad = _corrupt_second_image(tiny_layout, tmp_path)
    target = tmp_path / "target"
    layout, _ = tiny_layout("v1", tag="already")
    transfer(f"oci:{layout}:v1", "pallet:already:1", target)
    before = store_state(target)
    index = ArchiveIndex.open_path(bad)
    with pytest.raises(DigestMismatch):
        load_archive(target, index)
    index.close()
    assert store_state(target) == before


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_archive_leaves_the_store_as_it_was(tiny_layout, tmp_path, keep: float) -> None:
    root = tmp_path / "store"
    layout, _ = tiny_layout("v1")
    transfer(f"oci:{layout}:v1", "pallet:tiny:1", root)
    archive = tmp_path / "saved.tar"
    save_images(root, ["tiny:1"], archive, "docker-archive")
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * keep)])
    target = tmp_path / "target"
    layout2, _ = tiny_layout("v1", tag="other")
    transfer(f"oci:{layout2}:v1", "pallet:other:1", target)
    before = store_state(target)
    with pytest.raises(PalletError):
        index = ArchiveIndex.open_path(archive)
        try:
            load_archive(target, index)
        finally:
            index.close()
    assert store_state(target) == before


def test_interrupted_save_leaves_no_file(tiny_layout, tmp_path, monkeypatch) -> None:
    root = tmp_path / "store"
    layout, _ = tiny_layout("v1")
    transfer(f"oci:{layout}:v1", "pallet:tiny:1", root)
    out = tmp_path / "out" / "saved.tar"
    out.parent.mkdir()
    opened = []
    real_open_blob = StoreSource.open_blob

    def interrupting(self, desc):
        opened.append(desc)
        if len(opened) == 2:
            raise KeyboardInterrupt
        return real_open_blob(self, desc)

    monkeypatch.setattr(StoreSource, "open_blob", interrupting)
    for fmt in ("docker-archive", "oci-archive"):
        opened.clear()
        with pytest.raises(KeyboardInterrupt):
            save_images(root, ["tiny:1"], out, fmt)
        assert list(out.parent.iterdir()) == []


def test_unknown_archive_is_refused(tmp_path) -> None:
    path = tmp_path / "x.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    index = ArchiveIndex.open_path(path)
    with pytest.raises(TransportError, match="not a docker-archive or an OCI archive"):
        load_archive(tmp_path / "store", index)
    index.close()


def test_failed_load_keeps_blobs_another_operation_leased(tiny_layout, tmp_path) -> None:
    from pallet.store import Store

    bad = _corrupt_second_image(tiny_layout, tmp_path)
    with tarfile.open(bad) as tar:
        first_config = json.load(tar.extractfile("manifest.json"))[0]["Config"]
    digest = "sha256:" + first_config.removesuffix(".json")
    target = tmp_path / "target"
    store = Store.open(target)
    with store.lease([digest]):  # as a concurrent pull of the same image would hold
        index = ArchiveIndex.open_path(bad)
        with pytest.raises(DigestMismatch):
            load_archive(target, index)
        index.close()
        assert store.has_blob(digest)
        assert store.blobs() == [digest]


def test_save_by_image_id_writes_an_untagged_image(tiny_layout, tmp_path) -> None:
    layout, image = tiny_layout("v1")
    root = tmp_path / "store"
    transfer(f"oci:{layout}:v1", "pallet:tiny:1", root)
    archive = tmp_path / "by-id.tar"
    # an ID prefix and a name of the same image share one entry, tagged by the name only
    save_images(root, [image.image_id[7:19], "tiny:1"], archive, "docker-archive")
    with tarfile.open(archive) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
    assert [e["RepoTags"] for e in entries] == [["tiny:1"]]
    save_images(root, [image.image_id], archive, "docker-archive")
    index = ArchiveIndex.open_path(archive)
    (loaded,) = load_archive(tmp_path / "fresh", index)
    index.close()
    assert loaded.names == ()
    assert loaded.image_id == image.image_id


FIXTURES = CONFORMANCE / "misc/go-containerregistry"


@pytest.mark.parametrize(
    "name",
    [
        "tarball/test_image_1.tar",
        "tarball/test_bundle.tar",
        "tarball/test_link.tar",
        "tarball/hello-world-v25.tar",
        "mutate/whiteout_image.tar",
        "mutate/whiteout_dir.tar",
        "mutate/overwritten_file.tar",
        "mutate/source_image_with_empty_layer_history.tar",
    ],
)
def test_docker_save_fixtures_load_with_their_names_and_ids(name: str, tmp_path) -> None:
    path = FIXTURES / name
    with tarfile.open(path) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
        configs = [tar.extractfile(e["Config"]).read() for e in entries]
    index = ArchiveIndex.open_path(path)
    loaded = load_archive(tmp_path / "store", index)
    index.close()
    assert [image.image_id for image in loaded] == [
        "sha256:" + hashlib.sha256(c).hexdigest() for c in configs
    ]
    assert [len(image.names) for image in loaded] == [len(e["RepoTags"] or []) for e in entries]
    for image in loaded:
        for tag in image.names:
            source = StoreSource.open(tmp_path / "store", tag)
            manifest = parse_image_manifest(source.get_manifest())
            source.close()
            assert manifest.config.digest == image.image_id


def test_layer_with_a_wrong_diff_id_leaves_the_store_as_it_was(tiny_layout, kit, tmp_path) -> None:
    import gzip

    layout, image = tiny_layout("v1")
    # a well-formed layer whose tar is not the one the config's diff_id names
    other = gzip.compress(kit.layer_tar({"x": b"y"}), mtime=0)
    manifest = json.loads(image.manifest)
    manifest["layers"][1] = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": kit.sha256(other),
        "size": len(other),
    }
    raw = json.dumps(manifest).encode()
    kit.write_blob(layout, other)
    kit.write_blob(layout, raw)
    kit.write_layout(
        layout,
        [("v1", {"mediaType": manifest["mediaType"], "digest": kit.sha256(raw), "size": len(raw)})],
    )
    root = tmp_path / "store"
    other_layout, _ = tiny_layout("v1", tag="other")
    transfer(f"oci:{other_layout}:v1", "pallet:other:1", root)
    before = store_state(root)
    # recompressed on the way in: the first layer's zstd blob is written, then the second
    # layer fails its diff_id check and everything written is taken back
    with pytest.raises(DigestMismatch, match=image.diff_ids[1][7:]):
        transfer(f"oci:{layout}:v1", "pallet:bad:1", root, dest_compression="zstd")
    assert store_state(root) == before


# (an archive reads exactly the announced size, so bytes past it are never written)
@pytest.mark.parametrize(
    ("dest", "damage"),
    [*((dest, "flipped") for dest in LOCAL), ("oci", "longer"), ("pallet", "longer")],
)
def test_a_corrupt_source_blob_never_lands(dest, damage, tiny_layout, kit, tmp_path) -> None:
    # local destinations verify blobs themselves (copy does not hash them a second time)
    layout, image = tiny_layout("v1")
    config = layout / "blobs" / "sha256" / image.image_id.split(":")[1]
    data = config.read_bytes()
    config.write_bytes(data[:-1] + b"!" if damage == "flipped" else data + b"\n")
    root = tmp_path / "store"
    (tmp_path / "out").mkdir()
    target = spec_for(dest, tmp_path / "out", "bad:1")
    with pytest.raises(DigestMismatch, match=image.image_id.split(":")[1]):
        transfer(f"oci:{layout}:v1", target, root)
    if dest == "pallet":
        assert image.image_id.split(":")[1] not in kit.blob_files(root)
        assert "bad" not in (root / "index.json").read_text()
    elif dest == "oci":
        out = tmp_path / "out" / "bad-1"
        assert image.image_id.split(":")[1] not in kit.blob_files(out)
        assert not (out / "index.json").exists()
    else:
        assert list((tmp_path / "out").iterdir()) == []
