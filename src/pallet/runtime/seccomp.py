"""The seccomp filter of a container: Docker's default policy, written as a deny list.

Docker's profile allows a long list of system calls and refuses the rest. The calls it
refuses (its documentation lists them, with the capability that lifts each ban) are the
ones that reach kernel state no namespace isolates: keyrings, kernel modules, clocks,
BPF, performance counters, NUMA policy, file handles, the new mount API, and creating
namespaces, which would hand a container a fresh user namespace and the kernel surface
behind it. Here those calls fail with EPERM unless the container has the capability,
clone's namespace flags included; clone3 answers ENOSYS, so C libraries fall back to
clone, whose flags can be checked. Everything else is allowed: unlike Docker's allow
list, a system call newer than this list is not refused, and personality() is not
narrowed to Docker's five personas.

The filter covers the native ABI and the compat ones (i386 and x32 on x86_64, arm on
aarch64), or a 32-bit call could go round it. ``--privileged`` runs without a filter.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

# (system calls, capabilities that lift the ban: any one of them; none = always refused)
DENIED: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("add_key", "keyctl", "request_key"), ()),  # the keyrings are not namespaced
    # obsolete interfaces
    (
        (
            "create_module",
            "get_kernel_syms",
            "nfsservctl",
            "query_module",
            "sysfs",
            "_sysctl",
            "uselib",
            "ustat",
        ),
        (),
    ),
    (("acct",), ("CAP_SYS_PACCT",)),
    (("bpf",), ("CAP_SYS_ADMIN", "CAP_BPF")),
    (("clock_adjtime", "clock_settime", "settimeofday", "stime"), ("CAP_SYS_TIME",)),
    (("delete_module", "finit_module", "init_module"), ("CAP_SYS_MODULE",)),
    (("get_mempolicy", "mbind", "move_pages", "set_mempolicy"), ("CAP_SYS_NICE",)),
    (("ioperm", "iopl"), ("CAP_SYS_RAWIO",)),
    (("kcmp", "process_vm_readv", "process_vm_writev", "userfaultfd"), ("CAP_SYS_PTRACE",)),
    (("kexec_file_load", "kexec_load", "reboot"), ("CAP_SYS_BOOT",)),
    (("name_to_handle_at", "open_by_handle_at"), ("CAP_DAC_READ_SEARCH",)),
    (("perf_event_open",), ("CAP_SYS_ADMIN", "CAP_PERFMON")),
    (("syslog",), ("CAP_SYSLOG",)),
    (
        (
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setns",
            "swapoff",
            "swapon",
            "umount",
            "umount2",
            "unshare",
            "vm86",
            "vm86old",
        ),
        ("CAP_SYS_ADMIN",),
    ),
)

# clone(2) flags that create namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
# NEWPID, NEWNET): refused without CAP_SYS_ADMIN, as in Docker's profile
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000)  # fmt: skip
AF_VSOCK = 40  # host <-> guest sockets: refused, as Docker does

_ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}


def _deny(names: Iterable[str], code: int = errno.EPERM, **extra: Any) -> dict[str, Any]:
    return {"names": sorted(names), "action": "SCMP_ACT_ERRNO", "errnoRet": code, **extra}


def default_profile(capabilities: Iterable[str], machine: str | None = None) -> dict[str, Any]:
    """The ``linux.seccomp`` section of a runtime spec for a container whose process has
    ``capabilities`` (the bounding set, ``CAP_*`` names)."""
    caps = set(capabilities)
    denied = sorted(
        name for names, lifted_by in DENIED if not caps & set(lifted_by) for name in names
    )
    syscalls = [_deny(denied)]
    if "CAP_SYS_ADMIN" not in caps:
        # clone's flags are its first argument, except on s390x where they come second
        arg = 1 if (machine or os.uname().machine) == "s390x" else 0
        for flag in NAMESPACE_FLAGS:
            masked = {"index": arg, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
            syscalls.append(_deny(["clone"], args=[masked]))
        syscalls.append(_deny(["clone3"], errno.ENOSYS))
    syscalls.append(_deny(["socket"], args=[{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]))
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}
    architectures = _ARCHITECTURES.get(machine or os.uname().machine)
    if architectures:
        profile["architectures"] = architectures
    return profile
