"""Operations: audit of writes, Prometheus metrics, health, webhooks, access logs."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest
from aiohttp import web

from pallet.registry.config import Webhook


def test_every_write_is_audited(client, registry):
    digest = client.push_image("audit/repo", "v1", [b"audited"])
    client.request("DELETE", "/v2/audit/repo/manifests/v1")
    client.request("DELETE", f"/v2/audit/repo/manifests/{digest}")
    lines = [json.loads(x) for x in registry.config.audit_path.read_text().splitlines()]
    actions = [(e["action"], e["reference"], e["digest"]) for e in lines]
    assert ("blob.push", "", client.sha256(b"audited")) in actions
    assert ("manifest.push", "v1", digest) in actions
    assert ("tag.delete", "v1", digest) in actions
    assert ("manifest.delete", "", digest) in actions
    assert all(e["outcome"] == "ok" and e["repository"] == "audit/repo" for e in lines)


def test_metrics_endpoint(client):
    client.push_image("m/repo", "v1", [b"metric"])
    client.request("GET", "/v2/m/repo/manifests/v1")
    client.request("GET", "/v2/m/repo/manifests/missing")
    r = client.request("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    text = r.body.decode()
    assert (
        'pallet_registry_http_requests_total{method="GET",route="manifest",status="200"} 1' in text
    )
    assert (
        'pallet_registry_http_requests_total{method="GET",route="manifest",status="404"} 1' in text
    )
    assert (
        'pallet_registry_http_request_duration_seconds_count{method="PUT",route="manifest"} 1'
        in text
    )
    assert "pallet_registry_manifest_pushes_total 1" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_health(client, registry):
    r = client.request("GET", "/healthz")
    assert r.status == 200 and r.json()["status"] == "ok"


class _Hook:
    """A webhook receiver on 127.0.0.1 that fails its first ``failures`` deliveries."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.events: list[dict] = []
        self.got = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return web.Response(status=503)
        assert (
            request.headers["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
        )
        self.events.extend((await request.json())["events"])
        self.got.set()
        return web.Response(status=200)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def start(self) -> str:
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return f"http://127.0.0.1:{port}/hook"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def hook():
    receiver = _Hook(failures=2)
    yield receiver
    receiver.stop()


def test_webhooks_on_push_and_delete_with_retries(make_registry, make_client, hook):
    url = hook.start()
    reg = make_registry(notifications=(Webhook(url=url, retries=4, backoff=0.01),))
    client = make_client(reg.url)
    digest = client.push_image("hooked/repo", "v1", [b"hooked"])
    assert hook.got.wait(10)
    client.request("DELETE", f"/v2/hooked/repo/manifests/{digest}")
    for _ in range(100):
        if any(e["action"] == "delete" for e in hook.events):
            break
        threading.Event().wait(0.05)
    push = next(e for e in hook.events if e["action"] == "push")
    assert push["target"]["repository"] == "hooked/repo"
    assert push["target"]["digest"] == digest
    assert push["target"]["tag"] == "v1"
    assert any(e["action"] == "delete" and e["target"]["digest"] == digest for e in hook.events)
    assert hook.attempts >= 3  # two refused deliveries were retried


def test_structured_access_log(make_registry, make_client, caplog):
    reg = make_registry(access_log=True)
    with caplog.at_level(logging.INFO, logger="pallet.registry.access"):
        make_client(reg.url).request("GET", "/v2/", headers={"User-Agent": "probe/1.0"})
        for _ in range(50):
            if caplog.records:
                break
            threading.Event().wait(0.02)
    entry = json.loads(caplog.records[0].getMessage())
    assert entry["method"] == "GET" and entry["path"] == "/v2/" and entry["status"] == 200
    assert entry["user_agent"] == "probe/1.0" and entry["remote"] == "127.0.0.1"


def test_an_internal_failure_is_a_json_500_without_details(client, registry, monkeypatch, caplog):
    client.push_image("boom/repo", "v1", [b"x"])

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(registry.state.meta, "list_tags", broken)
    with caplog.at_level(logging.ERROR, logger="pallet.registry"):
        r = client.request("GET", "/v2/boom/repo/tags/list")
    assert r.status == 500
    assert r.error_codes == ["UNKNOWN"]
    assert b"secret" not in r.body
    assert any("internal error" in rec.getMessage() for rec in caplog.records)
    assert client.request("POST", "/v2/").status == 405


def test_a_full_notification_queue_drops_the_oldest_event():
    from pallet.registry.notify import Notifier

    async def scenario() -> Notifier:
        notifier = Notifier((Webhook(url="http://127.0.0.1:9/none"),), queue_size=2)
        for n in range(3):
            notifier.event("push", f"repo/{n}")
        return notifier

    notifier = asyncio.run(scenario())
    assert notifier.dropped == 1
    queued = [notifier._queue.get_nowait()[1]["target"]["repository"] for _ in range(2)]
    assert queued == ["repo/1", "repo/2"]
