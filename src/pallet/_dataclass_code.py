"""A bytecode cache for the methods ``@dataclass`` writes.

``dataclass()`` builds ``__init__``, ``__repr__``, ``__eq__``, ``__setattr__``... of every
class as source text and compiles it each time the class is defined: a fifth of the
instructions of importing pallet's build modules, and as much of ``pallet run``'s start-up
went to that compiler. CPython caches the bytecode of modules in ``__pycache__``; this
does the same for that generated text. The cache maps the exact text to its marshalled
code, so an entry can never be stale: a changed class has another text, which is a miss
and is compiled as before. It lives beside pallet's own bytecode, is tagged with the
interpreter's bytecode magic number and, like ``.pyc`` files, is written only when
bytecode writing is on (or by :func:`warm` at install).

Two more start-up costs of ``dataclasses`` go too. Importing it imports ``inspect`` (with
``ast``, ``dis`` and ``tokenize``: a third of a bare ``import pallet``) only to write a
docstring, ``Name(field: type, ...)``, for classes that have none. ``inspect`` (and
``ipaddress``, which pathlib's urllib.parse imports for bracketed hosts only) becomes a
stand-in that imports it on first use (by anyone), and
pallet's own undocumented dataclasses get that docstring from their fields instead.

Only interpreters whose ``dataclasses._create_fn`` has the shape this mirrors (3.11,
3.12) are patched; elsewhere nothing changes.
"""

from __future__ import annotations

import marshal
import os
import sys
from types import CodeType, ModuleType

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import Any

_MAX_ENTRIES = 20_000  # pallet defines a few hundred; a bound for a library host
_MISSING: Any = None  # dataclasses.MISSING, once imported
_original: Any = None
_original_process_class: Any = None
#: module name -> marshalled {generated text: marshalled code}: a module's share is only
#: unmarshalled when that module defines a dataclass
_stored: dict[str, bytes] = {}
_codes: dict[str, dict[str, bytes]] = {}
_added: dict[str, dict[str, bytes]] = {}
_path: str | None = None
_force_write = False


def _cache_path() -> str | None:
    # importlib's own bytecode paths (its bootstrap module, always loaded)
    bootstrap: Any = sys.modules.get("_frozen_importlib_external")
    if bootstrap is None:
        return None
    try:
        pyc = bootstrap.cache_from_source(__file__)
    except NotImplementedError:  # no cache_tag: no bytecode caching at all
        return None
    tag = bootstrap.MAGIC_NUMBER.hex()
    return os.path.join(os.path.dirname(pyc), f"dataclass-code.{tag}.marshal")


def _load(path: str) -> dict[str, bytes]:
    try:
        with open(path, "rb") as f:
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _module_codes(module: str) -> dict[str, bytes]:
    codes = _codes.get(module)
    if codes is None:
        try:
            codes = marshal.loads(_stored.get(module, b"0"))
        except (EOFError, ValueError, TypeError):
            codes = None
        if not isinstance(codes, dict):
            codes = {}
        _codes[module] = codes
    return codes


def _compiled(module: str, text: str) -> CodeType:
    blob = _module_codes(module).get(text)
    if blob is not None:
        try:
            code = marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            code = None
        if isinstance(code, CodeType):
            return code
    # exec() of the text in dataclasses.py inherits no __future__ flags: neither may this
    code = compile(text, "<string>", "exec", dont_inherit=True)
    if sum(map(len, _added.values())) < _MAX_ENTRIES:
        _added.setdefault(module, {})[text] = marshal.dumps(code)
    return code


def _create_fn(
    name: str,
    args: list[str],
    body: list[str],
    *,
    globals: dict[str, Any] | None = None,  # the stdlib's keyword names
    locals: dict[str, Any] | None = None,
    return_type: Any = _MISSING,
) -> Any:
    # The text below is exactly the stdlib's (3.11/3.12): same text, same function.
    if locals is None:
        locals = {}
    return_annotation = ""
    if return_type is not _MISSING:
        locals["_return_type"] = return_type
        return_annotation = "->_return_type"
    joined_args = ",".join(args)
    joined_body = "\n".join(f"  {b}" for b in body)
    txt = f" def {name}({joined_args}){return_annotation}:\n{joined_body}"
    local_vars = ", ".join(locals.keys())
    txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
    ns: dict[str, Any] = {}
    module = str((globals or {}).get("__name__", ""))
    exec(_compiled(module, txt), globals, ns)  # dataclasses' own generated code
    return ns["__create_fn__"](**locals)


def _process_class(cls: type, *args: Any, **kwargs: Any) -> type:
    """The stdlib's, with pallet's undocumented classes documented from their fields."""
    undocumented = not cls.__dict__.get("__doc__") and cls.__module__.startswith("pallet.")
    if undocumented:
        cls.__doc__ = "-"  # anything true: the stdlib then leaves inspect alone
    made: type = _original_process_class(cls, *args, **kwargs)
    if undocumented:
        fields = getattr(made, "__dataclass_fields__", {})
        names = [f.name for f in fields.values() if getattr(f, "init", False)]
        made.__doc__ = f"{made.__name__}({', '.join(names)})"
    return made


class _Deferred(ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; the first attribute it
    lacks imports the real one, which then takes its place (``import`` itself only reads
    ``__spec__``, None here, so importing it does not load it)."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        __import__(name)
        real = sys.modules[name]
        self.__dict__.update(real.__dict__)  # who holds the stand-in sees the real names
        return getattr(real, attr)


#: Standard modules imported (``import name``, no names taken from them) by modules every
#: command loads, and used only by rare paths: ``inspect`` by dataclasses (docstrings of
#: undocumented classes), ``ipaddress`` by urllib.parse (bracketed hosts), which pathlib
#: imports. 1.5 ms and 3 ms of a short command.
_DEFERRED = ("inspect", "ipaddress")


def _defer_rare_modules() -> None:
    for name in _DEFERRED:
        if name not in sys.modules:
            sys.modules[name] = _Deferred(name)


def _shape_known(dataclasses: Any) -> bool:
    fn = getattr(dataclasses, "_create_fn", None)
    code = getattr(fn, "__code__", None)
    return (
        sys.version_info[:2] in ((3, 11), (3, 12))
        and code is not None
        and code.co_varnames[:6] == ("name", "args", "body", "globals", "locals", "return_type")
        and callable(getattr(dataclasses, "_process_class", None))
    )


def install() -> None:
    """Route dataclasses' code generation through the cache (once per process)."""
    global _original, _original_process_class, _path, _stored, _MISSING
    if _original is not None or sys.version_info[:2] not in ((3, 11), (3, 12)):
        return
    if "dataclasses" not in sys.modules:
        _defer_rare_modules()
    import dataclasses

    _path = _cache_path()
    if _path is None or not _shape_known(dataclasses):
        return
    _stored = _load(_path)
    _MISSING = dataclasses.MISSING
    _create_fn.__kwdefaults__["return_type"] = _MISSING  # type: ignore[index]
    _original = dataclasses._create_fn  # type: ignore[attr-defined]
    dataclasses._create_fn = _create_fn  # type: ignore[attr-defined]
    _original_process_class = dataclasses._process_class  # type: ignore[attr-defined]
    dataclasses._process_class = _process_class  # type: ignore[attr-defined]
    import atexit

    atexit.register(save)


def save() -> None:
    """Write what this process compiled, merged with what is on disk."""
    if not _added or _path is None or (sys.dont_write_bytecode and not _force_write):
        return
    merged = _load(_path)
    for module, added in _added.items():
        try:
            codes = marshal.loads(merged.get(module, b"0"))
        except (EOFError, ValueError, TypeError):
            codes = None
        codes = codes if isinstance(codes, dict) else {}
        codes.update(added)
        merged[module] = marshal.dumps(codes)
    tmp = f"{_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_path), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump(merged, f)
        os.replace(tmp, _path)
    except OSError:  # a read-only install: it just stays uncached
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _stored.update(merged)
    _codes.clear()
    _added.clear()


def warm() -> None:
    """Import every pallet module so their dataclasses' code gets cached: run at install,
    as ``compileall`` is (``python -c 'import pallet._dataclass_code as m; m.warm()'``)."""
    global _force_write
    import importlib
    import pkgutil

    import pallet

    _force_write = True
    for info in pkgutil.walk_packages(pallet.__path__, "pallet."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional dependency is missing
            continue
    save()
