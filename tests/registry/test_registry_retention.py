"""Retention policies: keep the last N, drop old tags, protect patterns, remove untagged."""

from __future__ import annotations

import json
import sqlite3

from pallet.registry.config import RetentionConfig, RetentionPolicy
from pallet.registry.retention import run_retention_offline


def _set_pushed(data_dir, repo: str, ages: dict[str, float]) -> None:
    """Set each tag's push time to ``age`` seconds ago (and its manifest's)."""
    db = sqlite3.connect(data_dir / "metadata.db")
    for tag, age in ages.items():
        db.execute(
            "UPDATE tags SET pushed = strftime('%s','now') - ? WHERE repo = ? AND tag = ?",
            (age, repo, tag),
        )
    db.execute("UPDATE manifests SET pushed = pushed - 100000")
    db.commit()
    db.close()


def _tags(client, repo):
    return client.request("GET", f"/v2/{repo}/tags/list").json()["tags"]


def _run(registry, *policies, dry_run=False):
    config = RetentionConfig(policies=policies, untagged_grace_seconds=3600)
    return run_retention_offline(
        registry.config.data, config, dry_run=dry_run, audit_path=registry.config.audit_path
    )


def test_keep_last_n_by_push_time_with_protected_patterns(client, registry):
    digests = {
        t: client.push_image("svc/api", t, [t.encode()]) for t in ["v1", "v2", "v3", "v4", "latest"]
    }
    # push order by time: v1 oldest ... v4 newest, latest oldest of all
    _set_pushed(
        registry.config.data, "svc/api", {"latest": 900, "v1": 500, "v2": 400, "v3": 300, "v4": 200}
    )
    policy = RetentionPolicy(repositories=("svc/*",), keep_last=2, keep_tags=("latest",))
    dry = _run(registry, policy, dry_run=True)
    assert sorted(a.reference for a in dry.actions if a.kind == "tag") == ["v1", "v2"]
    assert _tags(client, "svc/api") == ["latest", "v1", "v2", "v3", "v4"]  # dry run changed nothing
    report = _run(registry, policy)
    assert sorted(a.reference for a in report.actions) == ["v1", "v2"]
    assert _tags(client, "svc/api") == ["latest", "v3", "v4"]
    # the manifests stay (untagged removal is off); GC only frees blobs of deleted manifests
    assert client.request("GET", f"/v2/svc/api/manifests/{digests['v1']}").status == 200


def test_max_age_and_untagged_removal(client, registry):
    old = client.push_image("svc/web", "old", [b"old"])
    new = client.push_image("svc/web", "new", [b"new"])
    untagged = client.push_image("svc/web", "temp", [b"temp"])
    client.request("DELETE", "/v2/svc/web/manifests/temp")
    _set_pushed(registry.config.data, "svc/web", {"old": 40 * 86400, "new": 10})
    policy = RetentionPolicy(repositories=("svc/web",), max_age_days=30, untagged=True)
    report = _run(registry, policy)
    kinds = {(a.kind, a.reference or a.digest) for a in report.actions}
    assert kinds == {("tag", "old"), ("manifest", old), ("manifest", untagged)}
    assert _tags(client, "svc/web") == ["new"]
    assert client.request("GET", f"/v2/svc/web/manifests/{old}").status == 404
    assert client.request("GET", f"/v2/svc/web/manifests/{new}").status == 200
    audit = [json.loads(line) for line in registry.config.audit_path.read_text().splitlines()]
    assert any(e["action"] == "retention.tag.delete" and e["reference"] == "old" for e in audit)


def test_untagged_removal_keeps_index_children_referrers_and_recent_pushes(client, registry):
    child = client.push_image("svc/multi", "child-tmp", [b"child"])
    body = client.request("GET", f"/v2/svc/multi/manifests/{child}").body
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": child,
                "size": len(body),
            }
        ],
    }
    assert client.push_manifest("svc/multi", "v1", index).status == 201
    client.request("DELETE", "/v2/svc/multi/manifests/child-tmp")
    empty = client.push_blob("svc/multi", b"{}")
    sig = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child,
            "size": len(body),
        },
    }
    sig_reply = client.push_manifest("svc/multi", client.sha256(json.dumps(sig).encode()), sig)
    assert sig_reply.status == 201
    _set_pushed(registry.config.data, "svc/multi", {})
    recent = client.push_image("svc/multi", "x", [b"in flight"])
    client.request("DELETE", "/v2/svc/multi/manifests/x")  # untagged but younger than the grace
    report = _run(registry, RetentionPolicy(repositories=("svc/multi",), untagged=True))
    assert report.actions == []
    for digest in (child, sig_reply.header("Docker-Content-Digest"), recent):
        assert client.request("GET", f"/v2/svc/multi/manifests/{digest}").status == 200


def test_retention_cli_with_config_file(client, registry, tmp_path, cli):
    for t in ["a", "b", "c"]:
        client.push_image("team/x", t, [t.encode()])
    _set_pushed(registry.config.data, "team/x", {"a": 300, "b": 200, "c": 100})
    config = tmp_path / "registry.toml"
    config.write_text(
        f'data = "{registry.config.data}"\n'
        "[[retention.policy]]\n"
        'repositories = ["team/*"]\n'
        "keep_last = 1\n"
    )
    cmd = ["registry", "retention", "--config", str(config)]
    out = cli(*cmd, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would delete tag team/x:a" in out.stdout and "would delete tag team/x:b" in out.stdout
    assert _tags(client, "team/x") == ["a", "b", "c"]
    assert cli(*cmd).returncode == 0
    assert _tags(client, "team/x") == ["c"]


def test_scheduled_retention_and_gc_run_in_the_server(make_registry, make_client):
    from pallet.registry.schedule import run_gc, run_retention

    reg = make_registry(
        retention=RetentionConfig(policies=(RetentionPolicy(repositories=("*",), keep_last=1),))
    )
    client = make_client(reg.url)
    client.push_image("s/r", "one", [b"1"])
    _set_pushed(reg.config.data, "s/r", {"one": 100})
    client.push_image("s/r", "two", [b"2"])
    assert client.request("GET", "/v2/s/r/manifests/one").status == 200  # now cached
    report = reg.call(run_retention(reg.state))
    assert [a.reference for a in report.actions] == ["one"]
    # the server's manifest cache noticed the change made on another connection
    assert client.request("GET", "/v2/s/r/manifests/one").status == 404
    assert reg.call(run_gc(reg.state, dry_run=True)).dry_run


def test_gc_and_retention_run_on_their_schedules(make_registry, make_client, monkeypatch):
    import time

    from pallet.registry import schedule
    from pallet.registry.config import GCConfig

    monkeypatch.setattr(schedule, "MINUTE", 0.05)
    reg = make_registry(
        gc=GCConfig(grace_seconds=3600, schedule_minutes=1),
        retention=RetentionConfig(
            policies=(RetentionPolicy(repositories=("*",), keep_last=1),), schedule_minutes=1
        ),
    )
    client = make_client(reg.url)
    client.push_image("sched/r", "old", [b"old"])
    _set_pushed(reg.config.data, "sched/r", {"old": 100})
    client.push_image("sched/r", "new", [b"new"])
    orphan = client.push_blob("sched/r", b"scheduled orphan")
    db = sqlite3.connect(reg.config.data / "metadata.db")
    db.execute("UPDATE repo_blobs SET linked = linked - 7200 WHERE digest = ?", (orphan,))
    db.commit()
    db.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tags = _tags(client, "sched/r")
        gone = client.request("GET", f"/v2/sched/r/blobs/{orphan}").status == 404
        if tags == ["new"] and gone:
            break
        time.sleep(0.05)
    assert _tags(client, "sched/r") == ["new"]
    assert client.request("GET", f"/v2/sched/r/blobs/{orphan}").status == 404
