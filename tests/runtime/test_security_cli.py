"""Security options through the real CLI: docker's default seccomp filter, turned off by
``--security-opt seccomp=unconfined`` and by ``--privileged``; privileged gets every
capability the host can grant."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.runtime.spec import host_bounding_set
from pallet_cli import Pallet

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


def _status(pallet: Pallet, *flags: str) -> dict[str, str]:
    out = pallet("run", "--rm", "--network", "none", *flags, "busybox", "cat", "/proc/self/status")
    fields = (line.partition(":") for line in out.stdout.splitlines())
    return {key: value.strip() for key, _, value in fields}


def test_default_seccomp_filter_and_unconfined(pallet: Pallet) -> None:
    assert _status(pallet)["Seccomp"] == "2"
    assert _status(pallet, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    # docker's profile refuses new user namespaces unless CAP_SYS_ADMIN lifts the ban
    denied = pallet("run", "--rm", "--network", "none", "busybox", "unshare", "-U", "true",
                    check=False)  # fmt: skip
    assert denied.returncode == 1 and "Operation not permitted" in denied.stderr
    pallet("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", "busybox",
           "unshare", "-U", "true")  # fmt: skip


def test_privileged_has_the_hosts_capabilities_and_no_filter(pallet: Pallet) -> None:
    status = _status(pallet, "--privileged")
    assert status["Seccomp"] == "0"
    bounding = host_bounding_set()
    assert bounding is not None and "CAP_SYS_ADMIN" in bounding
    expected = int(Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)
    assert int(status["CapEff"], 16) == expected


def test_unsupported_security_opts_are_refused(pallet: Pallet) -> None:
    for opt in ("seccomp=/etc/profile.json", "apparmor=x", "label=disable"):
        result = pallet("run", "--rm", "--security-opt", opt, "busybox", "true", check=False)
        assert result.returncode == 125, result.stderr
        assert result.stderr.count("\n") == 1 and opt in result.stderr
    assert pallet("ps", "-aq").stdout == ""
