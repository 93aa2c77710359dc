"""Garbage collection: unreferenced blobs go after the grace period, nothing in use ever does."""

from __future__ import annotations

import json
import os
import sqlite3
import time

from pallet.oci.digest import Digest
from pallet.registry.gc import run_gc_offline


def _age_links(data_dir, seconds: float) -> None:
    """Pretend every repository link was made ``seconds`` ago."""
    db = sqlite3.connect(data_dir / "metadata.db")
    db.execute("UPDATE repo_blobs SET linked = linked - ?", (seconds,))
    db.commit()
    db.close()


def _gc(registry, dry_run=False, grace=3600):
    return run_gc_offline(
        registry.config.data,
        grace_seconds=grace,
        upload_max_age_seconds=86400,
        dry_run=dry_run,
        audit_path=registry.config.audit_path,
    )


def test_gc_keeps_referenced_and_recent_blobs_and_removes_old_orphans(client, registry):
    kept = client.push_image("app/one", "v1", [b"layer-kept"])
    orphan = client.push_blob("app/one", b"orphan blob")
    fresh_orphan_data = b"fresh orphan"
    _age_links(registry.config.data, 7200)
    fresh = client.push_blob("app/one", fresh_orphan_data)

    dry = _gc(registry, dry_run=True)
    assert dry.blobs_removed == [orphan]
    assert client.request("GET", f"/v2/app/one/blobs/{orphan}").status == 200  # dry run: untouched

    report = _gc(registry)
    assert report.blobs_removed == [orphan]
    assert report.bytes_freed == len(b"orphan blob")
    assert client.request("GET", f"/v2/app/one/blobs/{orphan}").status == 404
    assert not registry.state.blobs.path(Digest(client.sha256(b"orphan blob"))).exists()
    assert client.request("GET", f"/v2/app/one/blobs/{fresh}").status == 200
    manifest = client.request("GET", f"/v2/app/one/manifests/{kept}").json()
    for desc in [manifest["config"], *manifest["layers"]]:
        assert client.request("GET", f"/v2/app/one/blobs/{desc['digest']}").status == 200
    audit = [json.loads(line) for line in registry.config.audit_path.read_text().splitlines()]
    assert {"action": "gc.blob.delete", "digest": orphan}.items() <= next(
        e for e in audit if e["action"] == "gc.blob.delete"
    ).items()


def test_deleted_image_is_freed_but_shared_layers_stay(client, registry):
    shared = b"shared layer"
    first = client.push_image("app/a", "v1", [shared, b"only in a"])
    client.push_image("app/b", "v1", [shared, b"only in b"])
    client.request("DELETE", f"/v2/app/a/manifests/{first}")
    _age_links(registry.config.data, 7200)
    report = _gc(registry)
    assert client.sha256(b"only in a") in report.blobs_removed
    assert first in report.blobs_removed
    assert client.sha256(shared) not in report.blobs_removed
    assert client.request("GET", f"/v2/app/b/blobs/{client.sha256(shared)}").status == 200
    assert client.request("GET", "/v2/app/b/manifests/v1").status == 200


def test_head_refreshes_a_blob_so_a_push_in_flight_keeps_it(client, registry):
    digest = client.push_blob("app/c", b"about to be reused")
    _age_links(registry.config.data, 7200)
    # A pusher checks the blob exists (HEAD) and will reference it in its manifest next.
    assert client.request("HEAD", f"/v2/app/c/blobs/{digest}").status == 200
    assert _gc(registry).blobs_removed == []
    config = client.push_blob("app/c", b"{}")
    manifest = client.image_manifest([(digest, 18)], (config, 2))
    assert client.push_manifest("app/c", "v1", manifest).status == 201


def test_orphan_files_and_stale_uploads(client, registry):
    data_dir = registry.config.data
    stray = registry.state.blobs.path(Digest(client.sha256(b"stray")))
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    old = time.time() - 7200
    os.utime(stray, (old, old))
    r = client.request("POST", "/v2/app/d/blobs/uploads/")
    location = r.header("Location")
    db = sqlite3.connect(data_dir / "metadata.db")
    db.execute("UPDATE uploads SET updated = updated - 200000")
    db.commit()
    db.close()
    report = _gc(registry)
    assert report.orphan_files_removed == [client.sha256(b"stray")]
    assert not stray.exists()
    assert len(report.uploads_expired) == 1
    assert client.request("GET", location).status == 404


def test_gc_cli_dry_run(client, registry, cli):
    orphan = client.push_blob("app/e", b"cli orphan")
    _age_links(registry.config.data, 7200)
    out = cli("registry", "gc", "--dry-run", "--data", str(registry.config.data))
    assert out.returncode == 0, out.stderr
    assert f"would remove blob {orphan}" in out.stdout
    assert client.request("GET", f"/v2/app/e/blobs/{orphan}").status == 200
    out = cli("registry", "gc", "--json", "--data", str(registry.config.data))
    assert json.loads(out.stdout)["blobs_removed"] == [orphan]
    assert client.request("GET", f"/v2/app/e/blobs/{orphan}").status == 404


def test_gc_cli_on_missing_data_is_one_line_error(tmp_path, cli):
    out = cli("registry", "gc", "--data", str(tmp_path / "none"))
    assert out.returncode != 0
    assert out.stderr.startswith("error: no registry data in")
