"""The cache of dataclass-generated code (pallet._dataclass_code): same classes with it as
without, and nothing breaks when the cache is missing, stale or garbage."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pallet._dataclass_code as dc

PROGRAM = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import pallet  # installs the cache
    import pallet._dataclass_code as dc
    import cachedmod
    a = cachedmod.Point(1, 2)
    assert a == cachedmod.Point(1, 2) and a != cachedmod.Point(2, 1)
    assert repr(a) == "Point(x=1, y=2)", repr(a)
    assert hash(a) == hash(cachedmod.Point(1, 2))
    try:
        a.x = 5
    except Exception as exc:
        assert type(exc).__name__ == "FrozenInstanceError"
    else:
        raise SystemExit("a frozen dataclass accepted an assignment")
    assert cachedmod.Tagged().tags == [] and cachedmod.Tagged().tags is not cachedmod.Tagged().tags
    assert cachedmod.Point.__init__.__annotations__ == {"x": int, "y": int, "return": None}
    print(dc._original is not None, len(dc._added.get("cachedmod", {})))
    """
)

MODULE = textwrap.dedent(
    """
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Point:
        x: int
        y: int

    @dataclass
    class Tagged:
        tags: list[str] = field(default_factory=list)
    """
)


def _run(tmp_path: Path, env_extra: dict[str, str] | None = None) -> str:
    (tmp_path / "cachedmod.py").write_text(MODULE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")  # its own cache file
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _cache_files(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "pycache").rglob("dataclass-code.*.marshal"))


def test_classes_behave_the_same_from_a_cold_and_a_warm_cache(tmp_path: Path) -> None:
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        pytest.skip("LOUD SKIP: the cache only patches CPython 3.11/3.12's dataclasses")
    assert _run(tmp_path) == "True 9"  # cold: 9 methods compiled and remembered
    files = _cache_files(tmp_path)
    assert len(files) == 1, files
    stored = marshal.loads(files[0].read_bytes())
    assert list(stored) == ["cachedmod"]
    assert _run(tmp_path) == "True 0"  # warm: every method of the module came from it


def test_a_garbage_cache_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        pytest.skip("LOUD SKIP: the cache only patches CPython 3.11/3.12's dataclasses")
    _run(tmp_path)
    (cache,) = _cache_files(tmp_path)
    cache.write_bytes(b"\x00not marshal at all" * 10)
    assert _run(tmp_path) == "True 9"
    stored = marshal.loads(cache.read_bytes())
    assert isinstance(stored, dict) and "cachedmod" in stored
    # an entry whose code is garbage is compiled again, not trusted
    inner = marshal.loads(stored["cachedmod"])
    stored["cachedmod"] = marshal.dumps({text: b"garbage" for text in inner})
    cache.write_bytes(marshal.dumps(stored))
    assert _run(tmp_path) == "True 9"


def test_nothing_is_written_when_bytecode_writing_is_off(tmp_path: Path) -> None:
    _run(tmp_path, {"PYTHONDONTWRITEBYTECODE": "1"})
    assert _cache_files(tmp_path) == []


def test_inspect_still_imports_and_works_after_pallet() -> None:
    """Importing pallet defers inspect (and ast, dis, tokenize) until someone uses it."""
    code = (
        "import sys, pallet.oci.descriptor\n"
        "print('ast' in sys.modules)\n"
        "import inspect\n"
        "print(inspect.signature(lambda a, b=2: None), inspect.isfunction(len))\n"
        "from inspect import Parameter\n"
        "print(Parameter.POSITIONAL_ONLY)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["False", "(a, b=2) False", "POSITIONAL_ONLY"]


def test_ipaddress_is_deferred_and_still_works() -> None:
    code = (
        "import sys, pallet, pathlib, pallet.oci.descriptor\n"
        "print(type(sys.modules['ipaddress']).__name__)\n"
        "from urllib.parse import urlsplit\n"
        "print(urlsplit('http://[::1]:8080/x').hostname)\n"
        "import ipaddress\n"
        "print(ipaddress.ip_address('10.0.0.1').is_private, type(sys.modules['ipaddress']).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["_Deferred", "::1", "True module"]


def test_pallets_undocumented_dataclasses_get_a_docstring_from_their_fields() -> None:
    from pallet.runtime.network import PortMapping

    assert PortMapping.__doc__ == "PortMapping(host_ip, host_port, container_port, proto)"
    assert dc._original is not None or sys.version_info[:2] not in ((3, 11), (3, 12))


def test_the_cli_fast_path_saves_new_entries_despite_its_hard_exit(tmp_path: Path) -> None:
    """``pallet run`` ends with os._exit (no atexit hooks): it still writes the cache."""
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        pytest.skip("LOUD SKIP: the cache only patches CPython 3.11/3.12's dataclasses")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    command = Path(sys.executable).with_name("pallet")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "pallet"]
    out = subprocess.run(
        [*argv, "--root", str(tmp_path / "root"), "run", "--rm", "no-such-image:1"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 125 and "no-such-image" in out.stderr
    (cache,) = _cache_files(tmp_path)
    assert "pallet.runtime.container" in marshal.loads(cache.read_bytes())
