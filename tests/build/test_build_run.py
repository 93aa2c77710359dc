"""RUN: isolation, user/env/workdir, network modes, and --mount types."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import describe, do_build, rootfs_of

from pallet.build import Secret
from pallet.errors import BuildError
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]


def test_isolation_user_env_workdir(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    marker = Path("/root") / f".pallet-build-test-{os.getpid()}"
    marker.write_text("host secret")
    try:
        dockerfile = """\
FROM busybox
ENV LEVEL=top
WORKDIR /w
RUN echo "pid=$$" > /facts && ls -A /root | wc -l >> /facts && pwd >> /facts \
 && echo "$LEVEL" >> /facts && hostname >> /facts && cat /etc/hosts > /hosts.seen \
 && ls /sys/class/net > /net.default
RUN --network=none ls /sys/class/net > /net.none
USER www-data
RUN id -u > /tmp/uid && id -g >> /tmp/uid
"""
        result = do_build(store, make_context({}, dockerfile))
    finally:
        marker.unlink()
    fs = rootfs_of(store, result, tmp_path / "fs")
    facts = (fs / "facts").read_text().split()
    # its own pid namespace; the host's /root is not visible; env and cwd as the stage says
    assert facts == ["pid=1", "0", "/w", "top", "buildkitsandbox"]
    assert "localhost" in (fs / "hosts.seen").read_text()
    assert (fs / "net.none").read_text().split() == ["lo"]
    # the host's network by default (BuildKit's default for RUN)
    assert (fs / "net.default").read_text().split() == sorted(os.listdir("/sys/class/net"))
    assert (fs / "tmp/uid").read_text().split() == ["33", "33"]
    assert describe(fs / "tmp/uid")[2:] == (33, 33)


def test_cache_tmpfs_bind_and_secret_mounts(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    secret = tmp_path / "token.txt"
    secret.write_text("s3cr3t-value")
    ctx = make_context(
        {"src/data.txt": "from context\n", "src/hidden.tmp": "x", ".dockerignore": "**/*.tmp\n"},
        """\
FROM busybox AS tool
RUN echo tool-output > /tool.txt
FROM busybox
RUN --mount=type=cache,target=/var/cache/app,id=appcache \
    date +%s%N >> /var/cache/app/runs && wc -l < /var/cache/app/runs > /runs-seen
RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/t && ls /scratch > /tmpfs-seen
RUN --mount=type=bind,source=src,target=/in ls -A /in > /bind-seen && cat /in/data.txt >> /bind-seen
RUN --mount=type=bind,from=tool,source=/tool.txt,target=/t.txt cat /t.txt > /from-stage
RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /secret-len
RUN --mount=type=secret,id=token,env=TOKEN test "$TOKEN" = s3cr3t-value && echo ok > /env-ok
RUN --mount=type=cache,target=/seeded,id=seeded,from=tool,source=/etc \
    ls /seeded/passwd > /seed-seen && touch /seeded/added
""",
    )
    first = do_build(store, ctx, secrets=(Secret("token", secret),))
    fs = rootfs_of(store, first, tmp_path / "fs1")
    assert (fs / "runs-seen").read_text().strip() == "1"
    assert not (fs / "scratch").exists() and (fs / "tmpfs-seen").read_text() == "t\n"
    # a bind from the context sees what .dockerignore leaves, nothing else
    assert (fs / "bind-seen").read_text() == "data.txt\nfrom context\n"
    assert not (fs / "in").exists() and not (fs / "var/cache/app").exists()
    assert (fs / "from-stage").read_text() == "tool-output\n"
    assert (fs / "secret-len").read_text().strip() == "12"
    assert (fs / "env-ok").read_text() == "ok\n"
    assert not (fs / "run/secrets").exists()
    # a new cache mount starts from its from=/source= seed
    assert (fs / "seed-seen").read_text() == "/seeded/passwd\n"
    # the secret is nowhere in the image's blobs
    manifest = store.load_manifest(first.manifest)
    for layer in manifest.layers:
        import gzip

        assert b"s3cr3t-value" not in gzip.decompress(store.read_blob(layer.digest, 1 << 30))
    assert b"s3cr3t-value" not in store.read_blob(first.manifest.digest)

    # the cache mount persists across builds (the step reruns with --no-cache)
    again = do_build(store, ctx, secrets=(Secret("token", secret),), no_cache=True)
    fs2 = rootfs_of(store, again, tmp_path / "fs2")
    assert (fs2 / "runs-seen").read_text().strip() == "2"


def test_required_secret_missing_fails_before_running(
    store: Store, make_context: MakeContext
) -> None:
    ctx = make_context(
        {}, "FROM busybox\nRUN --mount=type=secret,id=key,required cat /run/secrets/key\n"
    )
    with pytest.raises(BuildError, match="needs secret 'key'"):
        do_build(store, ctx)


def test_bind_mounts_are_read_only_unless_rw(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context(
        {"data/f.txt": "original\n"},
        "FROM busybox\n"
        "RUN --mount=type=bind,source=data,target=/in "
        "(echo x > /in/f.txt 2>/dev/null && echo wrote || echo refused) > /ro-result\n"
        "RUN --mount=type=bind,source=data,target=/in,rw "
        "echo changed > /in/f.txt && cat /in/f.txt > /rw-result\n",
    )
    result = do_build(store, ctx)
    fs = rootfs_of(store, result, tmp_path / "fs")
    assert (fs / "ro-result").read_text() == "refused\n"
    assert (fs / "rw-result").read_text() == "changed\n"
    assert (ctx / "data/f.txt").read_text() == "original\n"  # the context is never written


def test_run_security_insecure_needs_the_entitlement(
    store: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    """A RUN is sandboxed (docker's seccomp filter); --security=insecure runs privileged,
    and only when the build was given --allow security.insecure, as BuildKit."""
    dockerfile = """\
FROM busybox
RUN grep -E '^(Seccomp|CapEff):' /proc/self/status > /sandboxed
RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /insecure
"""
    ctx = make_context({}, dockerfile)
    with pytest.raises(BuildError, match=r"line 3: .*--allow security.insecure"):
        do_build(store, ctx)
    result = do_build(store, ctx, allow=frozenset({"security.insecure"}))
    fs = rootfs_of(store, result, tmp_path / "fs")
    sandboxed = dict(line.split(":\t") for line in (fs / "sandboxed").read_text().splitlines())
    insecure = dict(line.split(":\t") for line in (fs / "insecure").read_text().splitlines())
    assert sandboxed["Seccomp"] == "2" and insecure["Seccomp"] == "0"
    assert int(insecure["CapEff"], 16) > int(sandboxed["CapEff"], 16)


def test_allow_refuses_unknown_entitlements(tmp_path: Path) -> None:
    from pallet_cli import Pallet

    result = Pallet(tmp_path / "root")("build", "--allow", "device", str(tmp_path), check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: invalid entitlement 'device' for --allow: expected one of network.host, "
        "security.insecure"
    )


def test_a_failing_stage_stops_a_long_run_in_another(
    store: Store, make_context: MakeContext
) -> None:
    import subprocess
    import sys

    dockerfile = """\
FROM busybox AS slow
RUN sleep 600
FROM busybox AS broken
RUN exit 3
FROM busybox
COPY --from=slow /etc/hostname /a
COPY --from=broken /etc/hostname /b
"""
    ctx = make_context({}, dockerfile)
    # were the sleeping step not stopped, the build would outlast the timeout
    done = subprocess.run(
        [sys.executable, "-m", "pallet", "--root", str(store.root), "build", str(ctx)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]  # the step that failed, not the one stopped
    assert last.startswith("error: [broken 2/2] RUN") and last.endswith("exit code: 3")
