"""Where the external conformance vectors are: ``../shared/conformance`` beside the checkout
(as CI lays it out), or $PALLET_CONFORMANCE. A missing directory fails loudly."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _find() -> Path:
    env = os.environ.get("PALLET_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates += [_REPO.parent / "shared" / "conformance", Path("/work/shared/conformance")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise RuntimeError(
        "conformance vectors not found: expected ../shared/conformance beside the checkout "
        "(or set PALLET_CONFORMANCE)"
    )


CONFORMANCE = _find()
