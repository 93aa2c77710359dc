"""images, inspect, history, tag, rmi, prune, df and system check through the real CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pallet_cli import Pallet, store_state


def _config_digest(root: Path, manifest_digest: str) -> str:
    manifest = json.loads((root / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_bytes())
    config_hex = manifest["config"]["digest"].split(":")[1]
    data = (root / "blobs" / "sha256" / config_hex).read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _index_entries(root: Path) -> list[dict[str, object]]:
    return json.loads((root / "index.json").read_text())["manifests"]  # type: ignore[no-any-return]


def test_bootstrap_then_images_inspect_history(pallet: Pallet) -> None:
    out = pallet("bootstrap", "busybox", "test/bb:1").stdout.split()
    assert out[0] == "test/bb:1"
    root = pallet.root
    (entry,) = _index_entries(root)
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "docker.io/test/bb:1"}
    image_id = _config_digest(root, str(entry["digest"]))
    assert out[1] == image_id  # the image ID is the config digest, as in docker

    lines = pallet("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    fields = lines[1].split()
    assert fields[:3] == ["test/bb", "1", image_id.split(":")[1][:12]]
    assert pallet("images", "-q").stdout.split() == [image_id.split(":")[1][:12]]
    assert pallet("images", "-q", "--no-trunc").stdout.split() == [image_id]
    row = json.loads(pallet("images", "--format", "json").stdout)
    assert (row["Repository"], row["Tag"], row["Digest"]) == ("test/bb", "1", entry["digest"])

    (doc,) = json.loads(pallet("inspect", "test/bb:1").stdout)
    assert doc["Id"] == image_id
    assert doc["RepoTags"] == ["test/bb:1"]
    assert doc["Config"]["Cmd"] == ["sh"]
    assert doc["Os"] == "linux"
    assert len(doc["RootFS"]["Layers"]) == 1
    # lookup by ID prefix gives the same image
    (by_id,) = json.loads(pallet("inspect", image_id.split(":")[1][:8]).stdout)
    assert by_id["Id"] == image_id
    assert pallet("inspect", "-f", "{{.Config.Cmd}}", "test/bb:1").stdout.strip() == "[sh]"

    hist = pallet("history", "test/bb:1").stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"]
    assert hist[1].startswith(image_id.split(":")[1][:12])
    assert hist[2].startswith("<missing>")
    assert "CMD" in hist[1]


def test_tag_and_rmi_untag_versus_delete(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox", "a/one:latest")
    pallet("tag", "a/one", "b/two:x")
    root = pallet.root
    assert len(_index_entries(root)) == 2
    image_id = json.loads(pallet("inspect", "a/one").stdout)[0]["Id"]

    # an ID naming an image in two repositories needs -f
    refused = pallet("rmi", image_id.split(":")[1][:12], check=False)
    assert refused.returncode != 0
    assert "referenced in multiple repositories" in refused.stderr
    assert len(_index_entries(root)) == 2

    # a tag that is not the last name is only untagged
    assert pallet("rmi", "b/two:x").stdout.splitlines() == ["Untagged: b/two:x"]
    assert len(_index_entries(root)) == 1
    # the last name deletes the image, and its blobs go
    assert pallet("rmi", "a/one").stdout.splitlines() == [
        "Untagged: a/one:latest",
        f"Deleted: {image_id}",
    ]
    assert _index_entries(root) == []
    assert list((root / "blobs" / "sha256").iterdir()) == []


def test_rmi_force_by_id_and_missing_image(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox", "a/one")
    pallet("tag", "a/one", "b/two")
    image_id = json.loads(pallet("inspect", "a/one").stdout)[0]["Id"]
    out = pallet("rmi", "-f", image_id).stdout.splitlines()
    assert sorted(out[:2]) == ["Untagged: a/one:latest", "Untagged: b/two:latest"]
    assert out[2] == f"Deleted: {image_id}"
    missing = pallet("rmi", "nothere", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: No such image: nothere:latest"


def test_prune_dangling_then_all(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox", "keep:1")
    root = pallet.root
    # make a dangling image: retag keep:1's name onto a new image
    pallet("bootstrap", "busybox", "old:1")
    pallet("tag", "keep:1", "old:1")  # old:1's first image is now untagged (dangling)
    listed = pallet("images").stdout
    assert "<none>" in listed
    out = pallet("image", "prune", "-f").stdout
    assert out.startswith("Deleted Images:\ndeleted: sha256:")
    assert "<none>" not in pallet("images").stdout
    assert len(_index_entries(root)) == 2  # keep:1 and old:1, one image
    # nothing was created within the last hour boundary filter: until=1h keeps it
    assert (
        "Deleted Images" not in pallet("image", "prune", "-a", "-f", "--filter", "until=1h").stdout
    )
    out = pallet("image", "prune", "-a", "-f").stdout
    assert "untagged: keep:1" in out and "untagged: old:1" in out
    assert _index_entries(root) == []


def test_bad_references_are_one_line_errors(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox")
    root = pallet.root
    before = store_state(root)
    for args in (
        ("tag", "busybox", "Bad/Upper"),
        ("tag", "busybox", "x@sha256:12"),
        ("inspect", "nope"),
    ):
        proc = pallet(*args, check=False)
        assert proc.returncode != 0
        assert proc.stderr.startswith("error: ")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr
    assert store_state(root) == before


def test_system_check_finds_a_corrupt_blob(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox")
    root = pallet.root
    assert pallet("system", "check").stdout.strip().endswith(": ok")
    layer = max((root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    proc = pallet("system", "check", check=False)
    assert proc.returncode == 1
    assert f"corrupt-blob: sha256:{layer.name}" in proc.stdout
    assert "1 corrupt" in proc.stderr


def test_system_df_counts_images(pallet: Pallet) -> None:
    pallet("bootstrap", "busybox")
    rows = {
        line.split()[0]: line.split() for line in pallet("system", "df").stdout.splitlines()[1:]
    }
    assert rows["Images"][1] == "1"
