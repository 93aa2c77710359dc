"""RUN: the command in an OCI runtime over the step's overlay root filesystem.

The container gets mount, pid, ipc and uts namespaces (and a network namespace with
``--network=none``), Docker's default capabilities, masked /proc paths, /dev, /dev/shm,
and the /etc/resolv.conf and /etc/hosts a build sees. Mount points the runtime has to
create in the root filesystem (an /etc/resolv.conf the image lacks, a cache mount's
target) are removed afterwards when they are still empty, as BuildKit does, so they do
not end up in the layer.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pallet.build.fsops import Owner, make_dirs, secure_join
from pallet.build.sources import ContextTree, SourceTree, clean
from pallet.dockerfile.mounts import Mount as RunMount
from pallet.dockerfile.plan import RunStep, Step
from pallet.errors import BuildError, ContainerError
from pallet.runtime.oci_runtime import OCIRuntime
from pallet.runtime.spec import Mount, NetworkMode, SpecOptions, build_spec
from pallet.runtime.users import resolve_user

HOSTS = "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
#: what the runtime mounts by default: its mount points may need stubs in the rootfs
_DEFAULT_TARGETS = ("/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts")
TAIL_LINES = 20


@dataclass(frozen=True)
class RunEnv:
    runtime: OCIRuntime
    scratch: Path  # private, locked temp dir of the build
    cache_root: Path  # persistent RUN --mount=type=cache directories
    secrets: Mapping[str, Path]
    label: str  # "[stage 2/3] RUN ..." for errors
    cancel: threading.Event  # set when another stage failed or the user interrupted
    #: ``--ssh`` agent sockets by id, for ``--mount=type=ssh``
    ssh: Mapping[str, Path] = field(default_factory=dict)


def _resolv_conf(scratch: Path, network: str) -> Path:
    path = scratch / f"resolv-{network}.conf"
    if not path.exists():
        try:
            text = Path("/etc/resolv.conf").read_text()
        except OSError:
            text = ""
        if network == "none":
            text = "".join(
                line + "\n"
                for line in text.splitlines()
                if not (line.startswith("nameserver") and "127." in line)
            )
        path.write_text(text)
    return path


def _hosts(scratch: Path) -> Path:
    path = scratch / "hosts"
    if not path.exists():
        path.write_text(HOSTS)
    return path


def _cache_dir(env: RunEnv, mount: RunMount, seed: SourceTree | None) -> Path:
    """The persistent directory of a cache mount; a new one starts as a copy of
    ``from``'s ``source`` when given (BuildKit's seed), else empty."""
    key = hashlib.sha256((mount.id or mount.target).encode()).hexdigest()[:32]
    path = env.cache_root / key
    if not path.is_dir():
        env.cache_root.mkdir(parents=True, exist_ok=True)
        work = env.cache_root / f".new-{secrets.token_hex(6)}"
        work.mkdir()
        if seed is not None:
            _copy_tree(seed, clean(mount.source), work, env.label)
        os.chmod(work, mount.mode if mount.mode is not None else 0o755)
        os.chown(work, mount.uid or 0, mount.gid or 0)
        try:
            os.rename(work, path)  # whole or not at all; a racing step's copy wins
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
    return path


def _copy_tree(tree: SourceTree, rel: str, dest: Path, label: str) -> None:
    """The contents of ``rel`` in ``tree`` into the existing directory ``dest``."""
    from pallet.build.fsops import CopyOptions, TreeCopier

    real = tree.resolve(rel) if rel else ""
    if tree.stat(real) is None:
        raise BuildError(f"{label}: --mount source {rel or '/'} not found")
    copier = TreeCopier(CopyOptions())
    prefix = len(real) + 1 if real else 0
    for path, entry in tree.walk(real):
        if path != real:
            copier.copy(tree.path(path), entry, dest / path[prefix:])
    copier.finish()


@contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the cache directory's lock for the step; yields False if ``wait`` is off
    and another step holds it."""
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _user_mounts(
    run: RunStep,
    env: RunEnv,
    sources: Mapping[int, SourceTree],
    stack: ExitStack,
    process_env: list[str],
) -> list[Mount]:
    from pallet.build.fsops import CopyOptions, TreeCopier

    out: list[Mount] = []
    ssh_index = 0
    for index, mount in enumerate(run.mounts):
        target = mount.target
        if mount.type == "cache":
            path = _cache_dir(env, mount, sources.get(index))
            if mount.sharing == "locked":
                stack.enter_context(_locked(path))
            elif mount.sharing == "private" and not stack.enter_context(_locked(path, wait=False)):
                # in use by another step: this one gets a fresh, throwaway directory
                path = env.scratch / f"cache-{secrets.token_hex(6)}"
                path.mkdir()
                os.chmod(path, mount.mode if mount.mode is not None else 0o755)
                os.chown(path, mount.uid or 0, mount.gid or 0)
            mode = "ro" if mount.readonly else "rw"
            out.append(Mount(target, str(path), "bind", ("rbind", mode)))
        elif mount.type == "tmpfs":
            size = (f"size={mount.size_limit}",) if mount.size_limit else ()
            out.append(Mount(target, "tmpfs", "tmpfs", ("nosuid", "nodev", *size)))
        elif mount.type == "secret":
            sid = mount.id or posixpath.basename(mount.target)
            src = env.secrets.get(sid)
            if src is None:
                if mount.required:
                    raise BuildError(f"{env.label}: secret {sid!r} is required but not given")
                continue
            if mount.env:
                process_env.append(f"{mount.env}={src.read_text()}")
                if not mount.target:
                    continue
            dest = target or f"/run/secrets/{sid}"
            out.append(Mount(dest, str(src), "bind", ("rbind", "ro")))
        elif mount.type == "bind":
            tree = sources[index]
            rel = clean(mount.source)
            st = tree.stat(tree.resolve(rel)) if rel else tree.stat("")
            if st is None:
                raise BuildError(f"{env.label}: --mount source {mount.source or '/'} not found")
            real = tree.resolve(rel) if rel else ""
            hidden = isinstance(tree, ContextTree) and tree.matcher is not None
            if mount.readonly and not hidden:
                # nothing to hide and nothing to write: the tree itself, read-only
                out.append(Mount(target, str(tree.path(real)), "bind", ("rbind", "ro")))
                continue
            # A private copy: what .dockerignore hides stays hidden, and rw writes vanish.
            copy_root = env.scratch / f"bind-{secrets.token_hex(6)}"
            copier = TreeCopier(CopyOptions())
            prefix = len(real) + 1 if real else 0
            for rel_path, entry in tree.walk(real):
                dst = copy_root / rel_path[prefix:] if rel_path != real else copy_root
                copier.copy(tree.path(rel_path), entry, dst)
            copier.finish()
            mode = "ro" if mount.readonly else "rw"
            out.append(Mount(target, str(copy_root), "bind", ("rbind", mode)))
        elif mount.type == "ssh":
            ssh_index += 1
            sid = mount.id or "default"
            upstream = env.ssh.get(sid)
            if upstream is None:
                if mount.required:
                    raise BuildError(
                        f"{env.label}: ssh agent {sid!r} is required: pass it with --ssh {sid}"
                    )
                continue
            dest = target or f"/run/buildkit/ssh_agent.{ssh_index - 1}"
            from pallet.build.ssh_forward import agent_socket  # only ssh mounts need it

            relay = env.scratch / f"ssh-{secrets.token_hex(6)}.sock"
            perms = mount.mode if mount.mode is not None else 0o600
            stack.enter_context(
                agent_socket(upstream, relay, mount.uid or 0, mount.gid or 0, perms)
            )
            out.append(Mount(dest, str(relay), "bind", ("rbind", "rw")))
            # BuildKit points SSH_AUTH_SOCK at the first agent unless the image sets it
            if not any(e.startswith("SSH_AUTH_SOCK=") for e in process_env):
                process_env.append(f"SSH_AUTH_SOCK={dest}")
        else:
            raise BuildError(f"{env.label}: --mount=type={mount.type} is not supported")
    return out


def _missing_paths(root: Path, targets: list[str]) -> list[str]:
    """Targets (and their parents) that do not exist yet: stubs the runtime will make."""
    missing: set[str] = set()
    for target in targets:
        path = "/" + clean(target)
        while path != "/":
            if not os.path.lexists(secure_join(root, path, follow_last=False)):
                missing.add(path)
            path = posixpath.dirname(path)
    return sorted(missing, key=lambda p: p.count("/"), reverse=True)


def _remove_stubs(root: Path, stubs: list[str]) -> None:
    for path in stubs:  # deepest first
        real = secure_join(root, path, follow_last=False)
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(real)  # only if empty
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(real)


def parent_metadata(root: Path, stubs: list[str]) -> dict[str, tuple[int, int, int]]:
    """Mode and owner of the existing parents of stubs, to undo their mere copy-up."""
    out: dict[str, tuple[int, int, int]] = {}
    for stub in stubs:
        parent = posixpath.dirname(stub)
        if parent != "/" and parent not in stubs and parent not in out:
            st = os.lstat(secure_join(root, parent, follow_last=False))
            out[parent] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def drop_untouched_copy_ups(upper: Path, parents: Mapping[str, tuple[int, int, int]]) -> None:
    """After unmounting: a directory the runtime's stubs alone copied up (now empty in
    the upper dir, unchanged metadata) is not part of the step's diff."""
    for path in sorted(parents, key=lambda p: p.count("/"), reverse=True):
        real = upper / path.lstrip("/")
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode) or (st.st_mode, st.st_uid, st.st_gid) != parents[path]:
            continue
        try:
            if os.getxattr(real, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                continue
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.rmdir(real)


def run_command(
    step: Step,
    root: Path,
    env: RunEnv,
    sources: Mapping[int, SourceTree],
    on_line: Callable[[str], None],
) -> dict[str, tuple[int, int, int]]:
    """Run the step's command in ``root`` (mounted); raises BuildError on failure.
    Returns the parents whose copy-up :func:`drop_untouched_copy_ups` may undo."""
    run = step.run
    assert run is not None
    cfg = step.config
    try:
        user = resolve_user(root, cfg.user or "root")
    except ContainerError as exc:
        raise BuildError(f"{env.label}: {exc}") from None
    cwd = cfg.working_dir or "/"
    process_env = list(run.env)
    argv = list(run.argv)
    with ExitStack() as stack:
        mounts = [
            Mount("/etc/resolv.conf", str(_resolv_conf(env.scratch, run.network)), "bind",
                  ("rbind", "ro")),
            Mount("/etc/hosts", str(_hosts(env.scratch)), "bind", ("rbind", "ro")),
        ]  # fmt: skip
        if run.files:
            pipes = env.scratch / f"pipes-{secrets.token_hex(6)}"
            pipes.mkdir()
            for f in run.files:
                (pipes / f.name).write_text(f.data)
                os.chmod(pipes / f.name, 0o755)
            mounts.append(Mount("/dev/pipes", str(pipes), "bind", ("rbind", "ro")))
        mounts += _user_mounts(run, env, sources, stack, process_env)
        targets = [*_DEFAULT_TARGETS, *(m.destination for m in mounts), cwd]
        stubs = _missing_paths(root, targets)
        parents = parent_metadata(root, stubs)
        if not os.path.isdir(secure_join(root, cwd)):
            make_dirs(root, cwd, Owner(0, 0))
            stubs = [s for s in stubs if not (cwd + "/").startswith(s + "/")]
        network: NetworkMode = "none" if run.network == "none" else "host"
        spec = build_spec(
            SpecOptions(
                rootfs=str(root),
                args=argv,
                env=process_env,
                cwd=cwd,
                uid=user.uid,
                gid=user.gid,
                additional_gids=user.additional_gids,
                network=network,
                mounts=mounts,
                # --security=insecure (the build was granted security.insecure): every
                # capability, no seccomp filter, /proc and /sys unmasked, as BuildKit
                privileged=run.security == "insecure",
            )
        )
        spec["hostname"] = "buildkitsandbox"  # what RUN sees under BuildKit (own uts ns)
        bundle = env.scratch / f"bundle-{secrets.token_hex(6)}"
        env.runtime.write_bundle(bundle, spec)
        container_id = f"pallet-build-{os.getpid()}-{secrets.token_hex(6)}"
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            proc = env.runtime.popen_run(
                container_id,
                bundle,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise BuildError(f"{env.label}: cannot start the OCI runtime: {exc}") from None
        reader = threading.Thread(target=_pump, args=(proc, tail, on_line), daemon=True)
        reader.start()
        try:
            rc = _wait(proc, env)
        except BaseException:
            env.runtime.kill(container_id, all_processes=True)
            proc.kill()
            proc.wait()
            raise
        finally:
            reader.join()
            env.runtime.delete(container_id)
        rc = rc if rc >= 0 else 128 - rc
        _remove_stubs(root, stubs)
    if rc != 0:
        shown = " ".join(argv)
        text = "\n".join(tail)
        raise BuildError(
            f"{env.label}: process {shown!r} did not complete successfully: exit code: {rc}"
            + (f"\n--- last lines of its output ---\n{text}" if text else "")
        )
    return parents


def clean_stale_containers(runtime: OCIRuntime) -> int:
    """Kill and delete RUN containers whose builder process died (SIGKILL)."""
    cmd = [runtime.binary.path, "--root", str(runtime.state_root), "list", "--format", "json"]
    if not runtime.state_root.is_dir():
        return 0
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        entries = json.loads(proc.stdout or "null") or []
    except ValueError:
        return 0
    count = 0
    for entry in entries:
        cid = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        parts = cid.split("-")
        if len(parts) != 4 or parts[:2] != ["pallet", "build"] or not parts[2].isdigit():
            continue
        if _alive(int(parts[2])):
            continue
        runtime.kill(cid, all_processes=True)
        runtime.delete(cid)
        count += 1
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Cancelled(BuildError):
    """A RUN stopped because another stage failed: that stage's error is the build's."""


def _wait(proc: subprocess.Popen[bytes], env: RunEnv) -> int:
    """The exit status, checking every 0.2 s whether the build was cancelled. A pidfd
    wakes us the moment the process exits: ``Popen.wait`` with a timeout polls, with
    sleeps growing to 50 ms, which a short RUN would wait out."""
    import select

    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel before 5.3
        pidfd = -1
    try:
        while True:
            if pidfd >= 0:
                if select.select([pidfd], [], [], 0.2)[0]:
                    return proc.wait()
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(timeout=0.2)
            if env.cancel.is_set():
                raise Cancelled(f"{env.label}: cancelled")
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _pump(
    proc: subprocess.Popen[bytes], tail: collections.deque[str], on_line: Callable[[str], None]
) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        on_line(line)
