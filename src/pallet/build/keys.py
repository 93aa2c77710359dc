"""Cache keys of build steps: what a step's result depends on, hashed.

See docs/build.md ("Cache key"): the parent state's key, the expanded instruction, the
build args a RUN can see, and the content digests of what the step reads.
"""

from __future__ import annotations

import hashlib
import json

from pallet.dockerfile.plan import PROXY_ARGS, Step


def digest_of(doc: object) -> str:
    raw = json.dumps(doc, sort_keys=True, default=repr, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def step_doc(step: Step) -> dict[str, object]:
    """What of a step its result depends on. Build args count only where a RUN sees them
    (its environment); elsewhere they matter only through the words they expanded."""
    cfg = step.config
    doc: dict[str, object] = {
        "keyword": step.keyword,
        "created_by": step.created_by,
        "workdir": cfg.working_dir,
    }
    if step.run is not None:
        run = step.run
        doc["run"] = {
            "args": [list(a) for a in step.args if a[0] not in PROXY_ARGS],
            "user": cfg.user,
            "argv": list(run.argv),
            "env": [e for e in run.env if e.partition("=")[0] not in PROXY_ARGS],
            "mounts": [repr(m) for m in run.mounts],
            "mount_sources": [repr(s) for s in run.mount_sources],
            "network": run.network,
            "security": run.security,
            "files": [[f.name, f.data] for f in run.files],
        }
    if step.copy is not None:
        doc["copy"] = repr(step.copy)
    if step.workdir is not None:
        doc["workdir_step"] = [step.workdir, cfg.user]
    return doc
