"""20 clients push overlapping images at once while GC, retention and pulls run: nothing lost."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

from pallet.registry.config import RetentionConfig, RetentionPolicy
from pallet.registry.gc import run_gc_offline
from pallet.registry.retention import run_retention_offline
from pallet.registry.schedule import run_gc

CLIENTS = 20
IMAGES_PER_CLIENT = 3
SHARED = [os.urandom(random.randint(1000, 150_000)) for _ in range(12)]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_like_a_client(
    client, repo: str, layers: list[bytes], tag: str, rng: random.Random
) -> str:
    """HEAD each blob, upload the missing ones (monolithic or chunked), then the manifest."""
    descs = []
    for blob in layers:
        digest = sha256(blob)
        if client.request("HEAD", f"/v2/{repo}/blobs/{digest}").status != 200:
            if rng.random() < 0.5:
                client.push_blob(repo, blob)
            else:
                location = client.request("POST", f"/v2/{repo}/blobs/uploads/").header("Location")
                half = len(blob) // 2
                r = client.request(
                    "PATCH", location, blob[:half], {"Content-Range": f"0-{half - 1}"}
                )
                assert r.status == 202, r.body
                r = client.request("PUT", f"{r.header('Location')}?digest={digest}", blob[half:])
                assert r.status == 201, r.body
        descs.append((digest, len(blob)))
    config = f'{{"tag": "{tag}", "repo": "{repo}"}}'.encode()
    manifest = client.image_manifest(descs, (client.push_blob(repo, config), len(config)))
    r = client.push_manifest(repo, tag, manifest)
    assert r.status == 201, (repo, tag, r.body)
    return str(r.header("Docker-Content-Digest"))


def test_concurrent_pushes_with_gc_and_retention(make_registry, make_client):
    policy = RetentionPolicy(repositories=("*",), keep_last=1000, untagged=True)
    reg = make_registry(retention=RetentionConfig(policies=(policy,), untagged_grace_seconds=60))
    data_dir = reg.config.data
    seed = make_client(reg.url)
    # Old garbage: blobs no manifest uses, linked long ago; some will be reused by pushers.
    reused = [seed.push_blob(f"team/r{i % 4}", SHARED[i]) for i in range(6)]
    unused = [seed.push_blob("team/r0", os.urandom(500)) for _ in range(3)]
    db = sqlite3.connect(data_dir / "metadata.db")
    db.execute("UPDATE repo_blobs SET linked = linked - 7200")
    db.commit()
    db.close()

    stop = threading.Event()
    errors: list[BaseException] = []
    gc_runs = [0]

    def maintenance() -> None:
        try:
            while not stop.is_set():
                run_gc_offline(
                    data_dir,
                    grace_seconds=30,
                    upload_max_age_seconds=3600,
                    dry_run=False,
                    audit_path=None,
                )
                run_retention_offline(
                    data_dir, reg.config.retention, dry_run=False, audit_path=None
                )
                reg.call(run_gc(reg.state))
                gc_runs[0] += 1
        except BaseException as exc:
            errors.append(exc)

    pushed: dict[tuple[str, str], tuple[str, list[bytes]]] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        client = make_client(reg.url)
        for i in range(IMAGES_PER_CLIENT):
            repo = f"team/r{rng.randrange(4)}"
            layers = [*rng.sample(SHARED, 3), os.urandom(2000)]
            tag = f"c{n}-i{i}"
            digest = _push_like_a_client(client, repo, layers, tag, rng)
            with lock:
                pushed[(repo, tag)] = (digest, layers)
                done = list(pushed.items())
            # pull something pushed earlier, by anyone
            (prepo, ptag), (pdigest, players) = rng.choice(done)
            got = client.request("GET", f"/v2/{prepo}/manifests/{ptag}")
            assert got.status == 200 and got.header("Docker-Content-Digest") == pdigest
            blob = rng.choice(players)
            assert client.request("GET", f"/v2/{prepo}/blobs/{sha256(blob)}").body == blob

    keeper = threading.Thread(target=maintenance)
    keeper.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [pool.submit(worker, n) for n in range(CLIENTS)]:
                future.result()
    finally:
        stop.set()
        keeper.join()
    assert not errors, errors
    assert gc_runs[0] >= 1
    assert len(pushed) == CLIENTS * IMAGES_PER_CLIENT

    client = make_client(reg.url)
    for (repo, tag), (digest, layers) in pushed.items():
        got = client.request("GET", f"/v2/{repo}/manifests/{tag}")
        assert got.status == 200 and got.header("Docker-Content-Digest") == digest
        manifest = got.json()
        assert [d["digest"] for d in manifest["layers"]] == [sha256(b) for b in layers]
        for desc in [manifest["config"], *manifest["layers"]]:
            body = client.request("GET", f"/v2/{repo}/blobs/{desc['digest']}").body
            assert sha256(body) == desc["digest"]
    # Old garbage nobody reused is gone; what pushers reused is intact (checked above).
    assert not any(reg.state.meta.has_blob(d) for d in unused)
    used = {sha256(b) for _, layers in pushed.values() for b in layers}
    assert set(reused) & used
