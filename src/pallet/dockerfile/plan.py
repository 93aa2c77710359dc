"""Resolve a parsed Dockerfile into the ordered, expanded plan the builder executes.

This is the semantic half of BuildKit's dockerfile frontend (dockerfile2llb): stages
reachable from the target, ARG scoping (global meta args, stage args, ``--build-arg``
overrides, ENV winning over ARG, the predefined proxy and automatic platform args),
word expansion where the frontend expands, the image config each instruction leaves
behind, ONBUILD triggers of base images, and Docker's history text for every step.

Base images' configs come from a callback, because the environment a stage starts
with (``PATH`` of a base image, say) decides how later words expand.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pallet.dockerfile.ast import Dockerfile, Instruction, Position
from pallet.dockerfile.errors import DockerfileError
from pallet.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stage,
    Stopsignal,
    User,
    Volume,
    Workdir,
    parse_instruction,
    parse_stages,
)
from pallet.dockerfile.mounts import Mount, MountError, parse_mount
from pallet.dockerfile.shell import ShellExpansionError, ShellLex
from pallet.oci.config import ContainerConfig, ImageConfig
from pallet.oci.platform import Platform

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")

#: usable with --build-arg without an ARG, passed to RUN, kept out of history and cache keys
PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
    }
)  # fmt: skip

BaseKind = Literal["scratch", "stage", "image"]
ConfigLookup = Callable[[str, Platform], ImageConfig]


@dataclass(frozen=True)
class StageBase:
    kind: BaseKind
    stage: int | None = None  # for "stage"
    image: str | None = None  # for "image": the expanded reference


@dataclass(frozen=True)
class CopySource:
    """Where COPY/ADD read from: the context, an earlier stage, or an image."""

    kind: Literal["context", "stage", "image"]
    stage: int | None = None
    image: str | None = None


@dataclass(frozen=True)
class InlineFile:
    """A heredoc used as a COPY/ADD source, already expanded if its delimiter allows."""

    name: str
    data: str


@dataclass(frozen=True)
class CopyStep:
    add: bool
    sources: tuple[str, ...]
    inline: tuple[InlineFile, ...]
    dest: str  # expanded; relative destinations are joined to the workdir by the builder
    source: CopySource
    chown: str | None
    chmod: str | None
    link: bool
    parents: bool
    excludes: tuple[str, ...]
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass(frozen=True)
class RunStep:
    argv: tuple[str, ...]
    env: tuple[str, ...]  # image env plus the build args in scope (ENV wins)
    mounts: tuple[Mount, ...]
    mount_sources: tuple[CopySource, ...]  # per mount: where ``from=`` points (context if unset)
    network: str  # "default" (host here), "none" or "host"
    security: str
    files: tuple[InlineFile, ...]  # heredoc scripts and files given to the command


@dataclass(frozen=True)
class Step:
    """One instruction of a stage, expanded, with the config it leaves behind."""

    keyword: str  # upper-case instruction name
    line: int
    created_by: str
    config: ContainerConfig  # the stage's container config after this step
    run: RunStep | None = None
    copy: CopyStep | None = None
    workdir: str | None = None  # WORKDIR: the directory to create
    #: build args this step can see, for the builder's cache key (proxy args excluded)
    args: tuple[tuple[str, str], ...] = ()
    onbuild: bool = False  # a trigger inherited from the base image

    @property
    def changes_filesystem(self) -> bool:
        return self.run is not None or self.copy is not None or self.workdir is not None


@dataclass(frozen=True)
class StagePlan:
    index: int
    name: str | None
    base: StageBase
    platform: Platform
    #: the config the stage starts from (base image's, parent stage's, or scratch's)
    base_config: ImageConfig
    steps: tuple[Step, ...]
    deps: frozenset[int]
    author: str = ""

    @property
    def config(self) -> ContainerConfig:
        return self.steps[-1].config if self.steps else self.base_config.config


@dataclass(frozen=True)
class BuildPlan:
    stages: tuple[StagePlan, ...]  # reachable from the target, dependencies first
    target: int
    unused_build_args: tuple[str, ...] = ()

    def stage(self, index: int) -> StagePlan:
        for stage in self.stages:
            if stage.index == index:
                return stage
        raise KeyError(index)


@dataclass
class _StageState:
    config: ContainerConfig
    args: dict[str, str] = field(default_factory=dict)  # stage ARGs in scope, in order
    cmd_set: bool = False
    author: str = ""


@dataclass
class _Scope:
    """Where an instruction sits: what it may refer to, and what its stage depends on."""

    meta: Mapping[str, str]  # global ARG values
    names: Mapping[str, int]  # stage name -> index
    current: int  # this stage's index
    target: str | None
    stage_names: Mapping[int, str | None]
    deps: set[int] = field(default_factory=set)


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    return {
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant,
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
    }


def scratch_config(platform: Platform) -> ImageConfig:
    """BuildKit's empty image (dockerfile2llb's emptyImage): a default PATH and "/" as the
    working directory, nothing else."""
    cfg = ImageConfig.new(platform)
    return cfg.with_config(env=(f"PATH={DEFAULT_PATH}",), working_dir="/")


def _fail(node: Instruction, message: str, position: Position | None = None) -> DockerfileError:
    pos = position or node.position
    return DockerfileError(message, line=pos.line, column=pos.column)


def _go_quote_list(values: Sequence[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    import json

    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String for whole-ish values (``30s``, ``1m30s``, ``0s``)."""
    if ns == 0:
        return "0s"
    total = ns / 1e9
    hours, rem = divmod(total, 3600)
    minutes, seconds = divmod(rem, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    sec = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return out + f"{sec}s"


class _Resolver:
    def __init__(
        self,
        dockerfile: Dockerfile,
        build_args: Mapping[str, str],
        target_platform: Platform,
        build_platform: Platform,
        base_config: ConfigLookup,
    ) -> None:
        self.df = dockerfile
        self.build_args = dict(build_args)
        self.target_platform = target_platform
        self.build_platform = build_platform
        self.base_config = base_config
        self.lex = ShellLex(dockerfile.escape)
        self.auto = platform_args(target_platform, build_platform)
        self.used_args: set[str] = set()

    # -- expansion ---------------------------------------------------------------

    def expand(self, node: Instruction, word: str, env: Mapping[str, str]) -> str:
        try:
            return self.lex.process_word(word, env)
        except ShellExpansionError as err:
            raise _fail(node, f"{node.keyword.upper()}: {err}") from None

    def expand_words(self, node: Instruction, word: str, env: Mapping[str, str]) -> list[str]:
        try:
            return self.lex.process_words(word, env)
        except ShellExpansionError as err:
            raise _fail(node, f"{node.keyword.upper()}: {err}") from None

    # -- meta args -----------------------------------------------------------------

    def meta_args(self, metas: Sequence[Arg]) -> dict[str, str]:
        env: dict[str, str] = dict(self.auto)
        values: dict[str, str] = {}
        for arg in metas:
            for d in arg.args:
                if d.key in self.build_args:
                    value = self.build_args[d.key]
                elif d.default is not None:
                    value = self.expand(arg.node, d.default, env)
                else:
                    continue
                values[d.key] = value
                env[d.key] = value
                self.used_args.add(d.key)
        return values

    # -- stages ------------------------------------------------------------------

    def resolve(self, target: str | None) -> BuildPlan:
        parsed = parse_stages(self.df, self.build_args)
        if not parsed.stages:
            raise DockerfileError("the Dockerfile has no FROM instruction", line=1, column=1)
        meta = self.meta_args(parsed.meta_args)
        names: dict[str, int] = {}
        for stage in parsed.stages:
            if stage.name is not None and stage.name not in names:
                names[stage.name] = stage.index
        target_index = len(parsed.stages) - 1
        if target is not None:
            if target.lower() not in names:
                raise DockerfileError(
                    f'target stage "{target}" could not be found', line=1, column=1
                )
            target_index = names[target.lower()]

        plans: dict[int, StagePlan] = {}
        for stage in parsed.stages[: target_index + 1]:
            plans[stage.index] = self.resolve_stage(
                stage, meta, names, plans, target, parsed.stages
            )

        reachable: list[int] = []

        def visit(index: int) -> None:
            if index in reachable:
                return
            for dep in sorted(plans[index].deps):
                visit(dep)
            reachable.append(index)

        visit(target_index)
        declared = {d.key for arg in parsed.meta_args for d in arg.args}
        for stage in parsed.stages:
            for command in stage.commands:
                if isinstance(command, Arg):
                    declared.update(d.key for d in command.args)
        unused = sorted(k for k in self.build_args if k not in declared and k not in PROXY_ARGS)
        return BuildPlan(tuple(plans[i] for i in reachable), target_index, tuple(unused))

    def resolve_stage(
        self,
        stage: Stage,
        meta: Mapping[str, str],
        names: Mapping[str, int],
        done: Mapping[int, StagePlan],
        target: str | None,
        all_stages: Sequence[Stage],
    ) -> StagePlan:
        node = stage.source.node
        from_env = {**self.auto, **meta}
        platform = self.target_platform
        if stage.platform:
            text = self.expand(node, stage.platform, from_env)
            try:
                platform = Platform.parse(text)
            except Exception as err:  # OCIError: name the instruction
                raise _fail(node, f"FROM --platform: {err}") from None
            if platform != self.target_platform and not platform.matches(self.target_platform):
                raise _fail(
                    node,
                    f"FROM --platform={text}: building for another platform than the host "
                    f"({self.target_platform}) is not supported",
                )
        base_name = self.expand(node, stage.base, from_env)
        scope = _Scope(meta, names, stage.index, target, {s.index: s.name for s in all_stages})
        if base_name.lower() == "scratch":
            base = StageBase("scratch")
            base_cfg = scratch_config(platform)
        elif base_name.lower() in names and names[base_name.lower()] < stage.index:
            parent = done[names[base_name.lower()]]
            base = StageBase("stage", stage=parent.index)
            scope.deps.add(parent.index)
            base_cfg = parent.base_config.replace(config=parent.config)
        else:
            if base_name.lower() in names:
                raise _fail(
                    node, f'FROM {base_name}: stage "{base_name}" is defined later in the file'
                )
            base = StageBase("image", image=base_name)
            base_cfg = self.base_config(base_name, platform)

        state = _StageState(config=base_cfg.config, author=base_cfg.author)
        if state.config.env is None:
            state = replace(state, config=state.config.replace(env=(f"PATH={DEFAULT_PATH}",)))
        steps: list[Step] = []
        commands: list[tuple[Command, bool]] = []
        # ONBUILD triggers of the base image run first, then are cleared from the config.
        if base.kind == "image" and state.config.on_build:
            for text in state.config.on_build:
                commands.append((self.parse_trigger(node, text), True))
            state.config = state.config.replace(on_build=None)
        elif base.kind == "stage" and state.config.on_build:
            state.config = state.config.replace(on_build=None)
        commands.extend((c, False) for c in stage.commands)
        for command, is_trigger in commands:
            step = self.dispatch(command, state, scope)
            if step is not None:
                steps.append(replace(step, onbuild=is_trigger))
        return StagePlan(
            index=stage.index,
            name=stage.name,
            base=base,
            platform=platform,
            base_config=base_cfg,
            steps=tuple(steps),
            deps=frozenset(scope.deps),
            author=state.author,
        )

    def parse_trigger(self, node: Instruction, text: str) -> Command:
        from pallet.dockerfile.parser import parse

        try:
            parsed = parse(text)
        except DockerfileError as err:
            raise _fail(node, f"ONBUILD trigger of the base image is invalid: {err}") from None
        if len(parsed.instructions) != 1:
            raise _fail(node, f"ONBUILD trigger of the base image is invalid: {text!r}")
        typed = parse_instruction(parsed.instructions[0])
        if typed.__class__.__name__ in ("From", "Onbuild") or isinstance(typed, Maintainer):
            raise _fail(node, f"{typed.node.keyword.upper()} is not allowed as an ONBUILD trigger")
        return typed  # type: ignore[return-value]

    # -- instructions --------------------------------------------------------------

    def visible_args(self, state: _StageState) -> dict[str, str]:
        return dict(state.args)

    def expansion_env(self, state: _StageState) -> dict[str, str]:
        env = self.visible_args(state)
        env.update(state.config.env_dict())  # ENV wins over ARG
        return env

    def run_env(self, state: _StageState) -> tuple[str, ...]:
        env = state.config.env_dict()
        extra = {k: v for k, v in state.args.items() if k not in env}
        for key in sorted(PROXY_ARGS):
            if key in self.build_args and key not in env and key not in extra:
                extra[key] = self.build_args[key]
        return (*(f"{k}={v}" for k, v in env.items()), *(f"{k}={v}" for k, v in extra.items()))

    def step_args(self, state: _StageState) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in state.args.items() if k not in PROXY_ARGS)

    def copy_source(
        self,
        node: Instruction,
        value: str | None,
        state: _StageState,
        scope: _Scope,
    ) -> CopySource:
        if value is None or value == "":
            return CopySource("context")
        name = self.expand(node, value, self.expansion_env(state)).lower()
        index = int(name) if name.isdigit() else scope.names.get(name)
        if index is not None:
            if index >= scope.current:
                where = (
                    "is the current stage" if index == scope.current else "comes later in the file"
                )
                shown = f"stage {index}" if name.isdigit() else f'stage "{name}"'
                raise _fail(
                    node,
                    f"--from={value}: {shown} {where} (only earlier stages can be copied from)",
                )
            scope.deps.add(index)
            return CopySource("stage", stage=index)
        from pallet.errors import InvalidReference
        from pallet.oci.reference import Reference

        try:
            Reference.parse(name)
        except InvalidReference:
            raise _fail(
                node, f'--from={value}: no stage or image named "{name}" (stage not found)'
            ) from None
        return CopySource("image", image=name)

    def dispatch(
        self,
        command: Command,
        state: _StageState,
        scope: _Scope,
    ) -> Step | None:
        node = command.node
        line = node.start_line
        kw = node.keyword.upper()
        cfg = state.config
        env = self.expansion_env(state)

        def meta_step(created_by: str) -> Step:
            return Step(kw, line, created_by, state.config, args=self.step_args(state))

        if isinstance(command, Arg):
            parts = []
            for d in command.args:
                if d.key in self.build_args:
                    value: str | None = self.build_args[d.key]
                elif d.default is not None:
                    value = self.expand(node, d.default, env)
                elif d.key in self.auto:
                    value = self.auto[d.key]
                elif d.key == "TARGETSTAGE":
                    value = (
                        scope.target or scope.stage_names.get(scope.current) or str(scope.current)
                    )
                elif d.key in scope.meta:
                    value = scope.meta[d.key]
                else:
                    value = None
                self.used_args.add(d.key)
                if value is not None:
                    state.args[d.key] = value
                    env[d.key] = value
                parts.append(d.key if d.default is None else f"{d.key}={d.default}")
            return meta_step("ARG " + " ".join(parts))
        if isinstance(command, Env):
            items = []
            for kv in command.pairs:
                key = self.expand(node, kv.key, env)
                value = self.expand(node, kv.value, env)
                state.config = state.config.with_env(key, value)
                env[key] = value
                items.append(f"{key}={value}")
            return meta_step("ENV " + " ".join(items))
        if isinstance(command, Label):
            labels = dict(cfg.labels or {})
            items = []
            for kv in command.pairs:
                key = self.expand(node, kv.key, env)
                value = self.expand(node, kv.value, env)
                labels[key] = value
                items.append(f"{key}={value}")
            state.config = cfg.replace(labels=labels)
            return meta_step("LABEL " + " ".join(items))
        if isinstance(command, Maintainer):
            state.author = command.maintainer
            return meta_step("MAINTAINER " + command.maintainer)
        if isinstance(command, Expose):
            ports = dict.fromkeys(cfg.exposed_ports or ())
            for raw in command.ports:
                for word in self.expand_words(node, raw, env):
                    for port in _expand_port_range(node, word):
                        ports.setdefault(port)
            ordered = tuple(sorted(ports, key=_port_sort_key))
            state.config = cfg.replace(exposed_ports=ordered)
            shown = " ".join(f"{p}:{{}}" for p in ordered)
            return meta_step(f"EXPOSE map[{shown}]")
        if isinstance(command, Volume):
            vols = dict.fromkeys(cfg.volumes or ())
            added = []
            for raw in command.volumes:
                value = self.expand(node, raw, env) if node.json_form else None
                words = [value] if value is not None else self.expand_words(node, raw, env)
                for v in words:
                    if not v.strip():
                        raise _fail(node, "VOLUME specified can not be an empty string")
                    vols.setdefault(v)
                    added.append(v)
            state.config = cfg.replace(volumes=tuple(vols))
            return meta_step(f"VOLUME [{' '.join(added)}]")
        if isinstance(command, User):
            user = self.expand(node, command.user, env)
            state.config = cfg.replace(user=user)
            return meta_step(f"USER {user}")
        if isinstance(command, Stopsignal):
            sig = self.expand(node, command.signal, env)
            state.config = cfg.replace(stop_signal=sig)
            return meta_step(f"STOPSIGNAL {sig}")
        if isinstance(command, Shell):
            state.config = cfg.replace(shell=tuple(command.shell))
            return meta_step(f"SHELL [{' '.join(command.shell)}]")
        if isinstance(command, Onbuild):
            triggers = (*(cfg.on_build or ()), command.expression)
            state.config = cfg.replace(on_build=triggers)
            return meta_step(f"ONBUILD {command.expression}")
        if isinstance(command, Healthcheck):
            return self.healthcheck(command, state, meta_step)
        if isinstance(command, Cmd | Entrypoint):
            argv = self.command_argv(command.command, command.prepend_shell, cfg)
            if isinstance(command, Cmd):
                state.config = cfg.replace(cmd=argv)
                state.cmd_set = True
                return meta_step(f"CMD {_go_quote_list(argv)}")
            state.config = cfg.replace(entrypoint=argv)
            if not state.cmd_set:
                state.config = state.config.replace(cmd=None)
            return meta_step(f"ENTRYPOINT {_go_quote_list(argv)}")
        if isinstance(command, Workdir):
            path = self.expand(node, command.path, env)
            if not posixpath.isabs(path):
                path = posixpath.join(cfg.working_dir or "/", path)
            path = posixpath.normpath(path)
            if path.startswith("//"):
                path = path[1:]
            state.config = cfg.replace(working_dir=path)
            return Step(
                kw, line, f"WORKDIR {path}", state.config, workdir=path, args=self.step_args(state)
            )
        if isinstance(command, Run):
            return self.run(command, state, scope)
        if isinstance(command, Copy | Add):
            return self.copy(command, state, scope)
        raise _fail(node, f"{kw} is not supported here")

    def healthcheck(
        self, command: Healthcheck, state: _StageState, meta_step: Callable[[str], Step]
    ) -> Step:
        test = list(command.test)
        check: dict[str, object] = {"Test": test}
        for key, value in (
            ("Interval", command.interval),
            ("Timeout", command.timeout),
            ("StartPeriod", command.start_period),
            ("StartInterval", command.start_interval),
        ):
            if value:
                check[key] = value
        if command.retries:
            check["Retries"] = command.retries
        state.config = state.config.replace(healthcheck=check)
        shown = (
            f"&{{{_go_quote_list(test)} {_q(_go_duration(command.interval))} "
            f"{_q(_go_duration(command.timeout))} {_q(_go_duration(command.start_period))} "
            f"{_q(_go_duration(command.start_interval))} '\\x{command.retries:02x}'}}"
        )
        return meta_step(f"HEALTHCHECK {shown}")

    def command_argv(
        self, command: Sequence[str], prepend_shell: bool, cfg: ContainerConfig
    ) -> tuple[str, ...]:
        if prepend_shell:
            shell = tuple(cfg.shell) if cfg.shell else DEFAULT_SHELL
            return (*shell, " ".join(command))
        return tuple(command)

    def run(
        self,
        command: Run,
        state: _StageState,
        scope: _Scope,
    ) -> Step:
        node = command.node
        env = self.expansion_env(state)
        files: list[InlineFile] = []
        shell = tuple(state.config.shell or DEFAULT_SHELL)
        if command.files and command.prepend_shell:
            # BuildKit's dispatchRun: heredoc bodies go to the shell unexpanded (the shell
            # expands them); a lone ``<<EOF`` script runs as the command itself, from
            # /dev/pipes when it has a shebang; otherwise the heredocs are put back.
            line = " ".join(command.command)
            first = command.files[0]
            if _is_heredoc_word(line, first.name):
                body = first.body()
                if body.startswith("#!"):
                    files.append(InlineFile(first.name, body))
                    argv = (*shell, posixpath.join("/dev/pipes", first.name))
                else:
                    argv = (*shell, body)
            else:
                argv = (*shell, line + "".join(f"\n{f.content}{f.name}" for f in command.files))
        else:
            argv = self.command_argv(command.command, command.prepend_shell, state.config)
        mounts: list[Mount] = []
        sources: list[CopySource] = []
        for spec in command.mount_specs:
            try:
                mount = parse_mount(spec, lambda word: self.expand(node, word, env))
            except MountError as err:
                raise _fail(node, f"RUN --mount={spec}: {err}") from None
            mounts.append(mount)
            sources.append(
                self.copy_source(node, mount.from_ or None, state, scope)
                if mount.type in ("bind", "cache") and mount.from_
                else CopySource("context")
            )
        shown_args = [
            f"{k}={v}"
            for k, v in state.args.items()
            if state.config.env_dict().get(k) != v and k not in PROXY_ARGS
        ]
        prefix = f"|{len(shown_args)} {' '.join(shown_args)} " if shown_args else ""
        created_by = f"RUN {prefix}{' '.join(argv)} # buildkit"
        run = RunStep(
            argv=argv,
            env=self.run_env(state),
            mounts=tuple(mounts),
            mount_sources=tuple(sources),
            network=command.network,
            security=command.security,
            files=tuple(files),
        )
        return Step(
            "RUN", node.start_line, created_by, state.config, run=run, args=self.step_args(state)
        )

    def copy(
        self,
        command: Copy | Add,
        state: _StageState,
        scope: _Scope,
    ) -> Step:
        node = command.node
        env = self.expansion_env(state)
        sources: list[str] = []
        for raw in command.sources:
            sources.extend(
                self.expand_words(node, raw, env)
                if not node.json_form
                else [self.expand(node, raw, env)]
            )
        inline = tuple(
            InlineFile(c.path, self.expand(node, c.data, env) if c.expand else c.data)
            for c in command.contents
        )
        dest = self.expand(node, command.dest, env)
        from_ = command.from_ if isinstance(command, Copy) else None
        source = self.copy_source(node, from_, state, scope)
        chown = self.expand(node, command.chown, env) if command.chown else None
        chmod = self.expand(node, command.chmod, env) if command.chmod else None
        excludes = tuple(self.expand(node, e, env) for e in command.excludes)
        add = isinstance(command, Add)
        step = CopyStep(
            add=add,
            sources=tuple(sources),
            inline=inline,
            dest=dest,
            source=source,
            chown=chown,
            chmod=chmod,
            link=command.link,
            parents=command.parents if isinstance(command, Copy) else False,
            excludes=excludes,
            checksum=command.checksum if isinstance(command, Add) else None,
            keep_git_dir=bool(command.keep_git_dir) if isinstance(command, Add) else False,
            unpack=command.unpack if isinstance(command, Add) else None,
        )
        kw = "ADD" if add else "COPY"
        shown = " ".join([*sources, *(f"<<{f.name}" for f in inline), dest])
        return Step(
            kw,
            node.start_line,
            f"{kw} {shown} # buildkit",
            state.config,
            copy=step,
            args=self.step_args(state),
        )


def _is_heredoc_word(text: str, name: str) -> bool:
    from pallet.dockerfile.heredoc import HeredocLexError, parse_heredoc

    try:
        word = parse_heredoc(text)
    except HeredocLexError:
        return False
    return word is not None and word.name == name


def _q(text: str) -> str:
    return f'"{text}"'


def _port_sort_key(port: str) -> tuple[int, str]:
    number, _, proto = port.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


def _expand_port_range(node: Instruction, word: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8002/tcp`` as docker's nat.ParsePortSpecs normalizes them."""
    spec, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise _fail(node, f"EXPOSE: invalid proto {proto!r} in {word!r}")
    if ":" in spec:
        raise _fail(
            node, f"EXPOSE: {word!r}: publishing ports to the host is not allowed in EXPOSE"
        )
    low, _, high = spec.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise _fail(node, f"EXPOSE: invalid port {word!r}")
    start, end = int(low), int(high or low)
    if not 0 <= start <= end <= 65535:
        raise _fail(node, f"EXPOSE: invalid port range {word!r}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def resolve(
    dockerfile: Dockerfile,
    *,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    target_platform: Platform,
    build_platform: Platform | None = None,
    base_config: ConfigLookup,
) -> BuildPlan:
    """The plan of the stages needed for ``target`` (default: the last stage).

    ``base_config(ref, platform)`` returns the config of a base image (pull it, or raise
    a PalletError saying it is not in the store). Semantic errors are DockerfileErrors
    carrying the line of the instruction at fault.
    """
    resolver = _Resolver(
        dockerfile,
        build_args or {},
        target_platform,
        build_platform or target_platform,
        base_config,
    )
    try:
        return resolver.resolve(target)
    except DockerfileError as err:
        err.filename = dockerfile.filename
        raise


def apply_changes(
    config: ContainerConfig, changes: Sequence[str], platform: Platform
) -> ContainerConfig:
    """``import -c`` / ``commit -c``: metadata instructions applied to a config, as docker does."""
    allowed = {
        "cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal", "user",
        "volume", "workdir", "healthcheck", "shell",
    }  # fmt: skip
    from pallet.dockerfile.parser import parse

    resolver = _Resolver(
        parse("FROM scratch\n"), {}, platform, platform, lambda r, p: scratch_config(p)
    )
    state = _StageState(config=config)
    for change in changes:
        parsed = parse(change)
        for node in parsed.instructions:
            if node.command not in allowed:
                raise DockerfileError(
                    f"{node.keyword.upper()} is not a valid change command", line=1, column=1
                )
            typed = parse_instruction(node)
            resolver.dispatch(typed, state, _Scope({}, {}, 0, None, {}))  # type: ignore[arg-type]
    return state.config
