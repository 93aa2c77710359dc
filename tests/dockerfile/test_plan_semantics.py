"""The resolved build plan: stage graph, ARG scoping, expansion, configs, history text."""

from __future__ import annotations

import pytest

from pallet.dockerfile import DockerfileError, parse
from pallet.dockerfile.plan import BuildPlan, StagePlan, resolve, scratch_config
from pallet.oci.config import ImageConfig
from pallet.oci.platform import Platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


def _base(ref: str, platform: Platform) -> ImageConfig:
    cfg = scratch_config(platform).with_config(
        env=("PATH=/bin:/usr/bin", "HOME=/root"), cmd=("sh",)
    )
    if ref == "withonbuild":
        cfg = cfg.with_config(on_build=("ENV FROM_TRIGGER=yes", "RUN echo triggered"))
    return cfg


def plan(text: str, **kw: object) -> BuildPlan:
    kw.setdefault("target_platform", AMD64)
    return resolve(parse(text), base_config=_base, **kw)  # type: ignore[arg-type]


def last(p: BuildPlan) -> StagePlan:
    return p.stage(p.target)


def test_only_stages_reachable_from_the_target_in_dependency_order() -> None:
    p = plan(
        "FROM busybox AS a\nRUN a\nFROM busybox AS unused\nRUN u\n"
        "FROM a AS b\nRUN b\nFROM busybox\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n"
    )
    assert [s.index for s in p.stages] == [0, 2, 3]
    assert p.stage(2).base.kind == "stage" and p.stage(2).base.stage == 0
    assert p.stage(3).deps == frozenset({0, 2})
    assert [s.index for s in plan("FROM busybox AS a\nFROM busybox AS b\n", target="a").stages] == [
        0
    ]


def test_meta_args_in_from_and_build_arg_override() -> None:
    text = "ARG IMG=busybox\nARG TAG=1\nFROM $IMG:$TAG\nRUN x\n"
    assert last(plan(text)).base.image == "busybox:1"
    assert last(plan(text, build_args={"TAG": "2"})).base.image == "busybox:2"


def test_stage_args_scope_env_wins_and_global_default_inherited() -> None:
    p = plan(
        "ARG V=global\nFROM busybox\nARG V\nARG W=w1\nENV W=fromenv\n"
        "RUN echo $V $W\nENV OUT=$V-$W\n"
    )
    steps = last(p).steps
    assert last(p).config.env_dict()["OUT"] == "global-fromenv"  # ENV wins over ARG
    run = steps[3].run
    assert run is not None
    # ARGs are in RUN's environment, but not in the image config
    assert "V=global" in run.env and "W=fromenv" in run.env
    assert "V" not in last(p).config.env_dict()
    # a stage ARG does not leak into the next stage
    p2 = plan("FROM busybox\nARG X=1\nFROM busybox\nENV Y=${X:-unset}\n")
    assert last(p2).config.env_dict()["Y"] == "unset"


def test_unused_build_args_reported_proxy_args_exempt() -> None:
    p = plan("FROM busybox\nARG USED\n", build_args={"USED": "1", "EXTRA": "2", "HTTP_PROXY": "p"})
    assert p.unused_build_args == ("EXTRA",)


def test_platform_args_need_declaring_in_a_stage() -> None:
    p = plan(
        "FROM busybox\nENV A=${TARGETARCH:-none}\nARG TARGETARCH\nENV B=$TARGETARCH\n",
        target_platform=ARM64,
    )
    env = last(p).config.env_dict()
    assert (env["A"], env["B"]) == ("none", "arm64")
    p2 = plan("FROM busybox AS mystage\nARG TARGETSTAGE\nENV S=$TARGETSTAGE\n", target="mystage")
    assert last(p2).config.env_dict()["S"] == "mystage"


def test_copy_from_later_or_unknown_stage_is_an_error_with_line() -> None:
    with pytest.raises(DockerfileError) as err:
        plan("FROM busybox\nCOPY --from=later /a /a\nFROM busybox AS later\n")
    assert err.value.line == 2 and "later" in str(err.value)
    with pytest.raises(DockerfileError) as err:
        plan("FROM busybox\nCOPY --from=1 /a /a\nFROM busybox\n", target=None)
    assert err.value.line == 2
    with pytest.raises(DockerfileError):
        plan("FROM busybox\nCOPY --from=Bad_Name! /a /a\n")
    # a name that is no stage is an image
    copy = last(plan("FROM busybox\nCOPY --from=alpine:3 /a /a\n")).steps[0].copy
    assert copy is not None and copy.source.kind == "image" and copy.source.image == "alpine:3"


def test_from_with_undefined_arg_is_an_error() -> None:
    with pytest.raises(DockerfileError) as err:
        plan("FROM $NOPE\n")
    assert err.value.line == 1


def test_history_text_and_configs_like_buildkit() -> None:
    p = plan(
        "FROM busybox\nARG V=1\nENV A=x\nWORKDIR app\nWORKDIR sub\nUSER nobody\n"
        "EXPOSE 80 53/udp\nLABEL k=v\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
        'RUN echo $V\nCOPY a b /dst/\nCMD ["run", "it"]\n'
    )
    stage = last(p)
    texts = [s.created_by for s in stage.steps]
    assert texts == [
        "ARG V=1",
        "ENV A=x",
        "WORKDIR /app",
        "WORKDIR /app/sub",
        "USER nobody",
        "EXPOSE map[53/udp:{} 80/tcp:{}]",
        "LABEL k=v",
        "VOLUME [/data]",
        "STOPSIGNAL SIGINT",
        "RUN |1 V=1 /bin/sh -c echo $V # buildkit",
        "COPY a b /dst/ # buildkit",
        'CMD ["run" "it"]',
    ]
    cfg = stage.config
    assert cfg.working_dir == "/app/sub" and cfg.user == "nobody"
    assert set(cfg.exposed_ports or ()) == {"80/tcp", "53/udp"}
    assert cfg.labels == {"k": "v"} and cfg.volumes == ("/data",) and cfg.stop_signal == "SIGINT"
    assert cfg.cmd == ("run", "it")
    assert [s.changes_filesystem for s in stage.steps].count(True) == 4


def test_entrypoint_resets_inherited_cmd_but_not_one_set_in_the_stage() -> None:
    assert last(plan('FROM busybox\nENTRYPOINT ["/e"]\n')).config.cmd is None
    cfg = last(plan('FROM busybox\nCMD ["c"]\nENTRYPOINT ["/e"]\n')).config
    assert (cfg.entrypoint, cfg.cmd) == (("/e",), ("c",))
    shell_form = last(plan('FROM busybox\nSHELL ["/bin/bash", "-c"]\nCMD echo hi\n')).config
    assert shell_form.cmd == ("/bin/bash", "-c", "echo hi")


def test_onbuild_triggers_of_the_base_run_first_and_are_cleared() -> None:
    stage = last(plan("FROM withonbuild\nENV AFTER=1\n"))
    assert [s.keyword for s in stage.steps] == ["ENV", "RUN", "ENV"]
    assert stage.steps[0].onbuild and stage.steps[1].onbuild and not stage.steps[2].onbuild
    assert stage.config.on_build is None
    assert stage.config.env_dict()["FROM_TRIGGER"] == "yes"
    own = last(plan("FROM busybox\nONBUILD RUN echo later\n"))
    assert own.config.on_build == ("RUN echo later",)


def test_scratch_starts_with_default_path() -> None:
    env = last(plan("FROM scratch\nCOPY a /a\n")).config.env_dict()
    assert env == {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def test_run_mounts_expand_and_point_at_stages() -> None:
    p = plan(
        "FROM busybox AS deps\nFROM busybox\nARG CACHE=/root/.cache\n"
        "RUN --mount=type=cache,target=$CACHE --mount=type=bind,from=deps,target=/d true\n"
    )
    run = last(p).steps[1].run
    assert run is not None
    assert [m.target for m in run.mounts] == ["/root/.cache", "/d"]
    assert run.mount_sources[1].kind == "stage" and run.mount_sources[1].stage == 0
    assert last(p).deps == frozenset({0})


def test_heredoc_run_script_and_copy_inline_file() -> None:
    p = plan(
        "FROM busybox\nARG WHO=me\nRUN <<EOF\necho $WHO\nEOF\nCOPY <<OUT /greeting\nhi $WHO\nOUT\n"
    )
    run = last(p).steps[1].run
    copy = last(p).steps[2].copy
    assert run is not None and copy is not None
    # BuildKit hands the body to the shell unexpanded; the shell sees WHO in its env
    assert run.argv[-1] == "echo $WHO\n" and "WHO=me" in run.env
    assert copy.inline[0].data == "hi me\n" and copy.dest == "/greeting"


def test_other_platform_refused_clearly() -> None:
    with pytest.raises(DockerfileError) as err:
        plan("FROM --platform=linux/s390x busybox\n")
    assert "s390x" in str(err.value)
