"""A private dockerd for peer tests, as a session fixture named ``dockerd``.

The daemon itself is bench/dockerd.py's (``Dockerd``: its own data root, exec root and
socket under /tmp, no bridge, no iptables, no Docker Hub). A test module registers the
fixture by binding it to a module attribute (an import of the name would shadow the
test's parameter)::

    import docker_daemon
    private_dockerd = docker_daemon.dockerd_fixture

Several test modules (and directories) share one daemon per process: it starts when
the first test asks for it and stops when the last registration is torn down, at the
end of the session. Under pytest-xdist each worker that runs a docker test starts its
own (they share nothing, so they cannot collide). When dockerd cannot start, every
test that needs it is skipped with the daemon's own reason.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

_BENCH = Path(__file__).resolve().parent.parent / "bench" / "dockerd.py"


def _load_bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pallet_bench_dockerd", _BENCH)
    assert spec is not None and spec.loader is not None, _BENCH
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_impl = _load_bench_module()
Dockerd = _impl.Dockerd
DockerdError = _impl.DockerdError
DOCKER = _impl.DOCKER

_lock = threading.Lock()
_daemon: Dockerd | None = None
_users = 0
_failure = ""


def _acquire() -> Dockerd:
    global _daemon, _users, _failure
    with _lock:
        if _failure:
            pytest.skip(_failure)
        if _daemon is None:
            try:
                _daemon = Dockerd().start()
            except DockerdError as exc:
                _failure = f"LOUD SKIP: a private dockerd cannot start here: {exc}"
                pytest.skip(_failure)
        _users += 1
        return _daemon


def _release() -> None:
    global _daemon, _users
    with _lock:
        _users -= 1
        if _users == 0 and _daemon is not None:
            _daemon.stop()
            _daemon = None


@pytest.fixture(scope="session", name="dockerd")
def dockerd_fixture() -> Iterator[Dockerd]:
    """The private dockerd of this test process (started on first use)."""
    daemon = _acquire()
    try:
        yield daemon
    finally:
        _release()
