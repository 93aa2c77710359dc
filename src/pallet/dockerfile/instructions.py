"""Typed instructions: the syntax tree checked and turned into one dataclass per instruction.

This is BuildKit's ``instructions`` package: argument counts, flags each instruction
accepts (with their types), ``--mount``/``--network``/``--security`` values, HEALTHCHECK
durations, stage names. Variables are *not* expanded here: values keep their raw text
and every instruction keeps its syntax node (``node``) with positions, so a later stage
can expand them with the build's arguments. Errors are DockerfileError with the
position of the offending instruction or flag.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from pallet.dockerfile.ast import Dockerfile, Heredoc, Instruction, Position
from pallet.dockerfile.durations import MILLISECOND, DurationError, parse_duration
from pallet.dockerfile.errors import DockerfileError
from pallet.dockerfile.flags import FlagError, FlagKind, ParsedFlags, parse_flags
from pallet.dockerfile.gostrings import equal_fold, lower, quote, trim_space, upper
from pallet.dockerfile.heredoc import HeredocLexError, HeredocTooDeep, chomp, parse_heredoc
from pallet.dockerfile.mounts import (
    Device,
    Mount,
    MountError,
    check_mount_syntax,
    parse_device,
    parse_mount,
)
from pallet.dockerfile.shell import ShellExpansionError, ShellLex
from pallet.dockerfile.suggest import search

INSTRUCTIONS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
    "workdir",
)  # fmt: skip
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("insecure", "sandbox")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_INT = re.compile(r"[+-]?[0-9]+")


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    legacy: bool = False  # written as ``ENV key value`` (no ``=``)


@dataclass(frozen=True)
class ArgDef:
    key: str
    default: str | None  # None: declared without a default


@dataclass(frozen=True)
class SourceContent:
    """A COPY/ADD source given inline as a heredoc."""

    path: str  # the heredoc name, used as the file name
    data: str  # leading tabs already removed for ``<<-``
    expand: bool


@dataclass(frozen=True)
class From:
    node: Instruction
    base: str  # image reference or stage name, unexpanded
    name: str | None  # stage name (lower-cased), from ``AS name``
    platform: str | None


@dataclass(frozen=True)
class Run:
    node: Instruction
    command: tuple[str, ...]  # exec form: the argv; shell form: one string
    prepend_shell: bool  # shell form: run through SHELL
    files: tuple[Heredoc, ...]  # heredocs (the script and any extra files)
    mount_specs: tuple[str, ...]  # raw --mount values
    # parsed mounts; None when a value holds variables or is invalid: BuildKit checks
    # those only when the stage is built, see resolve_mounts
    mounts: tuple[Mount, ...] | None
    network: str
    security: str
    devices: tuple[Device, ...]

    def resolve_mounts(self, expand: Callable[[str], str]) -> tuple[Mount, ...]:
        """Parse every --mount value with ``expand`` resolving its variables."""
        positions = [f.position for f in self.node.flags if f.name == "mount"]
        out = []
        for i, spec in enumerate(self.mount_specs):
            try:
                out.append(parse_mount(spec, expand))
            except MountError as err:
                pos = positions[i] if i < len(positions) else self.node.position
                raise DockerfileError(str(err), pos.line, pos.column) from None
        return tuple(out)


@dataclass(frozen=True)
class Cmd:
    node: Instruction
    command: tuple[str, ...]
    prepend_shell: bool
    files: tuple[Heredoc, ...]


@dataclass(frozen=True)
class Entrypoint:
    node: Instruction
    command: tuple[str, ...]
    prepend_shell: bool
    files: tuple[Heredoc, ...]


@dataclass(frozen=True)
class Copy:
    node: Instruction
    sources: tuple[str, ...]  # paths (heredoc sources are in ``contents``)
    contents: tuple[SourceContent, ...]
    dest: str
    from_: str | None
    chown: str | None
    chmod: str | None
    link: bool
    parents: bool
    excludes: tuple[str, ...]


@dataclass(frozen=True)
class Add:
    node: Instruction
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    chown: str | None
    chmod: str | None
    link: bool
    keep_git_dir: bool | None  # None: not given
    checksum: str | None
    unpack: bool | None  # None: not given
    excludes: tuple[str, ...]


@dataclass(frozen=True)
class Env:
    node: Instruction
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class Label:
    node: Instruction
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class Arg:
    node: Instruction
    args: tuple[ArgDef, ...]


@dataclass(frozen=True)
class Expose:
    node: Instruction
    ports: tuple[str, ...]  # sorted, as BuildKit keeps them


@dataclass(frozen=True)
class Volume:
    node: Instruction
    volumes: tuple[str, ...]


@dataclass(frozen=True)
class User:
    node: Instruction
    user: str


@dataclass(frozen=True)
class Workdir:
    node: Instruction
    path: str


@dataclass(frozen=True)
class Onbuild:
    node: Instruction
    expression: str  # the trigger as it will run in a child image (heredocs appended)
    trigger: Instruction


@dataclass(frozen=True)
class Stopsignal:
    node: Instruction
    signal: str


@dataclass(frozen=True)
class Healthcheck:
    """``test`` is ``("NONE",)``, ``("CMD", argv...)`` or ``("CMD-SHELL", command)``.

    Durations are nanoseconds, 0 meaning "not set" (the runtime's default applies).
    """

    node: Instruction
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Shell:
    node: Instruction
    shell: tuple[str, ...]


@dataclass(frozen=True)
class Maintainer:
    node: Instruction
    maintainer: str


Command: TypeAlias = (
    Run | Cmd | Entrypoint | Copy | Add | Env | Label | Arg | Expose | Volume | User
    | Workdir | Onbuild | Stopsignal | Healthcheck | Shell | Maintainer
)  # fmt: skip
TypedInstruction: TypeAlias = From | Command


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the commands up to the next FROM."""

    index: int
    source: From
    commands: tuple[Command, ...]

    @property
    def name(self) -> str | None:
        return self.source.name

    @property
    def base(self) -> str:
        return self.source.base

    @property
    def platform(self) -> str | None:
        return self.source.platform


@dataclass(frozen=True)
class Stages:
    meta_args: tuple[Arg, ...]  # ARGs before the first FROM (visible to every FROM)
    stages: tuple[Stage, ...]


# ---------------------------------------------------------------------------- errors


class _Fail(Exception):
    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _error(node: Instruction, message: str, position: Position | None = None) -> DockerfileError:
    pos = position or node.position
    return DockerfileError(message, pos.line, pos.column)


# ---------------------------------------------------------------------------- per instruction


def parse_instruction(node: Instruction) -> TypedInstruction:
    """Check one syntax node and return its typed instruction; DockerfileError if invalid."""
    parser = _PARSERS.get(node.command)
    if parser is None:
        raise _unknown_instruction(node)
    try:
        return parser(node)
    except _Fail as err:
        raise _error(node, err.message, err.position) from None
    except FlagError as err:
        raise _error(node, err.message, err.position) from None
    except MountError as err:
        raise _error(node, str(err)) from None


def _unknown_instruction(node: Instruction) -> DockerfileError:
    if not node.keyword:
        return _error(node, "unexpected end of file: the last line continues onto nothing")
    message = f"unknown instruction {quote(node.keyword)}"
    match = search(node.keyword, [upper(i) for i in INSTRUCTIONS], case_sensitive=False)
    if match is not None:
        message += f' (did you mean "{match}"?)'
    return _error(node, message)


def _flags(node: Instruction, spec: Mapping[str, FlagKind]) -> ParsedFlags:
    return parse_flags(node.flags, spec, node.keyword)


def _exactly_one(node: Instruction) -> str:
    if len(node.args) != 1:
        raise _Fail(f"{upper(node.keyword)} requires exactly one argument")
    return node.args[0].value


def _at_least_one(node: Instruction) -> None:
    if not node.args:
        raise _Fail(f"{upper(node.keyword)} requires at least one argument")


def _command_line(node: Instruction) -> tuple[str, ...]:
    """handleJSONArgs: exec form keeps the list, shell form joins it into one string."""
    values = node.values
    if not values:
        return ()
    if node.json_form:
        return values
    return (" ".join(values),)


def _parse_from(node: Instruction) -> From:
    args = node.values
    name: str | None = None
    if len(args) == 3 and equal_fold(args[1], "as"):
        name = lower(args[2])
        if not _STAGE_NAME.fullmatch(name):
            raise _Fail(
                f'invalid name for build stage: "{args[2]}", name can\'t start with a number '
                "or contain symbols",
                node.args[2].position,
            )
    elif len(args) != 1:
        raise _Fail("FROM requires either one or three arguments")
    flags = _flags(node, {"platform": "string"})
    return From(node, args[0], name, flags.text("platform"))


def _parse_run(node: Instruction) -> Run:
    flags = _flags(
        node, {"mount": "strings", "network": "string", "security": "string", "device": "strings"}
    )
    specs = flags.texts("mount")
    mount_flags = [f for f in node.flags if f.name == "mount"]
    for spec, flag in zip(specs, mount_flags, strict=False):
        try:
            check_mount_syntax(spec)  # what BuildKit checks when it parses the file
        except MountError as err:
            raise _Fail(str(err), flag.position) from None
    mounts: tuple[Mount, ...] | None = None
    if not any("$" in s for s in specs):
        try:
            mounts = tuple(parse_mount(s) for s in specs)
        except MountError:
            pass  # reported by resolve_mounts, when (and if) the stage is built
    network = flags.text("network")
    if network is None:
        network = "default"
    if network not in NETWORK_MODES:
        raise _Fail(f'invalid network mode "{network}"', flags.positions.get("network"))
    security = flags.text("security")
    if security is None:
        security = "sandbox"
    if security not in SECURITY_MODES:
        raise _Fail(f'security "{security}" is not valid', flags.positions.get("security"))
    devices = tuple(parse_device(d) for d in flags.texts("device"))
    return Run(
        node,
        _command_line(node),
        not node.json_form,
        node.heredocs,
        specs,
        mounts,
        network,
        security,
        devices,
    )


def _parse_cmd(node: Instruction) -> Cmd:
    _flags(node, {})
    return Cmd(node, _command_line(node), not node.json_form, node.heredocs)


def _parse_entrypoint(node: Instruction) -> Entrypoint:
    _flags(node, {})
    return Entrypoint(node, _command_line(node), not node.json_form, node.heredocs)


def _heredoc_word(value: str) -> Heredoc | None:
    try:
        word = parse_heredoc(value)
    except (HeredocLexError, HeredocTooDeep):
        return None  # MustParseHeredoc: errors mean "not a heredoc"
    if word is None:
        return None
    return Heredoc(word.name, word.file_descriptor, word.expand, word.chomp, "", 0)


def _sources_and_dest(
    node: Instruction,
) -> tuple[tuple[str, ...], tuple[SourceContent, ...], str]:
    values = node.values
    if len(values) < 2:
        raise _Fail(
            f"{upper(node.keyword)} requires at least two arguments, but only one was "
            "provided. Destination could not be determined"
        )
    dest = values[-1]
    if _heredoc_word(dest) is not None:
        raise _Fail(
            f"{upper(node.keyword)} cannot accept a heredoc as a destination",
            node.args[-1].position,
        )
    bodies = {h.name: h for h in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in values[:-1]:
        doc = _heredoc_word(src)
        if doc is None:
            paths.append(src)
            continue
        body = bodies.get(doc.name)
        data = "" if body is None else body.content
        if doc.chomp:
            data = chomp(data)
        contents.append(SourceContent(doc.name, data, doc.expand))
    return tuple(paths), tuple(contents), dest


def _parse_copy(node: Instruction) -> Copy:
    if len(node.args) < 2:
        _sources_and_dest(node)  # raises the BuildKit message
    flags = _flags(
        node,
        {
            "chown": "string",
            "from": "string",
            "chmod": "string",
            "link": "bool",
            "exclude": "strings",
            "parents": "bool",
        },
    )
    paths, contents, dest = _sources_and_dest(node)
    return Copy(
        node,
        paths,
        contents,
        dest,
        flags.text("from"),
        flags.text("chown"),
        flags.text("chmod"),
        flags.boolean("link"),
        flags.boolean("parents"),
        flags.texts("exclude"),
    )


def _parse_add(node: Instruction) -> Add:
    if len(node.args) < 2:
        _sources_and_dest(node)
    flags = _flags(
        node,
        {
            "chown": "string",
            "chmod": "string",
            "link": "bool",
            "keep-git-dir": "bool",
            "checksum": "string",
            "unpack": "bool",
            "exclude": "strings",
        },
    )
    paths, contents, dest = _sources_and_dest(node)
    return Add(
        node,
        paths,
        contents,
        dest,
        flags.text("chown"),
        flags.text("chmod"),
        flags.boolean("link"),
        flags.boolean("keep-git-dir") if flags.used("keep-git-dir") else None,
        flags.text("checksum"),
        flags.boolean("unpack") if flags.used("unpack") else None,
        flags.texts("exclude"),
    )


def _key_values(node: Instruction) -> tuple[KeyValue, ...]:
    values = node.values
    name = upper(node.keyword)
    if not values:
        raise _Fail(f"{name} requires at least one argument")
    if len(values) % 3:
        raise _Fail(f"Bad input to {name}, too many arguments")
    pairs = []
    for i in range(0, len(values), 3):
        if not values[i]:
            raise _Fail(f"{name} names can not be blank", node.args[i].position)
        pairs.append(KeyValue(values[i], values[i + 1], legacy=values[i + 2] == ""))
    return tuple(pairs)


def _parse_env(node: Instruction) -> Env:
    _flags(node, {})
    return Env(node, _key_values(node))


def _parse_label(node: Instruction) -> Label:
    _flags(node, {})
    return Label(node, _key_values(node))


def _parse_arg(node: Instruction) -> Arg:
    _at_least_one(node)  # BuildKit does not look at ARG's flags at all
    defs = []
    for arg in node.args:
        key, eq, default = arg.value.partition("=")
        if eq and not key:
            raise _Fail("ARG names can not be blank", arg.position)
        defs.append(ArgDef(key, default if eq else None))
    return Arg(node, tuple(defs))


def _parse_expose(node: Instruction) -> Expose:
    _at_least_one(node)
    _flags(node, {})
    return Expose(node, tuple(sorted(node.values)))


def _parse_volume(node: Instruction) -> Volume:
    _at_least_one(node)
    _flags(node, {})
    volumes = []
    for arg in node.args:
        value = trim_space(arg.value)
        if not value:
            raise _Fail("VOLUME specified can not be an empty string", arg.position)
        volumes.append(value)
    return Volume(node, tuple(volumes))


def _parse_user(node: Instruction) -> User:
    user = _exactly_one(node)
    _flags(node, {})
    return User(node, user)


def _parse_workdir(node: Instruction) -> Workdir:
    path = _exactly_one(node)
    _flags(node, {})
    return Workdir(node, path)


def _parse_stopsignal(node: Instruction) -> Stopsignal:
    signal = _exactly_one(node)  # BuildKit does not look at STOPSIGNAL's flags
    return Stopsignal(node, signal)


def _parse_maintainer(node: Instruction) -> Maintainer:
    maintainer = _exactly_one(node)
    _flags(node, {})
    return Maintainer(node, maintainer)


_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)


def _parse_onbuild(node: Instruction) -> Onbuild:
    trigger = node.sub
    if trigger is None:
        raise _Fail("ONBUILD requires at least one argument")
    _flags(node, {})
    name = upper(trim_space(trigger.keyword))
    if name == "ONBUILD":
        raise _Fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", trigger.position)
    if name in ("MAINTAINER", "FROM"):
        raise _Fail(f"{name} isn't allowed as an ONBUILD trigger", trigger.position)
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(node, expression, trigger)


def _parse_shell(node: Instruction) -> Shell:
    _flags(node, {})
    if not node.args:
        raise _Fail("SHELL requires at least one argument")
    if not node.json_form:
        raise _Fail(
            f"SHELL requires the arguments to be in JSON form, e.g. "
            f'SHELL ["/bin/sh", "-c"] (got {trim_space(node.original)!r})'
        )
    return Shell(node, node.values)


def _interval(flags: ParsedFlags, name: str) -> int:
    text = flags.text(name)
    if not text:
        return 0
    position = flags.positions.get(name)
    try:
        nanos = parse_duration(text)
    except DurationError as err:
        raise _Fail(f"--{name}: {err}", position) from None
    if nanos == 0:
        return 0
    if nanos < MILLISECOND:
        raise _Fail(f'Interval "{name}" cannot be less than 1ms', position)
    return nanos


def _parse_healthcheck(node: Instruction) -> Healthcheck:
    if not node.args:
        raise _Fail("HEALTHCHECK requires at least one argument")
    kind = upper(node.args[0].value)
    rest = node.args[1:]
    if kind == "NONE":
        if rest:
            raise _Fail("HEALTHCHECK NONE takes no arguments", rest[0].position)
        # BuildKit does not look at the flags of HEALTHCHECK NONE
        return Healthcheck(node, ("NONE",))
    flags = _flags(
        node,
        {
            "interval": "string",
            "timeout": "string",
            "start-period": "string",
            "start-interval": "string",
            "retries": "string",
        },
    )
    if kind != "CMD":
        raise _Fail(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)', node.args[0].position)
    values = tuple(a.value for a in rest)
    if not values:
        raise _Fail("Missing command after HEALTHCHECK CMD")
    if node.json_form:
        test = ("CMD", *values)
    else:
        test = ("CMD-SHELL", " ".join(values))
    retries = 0
    text = flags.text("retries")
    if text:
        position = flags.positions.get("retries")
        if not _INT.fullmatch(text) or len(text.lstrip("+-0")) > 10:
            raise _Fail(f'--retries: invalid number "{text}"', position)
        retries = int(text)
        if not -(1 << 31) <= retries < (1 << 31):
            raise _Fail(f'--retries: value out of range "{text}"', position)
        if retries < 0:
            raise _Fail(f"--retries cannot be negative ({retries})", position)
    return Healthcheck(
        node,
        test,
        interval=_interval(flags, "interval"),
        timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        start_interval=_interval(flags, "start-interval"),
        retries=retries,
    )


_PARSERS: dict[str, Callable[[Instruction], TypedInstruction]] = {
    "add": _parse_add,
    "arg": _parse_arg,
    "cmd": _parse_cmd,
    "copy": _parse_copy,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "from": _parse_from,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "onbuild": _parse_onbuild,
    "run": _parse_run,
    "shell": _parse_shell,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


# ---------------------------------------------------------------------------- stages

#: build arguments BuildKit defines for every FROM (values only matter for the check)
PLATFORM_ARGS = (
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
)  # fmt: skip


def parse_instructions(dockerfile: Dockerfile) -> list[TypedInstruction]:
    """Every instruction of the file, typed and checked, in order."""
    out = []
    for node in dockerfile.instructions:
        try:
            out.append(parse_instruction(node))
        except DockerfileError as err:
            err.filename = dockerfile.filename
            raise
    return out


def parse_stages(dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None) -> Stages:
    """Group the typed instructions into stages (BuildKit's ``instructions.Parse``).

    ARGs before the first FROM are meta args. Each FROM's base name is checked against
    them (and ``build_args``, which override their defaults): a FROM that expands to
    nothing, or that uses an ARG only declared inside an earlier stage, is an error.
    """
    meta: list[Arg] = []
    stages: list[tuple[From, list[Command]]] = []
    stage_args: dict[str, Instruction] = {}
    try:
        for typed in parse_instructions(dockerfile):
            if isinstance(typed, From):
                _check_from(typed, meta, stage_args, build_args or {}, dockerfile.escape)
                stages.append((typed, []))
            elif not stages:
                if not isinstance(typed, Arg):
                    raise _error(
                        typed.node,
                        f"{upper(typed.node.keyword)} before the first FROM: only ARG may "
                        "come before FROM (no build stage in context)",
                    )
                meta.append(typed)
            else:
                if isinstance(typed, Arg):
                    for d in typed.args:
                        stage_args.setdefault(d.key, typed.node)
                stages[-1][1].append(typed)
    except DockerfileError as err:
        err.filename = dockerfile.filename
        raise
    return Stages(
        tuple(meta),
        tuple(Stage(i, src, tuple(cmds)) for i, (src, cmds) in enumerate(stages)),
    )


def _check_from(
    src: From,
    meta: list[Arg],
    stage_args: Mapping[str, Instruction],
    build_args: Mapping[str, str],
    escape: str,
) -> None:
    env: dict[str, str] = {name: "-" for name in PLATFORM_ARGS}
    for arg in meta:
        for d in arg.args:
            if d.key in build_args:
                env[d.key] = build_args[d.key]
            elif d.default is not None:
                try:
                    env[d.key] = ShellLex(escape).process_word(d.default, env)
                except ShellExpansionError:
                    env[d.key] = d.default
    lex = ShellLex(escape)
    node = src.node
    try:
        result, _, unmatched = lex.process_word_with_matches(src.base, env)
    except ShellExpansionError as err:
        raise _error(node, f"FROM: {err}", node.args[0].position) from None
    meta_names = {d.key for arg in meta for d in arg.args}
    for name in sorted(unmatched - meta_names):
        declared = stage_args.get(name)
        # ${NAME:-x} and friends work without the ARG; a bare $NAME / ${NAME} does not
        if declared is not None and _bare_reference(name).search(src.base):
            raise _error(
                node,
                f'FROM uses ARG "{name}", which is only declared inside an earlier stage '
                f"(line {declared.start_line}); declare it before the first FROM to use it "
                "in FROM",
                node.args[0].position,
            )
    if not trim_space(result):
        missing = ", ".join(sorted(unmatched)) or src.base
        raise _error(
            node,
            f"base name ({src.base}) should not be blank: ARG {missing} has no value "
            "(declare it with a default before the first FROM, or pass --build-arg)",
            node.args[0].position,
        )


def _bare_reference(name: str) -> re.Pattern[str]:
    quoted = re.escape(name)
    return re.compile(r"\$(?:\{" + quoted + r"\}|" + quoted + r"(?![A-Za-z0-9_]))")
