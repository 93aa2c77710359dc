"""Generate OCI runtime specs (config.json) with Docker's defaults.

One generator serves RUN steps of builds and ``pallet run``: the caller says what differs
(process, namespaces, mounts, limits) and gets Docker's capability set, masked and
read-only /proc paths and default mounts for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any, Literal

    NetworkMode = Literal["host", "none", "private"]
else:
    NetworkMode = str  # at run time only a name for annotations

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL_CAPABILITIES = (
    "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ", "CAP_AUDIT_WRITE", "CAP_BLOCK_SUSPEND", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER", "CAP_FSETID", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_KILL", "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_MKNOD", "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_PERFMON", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE", "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYSLOG", "CAP_WAKE_ALARM",
)  # fmt: skip

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


@dataclass(frozen=True)
class Mount:
    """One entry of the spec's ``mounts``."""

    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ("rbind", "rw")

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


@dataclass(frozen=True)
class Resources:
    """Cgroup limits (``--memory``, ``--cpus``, ``--pids-limit``); None: no limit."""

    memory: int | None = None  # bytes
    cpus: float | None = None  # as docker --cpus
    pids: int | None = None


# eq=False: options are never compared, and dataclass() compiles no __eq__/__hash__ for
# them at import (generating methods is most of a dataclass's start-up cost)
@dataclass(frozen=True, eq=False)
class SpecOptions:
    """What differs from Docker's defaults in one container's spec."""

    rootfs: str
    args: Sequence[str]
    env: Sequence[str] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: Sequence[int] = ()
    hostname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    network: NetworkMode = "private"
    netns_path: str | None = None
    mounts: Sequence[Mount] = ()
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    #: Docker's default seccomp filter (off with --security-opt seccomp=unconfined)
    seccomp: bool = True
    resources: Resources = field(default_factory=Resources)
    cgroups_path: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    sysctl: Mapping[str, str] = field(default_factory=dict)
    #: a user namespace of its own when given: (container id, host id, size) extents
    uid_mappings: Sequence[tuple[int, int, int]] = ()
    gid_mappings: Sequence[tuple[int, int, int]] = ()


def _cap_name(cap: str) -> str:
    name = cap.strip().upper()
    if name == "ALL":
        return name
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability {cap!r}")
    return name


def effective_capabilities(
    cap_add: Sequence[str], cap_drop: Sequence[str], privileged: bool
) -> list[str]:
    """Docker's rule: start from the default set (or all, privileged), add, then drop."""
    if privileged:
        # every capability the host can grant: runc refuses to raise one outside the
        # bounding set it runs with (newer docker does the same)
        bounding = host_bounding_set()
        return [c for c in ALL_CAPABILITIES if bounding is None or c in bounding]
    adds = [_cap_name(c) for c in cap_add]
    drops = [_cap_name(c) for c in cap_drop]
    caps = list(ALL_CAPABILITIES) if "ALL" in adds else list(DEFAULT_CAPABILITIES)
    for cap in adds:
        if cap != "ALL" and cap not in caps:
            caps.append(cap)
    if "ALL" in drops:
        caps = [c for c in caps if c in adds]
    else:
        caps = [c for c in caps if c not in drops]
    return caps


#: capability numbers (linux/capability.h), to read /proc's bit masks
CAPABILITY_NUMBERS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def host_bounding_set(status: str = "/proc/self/status") -> frozenset[str] | None:
    """The capabilities this process may still grant (``CapBnd``); None if unknown."""
    try:
        with open(status) as f:
            line = next((ln for ln in f if ln.startswith("CapBnd:")), None)
    except OSError:
        return None
    if line is None:
        return None
    mask = int(line.split()[1], 16)
    return frozenset(name for bit, name in enumerate(CAPABILITY_NUMBERS) if mask >> bit & 1)


def default_mounts(network: NetworkMode, privileged: bool) -> list[Mount]:
    sys_opts = ("nosuid", "noexec", "nodev", "ro" if not privileged else "rw")
    mounts = [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        ),
        Mount(
            "/dev/shm", "shm", "tmpfs", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")
        ),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ]
    if network == "host":
        # A fresh sysfs cannot be mounted without a network namespace of our own.
        mounts.append(Mount("/sys", "/sys", "bind", ("rbind", "nosuid", "noexec", "nodev", "ro")))
    else:
        mounts.append(Mount("/sys", "sysfs", "sysfs", sys_opts))
    return mounts


def build_spec(opts: SpecOptions) -> dict[str, Any]:
    caps = effective_capabilities(opts.cap_add, opts.cap_drop, opts.privileged)
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if opts.network == "private" or opts.network == "none":
        ns: dict[str, str] = {"type": "network"}
        if opts.netns_path:
            ns["path"] = opts.netns_path
        namespaces.append(ns)
    if opts.uid_mappings:
        namespaces.append({"type": "user"})
    # Caller's mounts win over defaults at the same destination (e.g. --tmpfs /dev/shm).
    own = {m.destination for m in opts.mounts}
    mounts = [m for m in default_mounts(opts.network, opts.privileged) if m.destination not in own]
    mounts += list(opts.mounts)

    process: dict[str, Any] = {
        "terminal": opts.terminal,
        "user": {"uid": opts.uid, "gid": opts.gid},
        "args": list(opts.args),
        "env": list(opts.env),
        "cwd": opts.cwd or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": opts.no_new_privileges,
    }
    if opts.additional_gids:
        process["user"]["additionalGids"] = list(opts.additional_gids)
    if not opts.privileged:
        process["oomScoreAdj"] = 0

    linux: dict[str, Any] = {"namespaces": namespaces}
    if opts.uid_mappings:
        for key, extents in (
            ("uidMappings", opts.uid_mappings),
            ("gidMappings", opts.gid_mappings),
        ):
            linux[key] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in extents]
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if opts.seccomp:
            from pallet.runtime.seccomp import default_profile

            linux["seccomp"] = default_profile(caps)
    resources: dict[str, Any] = {}
    r = opts.resources
    if r.memory is not None:
        resources["memory"] = {"limit": r.memory, "swap": r.memory * 2}
    if r.cpus is not None:
        period = 100000
        resources["cpu"] = {"quota": int(r.cpus * period), "period": period}
    if r.pids is not None:
        resources["pids"] = {"limit": r.pids}
    if resources:
        linux["resources"] = resources
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    if opts.sysctl:
        linux["sysctl"] = dict(opts.sysctl)

    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": opts.rootfs, "readonly": opts.readonly_rootfs},
        "hostname": opts.hostname,
        "mounts": [m.to_json() for m in mounts],
        "linux": linux,
    }
    if opts.network == "host" or not opts.hostname:
        spec.pop("hostname")
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec
