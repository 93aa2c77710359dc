"""Retention policies: which tags and untagged manifests to delete, per repository glob.

For the first policy whose glob matches a repository: tags matching ``keep_tags`` are
always kept; of the others, a tag is deleted when it is not among the ``keep_last`` most
recently pushed, or when it was pushed more than ``max_age_days`` ago. With ``untagged``,
manifests no kept tag reaches (directly, through an index, or as a referrer of a reached
manifest) are deleted once older than the untagged grace period, so a push in flight
(children pushed before their index) is never cut short. GC then frees the blobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from pallet.oci.digest import Digest
from pallet.registry.audit import AuditEvent, AuditLog
from pallet.registry.config import RetentionConfig, RetentionPolicy
from pallet.registry.storage.metadata import MetadataStore


@dataclass(frozen=True)
class RetentionAction:
    repository: str
    kind: str  # "tag" or "manifest"
    reference: str
    digest: str
    reason: str


@dataclass(frozen=True)
class RetentionReport:
    dry_run: bool
    actions: list[RetentionAction] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        tags = sum(1 for a in self.actions if a.kind == "tag")
        return f"retention {verb} {tags} tag(s) and {len(self.actions) - tags} manifest(s)"


def policy_for(repo: str, policies: tuple[RetentionPolicy, ...]) -> RetentionPolicy | None:
    for policy in policies:
        if any(fnmatchcase(repo, glob) for glob in policy.repositories):
            return policy
    return None


def _all_repositories(meta: MetadataStore) -> list[str]:
    repos: list[str] = []
    while batch := meta.list_repositories(repos[-1] if repos else "", 1000):
        repos.extend(batch)
    return repos


def _doomed_tags(
    meta: MetadataStore, repo: str, policy: RetentionPolicy, now: float
) -> list[RetentionAction]:
    records = sorted(meta.tag_records(repo), key=lambda t: (-t.pushed, t.tag))
    out = []
    rank = 0
    for record in records:
        if any(fnmatchcase(record.tag, pattern) for pattern in policy.keep_tags):
            continue
        reason = ""
        if policy.keep_last is not None and rank >= policy.keep_last:
            reason = f"beyond the last {policy.keep_last} tags"
        elif policy.max_age_days is not None and record.pushed < now - policy.max_age_days * 86400:
            reason = f"older than {policy.max_age_days:g} days"
        rank += 1
        if reason:
            out.append(RetentionAction(repo, "tag", record.tag, record.digest, reason))
    return out


def _unreachable(
    meta: MetadataStore, repo: str, doomed: set[str], cutoff: float
) -> list[RetentionAction]:
    manifests = {m.digest: m for m in meta.manifests(repo)}
    live = [t.digest for t in meta.tag_records(repo) if t.tag not in doomed]
    reached: set[Digest] = set()
    by_subject: dict[str, list[Digest]] = {}
    for m in manifests.values():
        if m.subject:
            by_subject.setdefault(m.subject, []).append(m.digest)
    stack = list(live)
    while stack:
        digest = stack.pop()
        if digest in reached or digest not in manifests:
            continue
        reached.add(digest)
        stack.extend(meta.manifest_children(digest))
        stack.extend(by_subject.get(digest, []))
    return [
        RetentionAction(repo, "manifest", "", m.digest, "untagged")
        for m in manifests.values()
        if m.digest not in reached and m.pushed < cutoff
    ]


def plan(meta: MetadataStore, config: RetentionConfig, now: float) -> list[RetentionAction]:
    actions: list[RetentionAction] = []
    for repo in _all_repositories(meta):
        policy = policy_for(repo, config.policies)
        if policy is None:
            continue
        tags = _doomed_tags(meta, repo, policy, now)
        actions.extend(tags)
        if policy.untagged:
            doomed = {a.reference for a in tags}
            actions.extend(_unreachable(meta, repo, doomed, now - config.untagged_grace_seconds))
    return actions


def apply_retention(
    meta: MetadataStore,
    config: RetentionConfig,
    *,
    dry_run: bool = False,
    audit: AuditLog | None = None,
    on_delete: Callable[[RetentionAction], None] | None = None,
    now: float | None = None,
) -> RetentionReport:
    now = time.time() if now is None else now
    actions = plan(meta, config, now)
    if dry_run:
        return RetentionReport(True, actions)
    done = []
    cutoff = now - config.untagged_grace_seconds
    # Tags first, so manifests they held become deletable in the same run.
    for action in sorted(actions, key=lambda a: a.kind != "tag"):
        digest = Digest(action.digest)
        if action.kind == "tag":
            ok = meta.delete_tag(action.repository, action.reference, expected=digest) is not None
        else:
            ok = meta.delete_untagged_manifest(action.repository, digest, cutoff)
        if not ok:
            continue  # changed since planned (a push re-tagged it): leave it alone
        done.append(action)
        if audit is not None:
            audit.record(
                AuditEvent(
                    "retention",
                    "",
                    f"retention.{action.kind}.delete",
                    action.repository,
                    action.reference,
                    action.digest,
                )
            )
        if on_delete is not None:
            on_delete(action)
    return RetentionReport(False, done)


def run_retention_offline(
    data: Path, config: RetentionConfig, *, dry_run: bool, audit_path: Path | None
) -> RetentionReport:
    from pallet.registry.storage.sqlite import SQLiteMetadata

    meta = SQLiteMetadata(data / "metadata.db")
    audit = AuditLog(audit_path) if audit_path is not None and not dry_run else None
    try:
        return apply_retention(meta, config, dry_run=dry_run, audit=audit)
    finally:
        meta.close()
        if audit is not None:
            audit.close()
