"""Background work of a running server: GC and retention on timers, on worker threads.

Both use a metadata connection of their own; the server's manifest cache notices their
commits through SQLite's ``data_version`` and drops what they changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pallet.registry.gc import GCReport, run_gc_offline
from pallet.registry.retention import RetentionAction, RetentionReport, apply_retention
from pallet.registry.state import RegistryState

log = logging.getLogger("pallet.registry")


async def run_gc(state: RegistryState, *, dry_run: bool = False) -> GCReport:
    config = state.config
    report = await asyncio.to_thread(
        run_gc_offline,
        config.data,
        grace_seconds=config.gc.grace_seconds,
        upload_max_age_seconds=config.limits.upload_max_age_seconds,
        dry_run=dry_run,
        audit_path=config.audit_path,
    )
    state.metrics.inc("gc_runs")
    state.metrics.inc("gc_blobs_removed", len(report.blobs_removed))
    return report


async def run_retention(state: RegistryState, *, dry_run: bool = False) -> RetentionReport:
    from pallet.registry.audit import AuditLog
    from pallet.registry.storage.sqlite import SQLiteMetadata

    config = state.config
    loop = asyncio.get_running_loop()

    def notify(action: RetentionAction) -> None:
        loop.call_soon_threadsafe(
            lambda: state.notifier.event(
                "delete",
                action.repository,
                digest=action.digest,
                tag=action.reference if action.kind == "tag" else "",
                user="retention",
            )
        )

    def work() -> RetentionReport:
        meta = SQLiteMetadata(config.data / "metadata.db")
        audit = AuditLog(config.audit_path) if not dry_run else None
        try:
            return apply_retention(
                meta, config.retention, dry_run=dry_run, audit=audit, on_delete=notify
            )
        finally:
            meta.close()
            if audit is not None:
                audit.close()

    report = await asyncio.to_thread(work)
    state.metrics.inc("retention_runs")
    return report


# Seconds per configured minute; tests shrink it to see schedules fire.
MINUTE = 60.0


async def _every(minutes: int, job: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(minutes * MINUTE)
        try:
            result = await job()
            log.info("scheduled %s: %s", name, getattr(result, "summary", lambda: "done")())
        except Exception:  # a failed run is logged and retried next period
            log.exception("scheduled %s failed", name)


def scheduled_tasks(state: RegistryState) -> list[asyncio.Task[None]]:
    config = state.config
    tasks = []
    if config.gc.schedule_minutes and not config.read_only:
        tasks.append(
            asyncio.create_task(_every(config.gc.schedule_minutes, lambda: run_gc(state), "gc"))
        )
    if config.retention.schedule_minutes and config.retention.policies and not config.read_only:
        tasks.append(
            asyncio.create_task(
                _every(
                    config.retention.schedule_minutes,
                    lambda: run_retention(state),
                    "retention",
                )
            )
        )
    return tasks
