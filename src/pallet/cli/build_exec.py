"""What ``pallet build`` does once its flags are parsed, free of click so the fast path
(``pallet.cli.fast_build``) and the click command share it."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType

from pallet.errors import InvalidArgument
from pallet.paths import default_root

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from pallet.build.cache_io import CacheSpec
    from pallet.build.ssh_forward import SshAgent


def pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` flags as a dict; a bare ``KEY`` takes its value from the environment
    (and is left out when the environment has none), as docker's ``--build-arg``."""
    out: dict[str, str] = {}
    for value in values:
        key, eq, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"{flag} {value!r}: expected KEY=VALUE")
        if not eq:
            import os

            env = os.environ.get(key)
            if env is None:
                continue
            val = env
        out[key] = val
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_build(root: Path | None, kw: dict[str, Any]) -> None:
    """Build ``kw["context"]`` as the ``pallet build`` flags in ``kw`` say; prints the
    image ID on stdout (and progress on stderr)."""
    from pallet.build import BuildOptions, Output, Progress, Secret
    from pallet.build.options import parse_entitlements
    from pallet.build.record import replay
    from pallet.build.rootfs import private_mount_namespace
    from pallet.store import Store

    dockerfile: str | None = kw["dockerfile"]
    text = sys.stdin.read() if dockerfile == "-" else None
    iidfile: str | Path | None = kw["iidfile"]
    options = BuildOptions(
        context=Path(kw["context"]),
        dockerfile=Path(dockerfile) if dockerfile and dockerfile != "-" else None,
        dockerfile_text=text,
        tags=tuple(kw["tags"]),
        build_args=pairs(kw["build_args"], "--build-arg"),
        labels=pairs(kw["labels"], "--label"),
        target=kw["target"],
        platform=kw["platform"],
        no_cache=bool(kw["no_cache"]),
        no_cache_filter=tuple(kw["no_cache_filter"]),
        pull=bool(kw["pull"]),
        secrets=tuple(Secret.parse(s) for s in kw["secrets"]),
        ssh=_ssh_agents(kw["ssh"]),
        allow=parse_entitlements(kw["allow"]),
        cache_from=_cache_specs(kw["cache_from"], "--cache-from"),
        cache_to=_cache_specs(kw["cache_to"], "--cache-to"),
        compression=kw["compression"],
        compression_level=kw["compression_level"],
        reproducible=bool(kw["reproducible"]),
        outputs=tuple(Output.parse(o) for o in kw["outputs"]),
        iidfile=Path(iidfile) if iidfile is not None else None,
        push=bool(kw["push"]),
    )
    progress = kw["progress"]
    if kw["quiet"] or progress == "quiet":
        mode = "quiet"
    elif progress == "tty" or (progress == "auto" and sys.stderr.isatty()):
        mode = "tty"
    else:
        mode = "plain"
    store = Store.open(root if root is not None else default_root())
    # the live view ends (final summary, cursor back) however the build ends
    with Progress(mode, sys.stderr) as shown:
        # a rebuild identical to a fully cached one needs no planner (pallet.build.record)
        replayed = replay(store, options, shown)
        if replayed is None:
            import signal  # here, as below: a replay mounts nothing and is over at once

            from pallet.build.builder import build

            # Mounts made from here on die with this process, even on SIGKILL (a replay
            # that missed started no thread, which would keep this from working).
            private_mount_namespace()
            signal.signal(signal.SIGTERM, _interrupt)

            result = build(store, options, shown)
            image_id, unused, pushed = result.image_id, result.unused_build_args, result.pushed
        else:
            image_id, unused, pushed = replayed.image_id, replayed.unused_build_args, ()
    if unused:
        names = " ".join(unused)
        print(f"[Warning] One or more build-args [{names}] were not consumed", file=sys.stderr)
    for name in pushed:
        if mode != "quiet":
            print(f"pushed {name}", file=sys.stderr)
    print(str(image_id), flush=True)


def _ssh_agents(specs: tuple[str, ...]) -> tuple[SshAgent, ...]:
    if not specs:
        return ()  # the forwarding module is imported only when asked for
    from pallet.build.ssh_forward import SshAgent

    return tuple(SshAgent.parse(s) for s in specs)


def _cache_specs(specs: tuple[str, ...], flag: str) -> tuple[CacheSpec, ...]:
    if not specs:
        return ()
    from pallet.build.cache_io import CacheSpec

    return tuple(CacheSpec.parse(c, flag) for c in specs)
