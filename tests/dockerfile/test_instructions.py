"""Typed instructions: argument checks, flag types, mounts, healthcheck durations, stages."""

from __future__ import annotations

import pytest

from pallet.dockerfile import DockerfileError, parse
from pallet.dockerfile.durations import parse_duration
from pallet.dockerfile.instructions import (
    Add,
    Arg,
    ArgDef,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Stopsignal,
    TypedInstruction,
    User,
    Volume,
    Workdir,
    parse_instruction,
    parse_instructions,
    parse_stages,
)
from pallet.dockerfile.mounts import Device, Mount, parse_mount, ram_in_bytes


def one(text: str) -> TypedInstruction:
    return parse_instruction(parse(text).instructions[0])


def fails(text: str, match: str) -> DockerfileError:
    with pytest.raises(DockerfileError, match=match) as info:
        parse_instructions(parse(text))
    return info.value


# ---------------------------------------------------------------- each instruction


def test_from() -> None:
    f = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build")
    assert isinstance(f, From)
    assert (f.base, f.name, f.platform) == ("golang:1.22", "build", "$BUILDPLATFORM")
    plain = one("FROM scratch")
    assert isinstance(plain, From) and (plain.name, plain.platform) == (None, None)
    fails("FROM a b", "either one or three arguments")
    fails("FROM a AS 1x", "invalid name for build stage")


def test_run_shell_and_exec_form() -> None:
    shell = one("RUN echo  hi")
    assert isinstance(shell, Run)
    assert (shell.command, shell.prepend_shell) == (("echo  hi",), True)
    assert (shell.network, shell.security, shell.mounts, shell.devices) == (
        "default",
        "sandbox",
        (),
        (),
    )
    exec_form = one('RUN ["echo", "hi"]')
    assert isinstance(exec_form, Run)
    assert (exec_form.command, exec_form.prepend_shell) == (("echo", "hi"), False)


def test_run_flags() -> None:
    run = one(
        "RUN --mount=type=cache,target=/root/.cache,sharing=locked,id=go "
        "--mount=type=secret,id=tok,required --network=none --security=insecure "
        "--device=/dev/fuse,required=false make"
    )
    assert isinstance(run, Run)
    assert run.mounts == (
        Mount(type="cache", target="/root/.cache", sharing="locked", id="go", readonly=False),
        Mount(type="secret", id="tok", required=True, readonly=True),
    )
    assert (run.network, run.security) == ("none", "insecure")
    assert run.devices == (Device("/dev/fuse", False),)


def test_run_mount_with_variables_is_left_for_later() -> None:
    run = one("RUN --mount=type=cache,target=$DIR make")
    assert isinstance(run, Run)
    assert run.mount_specs == ("type=cache,target=$DIR",)
    assert run.mounts is None
    assert parse_mount(run.mount_specs[0], lambda v: v.replace("$DIR", "/c")).target == "/c"


def test_run_flag_errors_name_the_flag_and_its_position() -> None:
    err = fails("FROM a\nRUN --netwrk=none x", 'unknown flag "--netwrk" for RUN')
    assert 'did you mean "--network"' in err.message
    assert (err.line, err.column) == (2, 5)
    fails("RUN --network=bridge x", 'invalid network mode "bridge"')
    fails("RUN --security=root x", 'security "root" is not valid')
    fails("RUN --network x", "missing a value on flag: --network")
    fails("RUN --network=none --network=host x", "duplicate flag specified: --network")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=volume", 'unsupported mount type "volume"'),
        ("type=cache,sharing=all", 'unsupported sharing value "all"'),
        ("type=bind,mode=0755", 'mode not allowed for "bind" type mounts'),
        ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
        ("type=cache,size=1m", "unexpected key 'size' for mount type 'cache'"),
        ("type=secret", "one of source, target required"),
        ("type=secret,id=a,from=b", "secret mount should not have a from"),
        ("type=cache,uid=abc", "invalid value abc for uid"),
        ("type=cache,ro=maybe", "invalid value for ro: maybe"),
        ("type=cache,targte=/x", "unexpected key 'targte'.*did you mean target"),
        ("type=bind,foo", "invalid field 'foo' must be a key=value pair"),
        ("type=$T,target=/x", 'unsupported mount type "tmp"'),
    ],
)
def test_mount_errors_when_the_stage_is_built(spec: str, message: str) -> None:
    # like BuildKit, a bad mount only fails when its stage is built (values expanded)
    run = one(f"RUN --network=none --mount={spec} x")
    assert isinstance(run, Run) and run.mounts is None
    with pytest.raises(DockerfileError, match=message) as info:
        run.resolve_mounts(lambda v: v.replace("$T", "tmp"))
    assert (info.value.line, info.value.column) == (1, 20)  # the --mount flag


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=bind,from=$X", "doesn't support variable expansion"),
        ('type=bind,\\"target', "failed to parse csv mounts"),
    ],
)
def test_mount_errors_found_when_parsing(spec: str, message: str) -> None:
    err = fails(f"RUN --network=host --mount={spec} x", message)
    assert (err.line, err.column) == (1, 20)


def test_mount_values() -> None:
    assert parse_mount("type=tmpfs,dst=/t,size=64m") == Mount(
        type="tmpfs", target="/t", size_limit=64 << 20, readonly=False
    )
    assert parse_mount("source=/s,target=/t,rw") == Mount(source="/s", target="/t", readonly=False)
    assert parse_mount("type=ssh,mode=0600,uid=1,gid=2") == Mount(
        type="ssh", mode=0o600, uid=1, gid=2, readonly=True
    )
    assert parse_mount('"target=/a,b",readonly=false') == Mount(target="/a,b", readonly=False)
    assert ram_in_bytes("1.5GiB") == 3 << 29
    assert ram_in_bytes("10 kb") == 10240


def test_copy_and_add() -> None:
    c = one("COPY --from=build --chown=1:1 --chmod=644 --link --parents --exclude=*.md "
            "--exclude=x a b /dst/")  # fmt: skip
    assert isinstance(c, Copy)
    assert (c.sources, c.dest, c.from_, c.chown, c.chmod) == (
        ("a", "b"),
        "/dst/",
        "build",
        "1:1",
        "644",
    )
    assert (c.link, c.parents, c.excludes) == (True, True, ("*.md", "x"))
    a = one("ADD --keep-git-dir=false --checksum=sha256:abc --unpack=TRUE https://x/y.tgz /d")
    assert isinstance(a, Add)
    assert (a.keep_git_dir, a.checksum, a.unpack, a.link) == (False, "sha256:abc", True, False)
    assert isinstance(plain := one("ADD x y"), Add) and (plain.keep_git_dir, plain.unpack) == (
        None,
        None,
    )
    fails("COPY --link=yes a b", "expecting boolean value for flag --link, not: yes")
    fails("COPY --link= a b", "missing a value on flag: --link")
    fails("COPY onlyone", "requires at least two arguments")
    fails("COPY --from=x a <<EOF\nEOF\n", "cannot accept a heredoc as a destination")
    fails("ADD --parents a b", 'unknown flag "--parents" for ADD')


def test_copy_heredoc_sources() -> None:
    c = one("COPY <<-A b <<'C' /dst/\n\tone\nA\n$two\nC\n")
    assert isinstance(c, Copy)
    assert c.sources == ("b",)
    assert c.contents == (SourceContent("A", "one\n", True), SourceContent("C", "$two\n", False))


def test_cmd_entrypoint_shell() -> None:
    cmd = one('CMD ["a", "b"]')
    assert isinstance(cmd, Cmd) and cmd.command == ("a", "b") and not cmd.prepend_shell
    ep = one("ENTRYPOINT exec  app")
    assert isinstance(ep, Entrypoint) and ep.command == ("exec  app",) and ep.prepend_shell
    sh = one('SHELL ["pwsh", "-c"]')
    assert isinstance(sh, Shell) and sh.shell == ("pwsh", "-c")
    fails("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form")
    fails("SHELL []", "SHELL requires at least one argument")
    fails("CMD --foo x", 'unknown flag "--foo" for CMD')


def test_env_label_arg() -> None:
    env = one('ENV A=1 B="x y"')
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue("A", "1"), KeyValue("B", '"x y"'))
    legacy = one("ENV PATH /a /b")
    assert isinstance(legacy, Env) and legacy.pairs == (KeyValue("PATH", "/a /b", legacy=True),)
    label = one('LABEL "a.b"=c')
    assert isinstance(label, Label) and label.pairs == (KeyValue('"a.b"', "c"),)
    arg = one("ARG A B=2 C=")
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDef("A", None), ArgDef("B", "2"), ArgDef("C", ""))
    fails("ARG =x", "ARG names can not be blank")
    fails("ENV =x", "ENV names can not be blank")
    fails("ARG", "ARG requires at least one argument")


def test_single_argument_instructions() -> None:
    assert one("USER app:app") == User(parse("USER app:app").instructions[0], "app:app")
    assert isinstance(w := one("WORKDIR /a b"), Workdir) and w.path == "/a b"
    assert isinstance(s := one("STOPSIGNAL SIGKILL"), Stopsignal) and s.signal == "SIGKILL"
    assert isinstance(m := one("MAINTAINER Me <m@x>"), Maintainer) and m.maintainer == "Me <m@x>"
    fails("USER", "USER requires exactly one argument")
    fails("WORKDIR --x=1 /a", 'unknown flag "--x" for WORKDIR')


def test_expose_and_volume() -> None:
    e = one("EXPOSE 8080/tcp 443 53/udp")
    assert isinstance(e, Expose) and e.ports == ("443", "53/udp", "8080/tcp")
    v = one('VOLUME ["/a", "/b"]')
    assert isinstance(v, Volume) and v.volumes == ("/a", "/b")
    fails('VOLUME [" "]', "VOLUME specified can not be an empty string")
    fails("EXPOSE", "EXPOSE requires at least one argument")


def test_onbuild() -> None:
    o = one("ONBUILD COPY <<EOF /x\nhi\nEOF\n")
    assert isinstance(o, Onbuild)
    assert o.expression == "COPY <<EOF /x\nhi\nEOF"
    assert o.trigger.command == "copy"
    fails("ONBUILD ONBUILD RUN x", "Chaining ONBUILD")
    fails("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger")
    fails("ONBUILD", "ONBUILD requires at least one argument")


def test_healthcheck() -> None:
    h = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s "
        "--start-interval=1.5s --retries=4 CMD curl -f localhost"
    )
    assert isinstance(h, Healthcheck)
    assert h.test == ("CMD-SHELL", "curl -f localhost")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        90_000_000_000,
        500_000_000,
        2_000_000_000,
        1_500_000_000,
        4,
    )
    exec_form = one('HEALTHCHECK CMD ["curl", "x"]')
    assert isinstance(exec_form, Healthcheck) and exec_form.test == ("CMD", "curl", "x")
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)
    fails("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments")
    fails("HEALTHCHECK --interval=10us CMD x", 'Interval "interval" cannot be less than 1ms')
    fails("HEALTHCHECK --timeout=5 CMD x", "missing unit")
    fails("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative")
    fails("HEALTHCHECK --retries=x CMD x", "--retries")
    fails("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD")
    fails("HEALTHCHECK CONNECT x", 'Unknown type "CONNECT"')
    fails("HEALTHCHECK --intervl=1s CMD x", 'did you mean "--interval"')


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("1h2m3s", 3_723_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("-2ms", -2_000_000),
        ("+.5s", 500_000_000),
        ("3µs", 3_000),
        ("3us4ns", 3_004),
        ("2562047h47m16.854775807s", (1 << 63) - 1),
    ],
)
def test_parse_duration(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize(
    "text", ["", "s", "1", "1x", ".s", "2562047h47m16.854775808s", "9" * 5000 + "s"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# ---------------------------------------------------------------- unknown instructions


def test_unknown_instruction_suggests() -> None:
    err = fails("FROM a\n\nRUNN make\n", 'unknown instruction "RUNN"')
    assert str(err) == 'Dockerfile:3:1: unknown instruction "RUNN" (did you mean "RUN"?)'
    err = fails("FROM a\nworkdri /x\n", 'did you mean "workdir"')
    fails("FROM a\nBOGUSWORD x\n", 'unknown instruction "BOGUSWORD"$')


def test_empty_continuation_at_end_of_file_is_an_error() -> None:
    err = fails("FROM a\nRUN x\n\\\n", "continues onto nothing")
    assert err.line == 3


# ---------------------------------------------------------------- stages


def test_stages_and_meta_args() -> None:
    df = parse(
        "ARG BASE=alpine\nARG TAG\nFROM ${BASE}:${TAG:-3} AS one\nRUN a\n"
        "FROM one\nARG X\nCOPY --from=one / /\n"
    )
    st = parse_stages(df)
    assert [d.key for a in st.meta_args for d in a.args] == ["BASE", "TAG"]
    assert [(s.index, s.name, s.base) for s in st.stages] == [
        (0, "one", "${BASE}:${TAG:-3}"),
        (1, None, "one"),
    ]
    assert [type(c).__name__ for c in st.stages[1].commands] == ["Arg", "Copy"]


def test_instruction_before_from() -> None:
    fails_stage = parse("RUN x\nFROM a\n")
    with pytest.raises(DockerfileError, match="before the first FROM"):
        parse_stages(fails_stage)


def test_from_using_arg_of_earlier_stage() -> None:
    df = parse("FROM a AS one\nARG IMG=busybox\nFROM ${IMG}\n")
    with pytest.raises(DockerfileError) as info:
        parse_stages(df)
    assert 'FROM uses ARG "IMG", which is only declared inside an earlier stage' in str(info.value)
    assert info.value.line == 3
    with pytest.raises(DockerfileError, match='ARG "TAG"'):
        parse_stages(parse("FROM a AS one\nARG TAG=1\nFROM alpine:$TAG\n"))
    # a default in the reference itself covers it; a meta ARG makes it visible
    parse_stages(parse("FROM a AS one\nARG IMG\nFROM ${IMG:-busybox}\n"))
    parse_stages(parse("ARG IMG=busybox\nFROM a AS one\nARG IMG\nFROM ${IMG}\n"))


def test_from_blank_base_name() -> None:
    with pytest.raises(DockerfileError, match="should not be blank"):
        parse_stages(parse("ARG BASE\nFROM $BASE\n"))
    st = parse_stages(parse("ARG BASE\nFROM $BASE\n"), build_args={"BASE": "alpine"})
    assert st.stages[0].base == "$BASE"  # expansion itself is left to the build


def test_flag_error_carries_file_name() -> None:
    df = parse("FROM a\nCOPY --bogus a b\n", filename="sub/Dockerfile.dev")
    with pytest.raises(DockerfileError) as info:
        parse_stages(df)
    assert str(info.value).startswith("sub/Dockerfile.dev:2:6: unknown flag")
