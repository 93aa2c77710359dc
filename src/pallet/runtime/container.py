"""Containers: create one from an image, run it under the OCI runtime, watch it, remove it.

Each container has a directory under ``<root>/containers/<id>/`` with its overlay upper
and work dirs, merged root filesystem, bundle and log. A *monitor* (the foreground
``pallet run`` process, or a detached one for ``-d``) makes itself a child subreaper,
runs ``runc create`` + ``start``, waits for the container's init and records its exit
code, so the state in state.db stays true whichever pallet process asks.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pallet.errors import Conflict, ContainerError, InvalidArgument, PalletError
from pallet.images.lookup import find_image
from pallet.oci.digest import sha256_hex
from pallet.paths import which
from pallet.runtime import spawn
from pallet.runtime.oci_runtime import OCIRuntime, find_runtime
from pallet.runtime.records import ContainerRecord, ContainerRecords, new_id, now
from pallet.runtime.spec import Mount, NetworkMode, Resources, SpecOptions, build_spec
from pallet.runtime.users import container_gids, resolve_user
from pallet.store import Store
from pallet.store.fsutil import remove_tree
from pallet.store.overlay import unmount

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)
if TYPE_CHECKING:
    from typing import IO, Any, NoReturn

if TYPE_CHECKING:
    from pallet.runtime.mounts import MountRequest
    from pallet.runtime.network import Slirp
    from pallet.runtime.userns import UserNamespace

INIT_PATH = "/sbin/pallet-init"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True, eq=False)  # never compared: no __eq__/__hash__ compiled at import
class RunOptions:
    """``pallet run``/``create`` as their flags ask."""

    image: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    hostname: str | None = None
    name: str | None = None
    auto_remove: bool = False
    network: NetworkMode = "private"
    read_only: bool = False
    binds: tuple[str, ...] = ()  # -v HOST:CTR[:ro], -v NAME:CTR, -v CTR
    mounts: tuple[str, ...] = ()  # --mount type=...
    tmpfs: tuple[str, ...] = ()
    tty: bool = False
    interactive: bool = False
    restart: str = "no"
    init: bool = False
    publish: tuple[str, ...] = ()  # -p [IP:]HOST:CTR[/proto]
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: bool = True
    resources: Resources = field(default_factory=Resources)
    add_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    userns: str | None = None  # host (default), auto[:size=N]
    uidmaps: tuple[str, ...] = ()  # --uidmap CONTAINER:HOST:SIZE
    gidmaps: tuple[str, ...] = ()


def _state_dir(store: Store) -> Path:
    tag = sha256_hex(str(store.root.resolve()).encode())[:16]
    return Path("/run/pallet") / tag


def merge_command(
    image_entrypoint: tuple[str, ...] | None,
    image_cmd: tuple[str, ...] | None,
    entrypoint: str | None,
    command: tuple[str, ...],
) -> tuple[str, ...]:
    """Docker's rule: --entrypoint replaces the image's and drops its CMD; arguments replace CMD."""
    if entrypoint is not None:
        ep: tuple[str, ...] = (entrypoint,) if entrypoint else ()
        return ep + command
    return tuple(image_entrypoint or ()) + (command or tuple(image_cmd or ()))


def merge_env(image_env: tuple[str, ...] | None, given: tuple[str, ...]) -> list[str]:
    env: dict[str, str] = {}
    for entry in [*(image_env or ()), *given]:
        key, sep, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if not sep:
            if key not in os.environ:
                env.pop(key, None)
                continue
            value = os.environ[key]
        env[key] = value
    if "PATH" not in env:
        env = {"PATH": DEFAULT_PATH.split("=", 1)[1], **env}
    return [f"{k}={v}" for k, v in env.items()]


class Containers:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = ContainerRecords(store)
        self.runtime = OCIRuntime(find_runtime(), _state_dir(store))
        #: the runtime's deletes of exited --rm containers, awaited once they are removed
        self._deleting: dict[str, spawn.Process] = {}

    def dir(self, container_id: str) -> Path:
        return self.store.root / "containers" / container_id

    def runtime_for(self, record: ContainerRecord) -> OCIRuntime:
        """The runtime that runs ``record``'s container: a container made by runc (before
        crun ran on this host, or with $PALLET_RUNTIME) is stopped and removed by runc."""
        name = record.runtime
        if not name:  # a record older than the field: runc's state file tells
            runc_state = self.runtime.state_root / record.id / "state.json"
            name = "runc" if runc_state.exists() else self.runtime.binary.name
        if name == self.runtime.binary.name:
            return self.runtime
        try:
            return OCIRuntime(find_runtime(name), self.runtime.state_root)
        except ContainerError:
            return self.runtime

    # -- create --------------------------------------------------------------------

    def create(self, opts: RunOptions) -> ContainerRecord:
        """Check everything that can be wrong first (image, name, mount specs), then make
        the record, the overlay rootfs, volumes and bundle; a failure leaves nothing."""
        requests = _mount_requests(opts)
        policy = parse_restart(opts.restart)
        if opts.auto_remove and policy.name != "no":
            raise InvalidArgument("Conflicting options: --restart and --rm")
        if opts.name is not None and not _valid_name(opts.name):
            raise InvalidArgument(
                f"Invalid container name ({opts.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        wanted_userns = None
        if opts.userns or opts.uidmaps or opts.gidmaps:
            from pallet.runtime.userns import parse_userns

            wanted_userns = parse_userns(opts.userns, opts.uidmaps, opts.gidmaps)
        image = find_image(self.store, opts.image)
        cfg = image.config.config
        argv = merge_command(cfg.entrypoint, cfg.cmd, opts.entrypoint, opts.command)
        if not argv:
            raise ContainerError("no command specified")
        ports = []
        if opts.publish and opts.network == "private":
            from pallet.runtime.network import parse_publish, reserve

            ports = [reserve(parse_publish(p)) for p in opts.publish]
        if cfg.volumes:
            from pallet.runtime.mounts import MountRequest

            taken = {r.target for r in requests}
            requests += [MountRequest("volume", os.path.normpath(v)) for v in cfg.volumes
                         if os.path.normpath(v) not in taken]  # fmt: skip
        created_sources = []
        for req in requests:
            if req.kind == "bind" and not os.path.exists(req.source):
                os.makedirs(req.source, exist_ok=True)  # docker creates a missing -v source
                created_sources.append(req.source)
        container_id = new_id()
        userns = wanted_userns
        if isinstance(userns, tuple):  # --userns=auto: a free block of host IDs
            from pallet.runtime.userns import allocate

            userns = allocate(self.store.root, container_id, userns[1])
        if userns is not None:
            for source in created_sources:  # a source docker created is the container root's
                os.chown(source, userns.host_uid(0), userns.host_gid(0))
        chain_ids = [str(c) for c in image.config.chain_ids]
        lease = self.store.leases.create(
            [image.descriptor.digest, image.manifest.digest, image.manifest.config.digest,
             *(layer.digest for layer in image.manifest.layers), *image.config.chain_ids],
            ttl=None,
        )  # fmt: skip
        record = ContainerRecord(
            id=container_id,
            name=opts.name or "",
            image=opts.image,
            image_id=str(image.id),
            created=now(),
            argv=argv,
            auto_remove=opts.auto_remove,
            lease_id=lease.id,
            chain_ids=tuple(chain_ids),
            labels=dict(opts.labels),
            config=cfg.to_json(),
            restart_policy=opts.restart,
            runtime=self.runtime.binary.name,
            tty=opts.tty,
            interactive=opts.interactive,
            network=opts.network,
            ports=tuple(str(p) for p in ports),
            host_config={
                "Binds": list(opts.binds) or None,
                "PortBindings": {
                    f"{p.container_port}/{p.proto}": [
                        {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
                    ]
                    for p in ports
                },
                "NetworkMode": "default" if opts.network == "private" else opts.network,
                "RestartPolicy": {"Name": policy.name, "MaximumRetryCount": policy.limit},
                "AutoRemove": opts.auto_remove,
                "Privileged": opts.privileged,
                "ReadonlyRootfs": opts.read_only,
                "CapAdd": list(opts.cap_add) or None,
                "CapDrop": list(opts.cap_drop) or None,
                "Memory": opts.resources.memory or 0,
                "NanoCpus": int((opts.resources.cpus or 0) * 1e9),
                "PidsLimit": opts.resources.pids,
                "Dns": list(opts.dns),
                "ExtraHosts": list(opts.add_hosts) or None,
                "Init": opts.init,
                "Tmpfs": {t.partition(":")[0]: t.partition(":")[2] for t in opts.tmpfs} or None,
                "UsernsMode": userns.mode if userns is not None else "",
                **({"IDMappings": userns.to_json()} if userns is not None else {}),
            },
        )
        try:
            record = self.records.add(record, generate_name=opts.name is None)
        except Conflict:
            lease.release()
            raise
        try:
            record = self._prepare(record, image, opts, requests, userns)
        except BaseException:
            self._cleanup(record)
            raise
        return record

    def _prepare(
        self,
        record: ContainerRecord,
        image: Any,
        opts: RunOptions,
        requests: list[MountRequest],
        userns: UserNamespace | None = None,
    ) -> ContainerRecord:
        cdir = self.dir(record.id)
        for sub in ("upper", "work", "rootfs"):
            (cdir / sub).mkdir(parents=True, exist_ok=True)
        self.store.snapshots.ensure(image.manifest.layers, image.config.diff_ids)
        spec_root = cdir / "rootfs"
        if userns is not None:  # idmapped layers: the image's root files are the container root's
            from pallet.runtime.idmap import mount_rootfs, runtime_root

            lowers = self.store.snapshots.mount_lowerdirs(image.config.chain_ids)
            spec_root = runtime_root(self.runtime.state_root, record.id)
            mount_rootfs(lowers, cdir, cdir / "rootfs", userns, spec_root)
        elif opts.auto_remove:
            # its writable layer goes with it: never synced, so the unmount does not wait
            # for a sync of the whole filesystem under it (podman's --rm does the same)
            from pallet.store.overlay import mount_overlay

            lowers = self.store.snapshots.mount_lowerdirs(image.config.chain_ids)
            mount_overlay(
                lowers, cdir / "rootfs", upperdir=cdir / "upper", workdir=cdir / "work",
                volatile=True,
            )  # fmt: skip
        else:
            self.store.snapshots.mount(
                image.config.chain_ids, cdir / "rootfs", upperdir=cdir / "upper",
                workdir=cdir / "work",
            )  # fmt: skip
        cfg = image.config.config
        rootfs = cdir / "rootfs"
        mounts, named, anonymous = self._volume_mounts(rootfs, requests, userns)
        if named or anonymous:
            record = self.records.set_state(
                record, volumes=tuple(named + anonymous), anonymous_volumes=tuple(anonymous)
            )
        user = resolve_user(rootfs, opts.user if opts.user is not None else (cfg.user or "root"))
        if userns is not None:
            userns.check_user(opts.user or cfg.user or "root", user.uid, user.gid)
        hostname = opts.hostname or (
            os.uname().nodename if opts.network == "host" else record.id[:12]
        )
        env = merge_env(cfg.env, opts.env)
        keys = {e.split("=", 1)[0] for e in env}
        if "HOSTNAME" not in keys:
            env.insert(1, f"HOSTNAME={hostname}")
        if opts.tty and "TERM" not in keys:
            env.append("TERM=xterm")
        if "HOME" not in keys:
            env.append(f"HOME={user.home or '/'}")
        cwd = opts.workdir or cfg.working_dir or "/"
        if not cwd.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{cwd}' is invalid, it needs to be an absolute path"
            )
        root_ids = (userns.host_uid(0), userns.host_gid(0)) if userns is not None else None
        _mkdir_in_rootfs(rootfs, cwd, root_ids)
        path_env = next((e[5:] for e in env if e.startswith("PATH=")), "")
        check_executable(rootfs, record.argv[0], path_env, cwd)
        args = record.argv
        if opts.init:
            args = (INIT_PATH, "--", *args)
            mounts.append(Mount(INIT_PATH, find_init(), "bind", ("rbind", "ro")))
        etc_mounts = self._etc_files(cdir, hostname, opts)
        if root_ids is not None:  # the container's root may edit them, as docker's
            for etc in etc_mounts:
                os.chown(etc.source, *root_ids)
        # the container's own cgroups, read-only, as docker shows them (limits visible inside)
        cgroup_opts = ("nosuid", "noexec", "nodev", "relatime", "rw" if opts.privileged else "ro")
        etc_mounts.append(Mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts))
        spec = build_spec(
            SpecOptions(
                rootfs=str(spec_root),
                args=args,
                env=env,
                cwd=cwd,
                uid=user.uid,
                gid=user.gid,
                additional_gids=container_gids(user),
                hostname=hostname,
                terminal=opts.tty,
                readonly_rootfs=opts.read_only,
                network=opts.network,
                mounts=[*etc_mounts, *mounts],
                cap_add=opts.cap_add,
                cap_drop=opts.cap_drop,
                privileged=opts.privileged,
                no_new_privileges=opts.no_new_privileges,
                seccomp=opts.seccomp,
                resources=opts.resources,
                cgroups_path=cgroups_path(record.id),
                annotations={"io.pallet.container.name": record.name},
                uid_mappings=userns.uids if userns is not None else (),
                gid_mappings=userns.gids if userns is not None else (),
            )
        )
        self.runtime.write_bundle(cdir / "bundle", spec)
        return record

    def _volume_mounts(
        self, rootfs: Path, requests: list[MountRequest], userns: UserNamespace | None = None
    ) -> tuple[list[Mount], list[str], list[str]]:
        """OCI mounts for the requests; volumes are created (and seeded) as needed."""
        mounts: list[Mount] = []
        named: list[str] = []
        anonymous: list[str] = []
        if not requests:
            return mounts, named, anonymous
        from pallet.runtime.volumes import Volumes, seed

        volumes = Volumes(self.store)
        for req in requests:
            mode = "ro" if req.readonly else "rw"
            if req.kind == "tmpfs":
                opts = ("nosuid", "nodev", "noexec", *req.options) + (
                    ("ro",) if req.readonly else ()
                )
                mounts.append(Mount(req.target, "tmpfs", "tmpfs", opts))
                continue
            if req.kind == "bind":
                mounts.append(Mount(req.target, req.source, "bind", ("rbind", mode)))
                continue
            volume, new = volumes.create(req.source or None)
            (named if req.source else anonymous).append(volume.name)
            image_path = _resolve_in_rootfs(rootfs, req.target)
            if req.seed and image_path is not None and image_path.exists():
                seed(volume.mountpoint, image_path)
            if userns is not None and new:
                from pallet.runtime.idmap import adopt_owners

                adopt_owners(volume.mountpoint, image_path if req.seed else None, userns)
            mounts.append(Mount(req.target, str(volume.mountpoint), "bind", ("rbind", mode)))
        return mounts, named, anonymous

    def _etc_files(self, cdir: Path, hostname: str, opts: RunOptions) -> list[Mount]:
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if opts.network == "host":
            with contextlib.suppress(OSError):
                hosts = Path("/etc/hosts").read_text()
        else:
            hosts += f"127.0.0.1\t{hostname}\n"
        for entry in opts.add_hosts:
            host, sep, addr = entry.partition(":")
            if not sep or not host or not addr:
                raise InvalidArgument(
                    f"invalid argument {entry!r} for --add-host: expected host:ip"
                )
            hosts += f"{addr}\t{host}\n"
        resolv = ""
        with contextlib.suppress(OSError):
            resolv = Path("/etc/resolv.conf").read_text()
        if opts.network == "private":
            from pallet.runtime.network import DNS_ADDR

            resolv = f"nameserver {DNS_ADDR}\n"  # slirp4netns forwards to the host's
        if opts.dns:
            resolv = "".join(f"nameserver {d}\n" for d in opts.dns)
        files = {"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}
        mounts = []
        for name, text in files.items():
            path = cdir / name
            path.write_text(text)
            mounts.append(Mount(f"/etc/{name}", str(path), "bind", ("rbind", "rw")))
        return mounts

    # -- run -----------------------------------------------------------------------

    def run_monitored(
        self,
        record: ContainerRecord,
        *,
        stdin: int | IO[Any] | None,
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
        on_started: Callable[[], None] | None = None,
        console_out: int | None = None,
    ) -> int:
        """Start the container and wait for it, restarting it as its policy says: the
        monitor's work. Returns the exit code (125/126/127 when it could not be started).
        A detached ``-t`` container's terminal output goes to ``console_out``."""
        _become_subreaper()
        policy = parse_restart(record.restart_policy)
        if record.stop_requested:
            record = self.records.set_state(record, stop_requested=False)
        while True:
            status = self._run_once(record, stdin, stdout, stderr, on_started, console_out)
            on_started = None
            if policy.name == "no":
                return status
            record = self.records.get(record.id)
            if not policy.should_restart(status, record.restart_count, record.stop_requested):
                return status
            time.sleep(min(0.1 * 2**record.restart_count, 2.0))  # docker's growing delay
            try:
                record = self.records.get(record.id)
            except PalletError:
                return status  # removed while we waited
            if record.stop_requested:  # stopped while we waited
                return status
            record = self.records.set_state(record, restart_count=record.restart_count + 1)

    def _run_once(
        self,
        record: ContainerRecord,
        stdin: int | IO[Any] | None,
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
        on_started: Callable[[], None] | None,
        console_out: int | None = None,
    ) -> int:
        if record.tty and console_out is not None:  # detached -t: the monitor keeps the pty
            from pallet.runtime.console import run_with_console

            return run_with_console(self, record, console_out, on_started)
        cdir = self.dir(record.id)
        pid_file = cdir / "init.pid"
        pid_file.unlink(missing_ok=True)
        # The container inherits runc's stdio, so runc's own errors go to a log file:
        # a pipe on stderr would be held open by the container and never reach EOF.
        runtime_log = cdir / "runtime.log"
        runtime_log.unlink(missing_ok=True)
        bundle = str(cdir / "bundle")
        if record.tty:
            return self._run_tty(record, bundle, pid_file, runtime_log, stdout, on_started)
        if record.network != "private" and on_started is None:
            return self._run_direct(record, bundle, pid_file, runtime_log, stdin, stdout, stderr)
        runtime = self.runtime_for(record)
        with runtime.v1_view():  # create, start and delete without a wrapper each
            created = spawn.run(
                runtime.command_with_log(
                    runtime_log,
                    "create",
                    "--bundle",
                    bundle,
                    "--pid-file",
                    str(pid_file),
                    record.id,
                ),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
            if created != 0:
                self._failed_to_start(record, runtime_log)
            pid = int(pid_file.read_text().strip())
            record, slirp = self._created(record, pid)
            # forwarding is in place before the container runs a single instruction
            forward = _forward_signals(runtime, record.id)
            started = spawn.run(
                runtime.command_with_log(runtime_log, "start", record.id),
                stdin=spawn.DEVNULL,
                stdout=spawn.DEVNULL,
                stderr=spawn.DEVNULL,
            )
            if started != 0:
                for sig, previous in forward.items():
                    signal.signal(sig, previous)
                if slirp is not None:
                    slirp.stop()
                self._failed_to_start(record, runtime_log, 125)
            if on_started is not None:
                on_started()
            try:
                status = _wait_for(pid)
            finally:
                for sig, old in forward.items():
                    signal.signal(sig, old)
                if slirp is not None:
                    slirp.signal_stop()
            deleting = runtime.start_delete(record.id)
        if record.auto_remove:
            # Removed next, while the runtime's delete runs (nobody waits for it, see
            # _cleanup), and slirp4netns, already killed, is left to end on its own (its
            # exit tears down a tap device: ~15 ms nobody needs to wait for).
            self._deleting[record.id] = deleting
        try:
            self.records.set_state(record, state="exited", exit_code=status, finished=now(), pid=0)
        finally:
            if not record.auto_remove:
                deleting.wait()
            if slirp is not None:
                slirp.release() if record.auto_remove else slirp.wait()
        return status

    def _run_direct(
        self,
        record: ContainerRecord,
        bundle: str,
        pid_file: Path,
        runtime_log: Path,
        stdin: int | IO[Any] | None,
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
    ) -> int:
        """A foreground container with nothing to set up between its creation and its
        start (no slirp4netns network, nobody waiting to hear it started): one runtime
        ``run`` creates, starts, waits for and deletes it, two processes fewer than
        create + start + delete. The runtime relays the signals we pass it."""
        runtime = self.runtime_for(record)
        # running from now: its first output may come before the runtime's pid file
        record = self.records.set_state(
            record, state="running", pid=0, monitor_pid=os.getpid(), started=now()
        )
        with runtime.v1_view():
            proc = spawn.spawn(
                runtime.command_with_log(
                    runtime_log, "run", "--bundle", bundle, "--pid-file", str(pid_file), record.id
                ),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                new_group=True,  # Ctrl-C reaches it once, through us
            )
            relay = _relay_signals(proc)
            try:
                while not pid_file.exists() and proc.poll() is None:
                    time.sleep(0.001)
                pid = 0
                with contextlib.suppress(OSError, ValueError):
                    pid = int(pid_file.read_text().strip())
                if pid and proc.poll() is None:  # for stats and inspect
                    record = self.records.set_state(record, pid=pid)
                status = proc.wait()
            finally:
                for sig, old in relay.items():
                    signal.signal(sig, old)
        # a non-zero status is the container's unless the runtime logged an error
        if status != 0 and _last_runtime_error(runtime_log) is not None:
            self._failed_to_start(record, runtime_log, None if pid == 0 else 125)
        status = status if status >= 0 else 128 - status  # the runtime itself was killed
        self.records.set_state(record, state="exited", exit_code=status, finished=now(), pid=0)
        return status

    def _run_tty(
        self,
        record: ContainerRecord,
        bundle: str,
        pid_file: Path,
        runtime_log: Path,
        stdout: int | IO[Any] | None,
        on_started: Callable[[], None] | None,
    ) -> int:
        """``-t``: the runtime in the foreground makes the pty, puts our terminal in raw
        mode and copies both ways (the pty's output to ``stdout``); we keep the window size
        in sync (crun leaves it 0x0 and ignores SIGWINCH); Ctrl-C and Ctrl-D travel as
        bytes to the container's terminal."""
        from pallet.runtime.terminal import raw_terminal

        with raw_terminal(sys.stdin if sys.stdin.isatty() else None, pid_file):
            return self._run_tty_raw(record, bundle, pid_file, runtime_log, stdout, on_started)

    def _run_tty_raw(
        self,
        record: ContainerRecord,
        bundle: str,
        pid_file: Path,
        runtime_log: Path,
        stdout: int | IO[Any] | None,
        on_started: Callable[[], None] | None,
    ) -> int:
        runtime = self.runtime_for(record)
        proc = spawn.spawn(
            runtime.command_with_log(
                runtime_log, "run", "--bundle", bundle, "--pid-file", str(pid_file), record.id
            ),
            stdout=stdout,
        )
        while not pid_file.exists() and proc.poll() is None:
            time.sleep(0.002)  # the window size is set the sooner
        pid = 0
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
        slirp = None
        if pid:
            if sys.stdin.isatty():
                from pallet.runtime.terminal import copy_window_size

                copy_window_size(sys.stdin.fileno(), pid_file)
            record = self.records.set_state(
                record, state="running", pid=pid, monitor_pid=os.getpid(), started=now()
            )
            with contextlib.suppress(PalletError):  # a shell without network still works
                slirp = self._network_up(record, pid)
            if on_started is not None:
                on_started()
        status = proc.wait()
        if slirp is not None:
            slirp.stop()
        if not pid:
            self._failed_to_start(record, runtime_log)
        runtime.delete(record.id)
        self.records.set_state(record, state="exited", exit_code=status, finished=now(), pid=0)
        return status

    def slirp_socket(self, container_id: str) -> Path:
        # a unix socket path must stay under 108 bytes: keep it short, beside runc's state
        return self.runtime.state_root / f"{container_id[:16]}.slirp"

    def _network_up(self, record: ContainerRecord, pid: int) -> Slirp | None:
        """slirp4netns into the new network namespace, with the published ports."""
        if record.network != "private":
            return None
        from pallet.runtime.network import PortMapping, Slirp

        self.runtime.state_root.mkdir(parents=True, exist_ok=True)
        slirp = Slirp.start(pid, self.slirp_socket(record.id))
        try:
            for port in record.ports:
                slirp.forward(PortMapping.from_str(port))
        except BaseException:
            slirp.stop()
            raise
        return slirp

    def _created(self, record: ContainerRecord, pid: int) -> tuple[ContainerRecord, Slirp | None]:
        """The runtime made the container (init ``pid``, not yet started): its network up,
        the record says running. A network that fails kills it and records exit 125."""
        runtime = self.runtime_for(record)
        try:
            slirp = self._network_up(record, pid)
        except PalletError as exc:
            runtime.kill(record.id, "KILL", all_processes=True)
            _wait_for(pid)
            runtime.delete(record.id)
            self.records.set_state(record, state="exited", exit_code=125, finished=now(), pid=0)
            raise ContainerError(str(exc)) from exc
        record = self.records.set_state(
            record, state="running", pid=pid, monitor_pid=os.getpid(), started=now()
        )
        return record, slirp

    def _failed_to_start(
        self, record: ContainerRecord, runtime_log: Path, code: int | None = None
    ) -> NoReturn:
        message = _runtime_message(runtime_log)
        if code is None:
            code = (
                127
                if ("no such file" in message or "not found" in message)
                else 126
                if "permission denied" in message
                else 125
            )
        self.runtime_for(record).delete(record.id)
        self.records.set_state(record, state="exited", exit_code=code, finished=now(), pid=0)
        raise ContainerError(message, code)

    def start_detached(self, record: ContainerRecord) -> None:
        """Start under a detached monitor (``run -d``, ``start``) and return once the
        container runs, or raise what kept it from starting."""
        log = self.dir(record.id) / "container.log"
        ready_r, ready_w = os.pipe()
        try:
            spawn.spawn(
                [sys.executable, "-m", "pallet.runtime.container",
                 str(self.store.root), record.id, str(log), str(ready_w)],
                stdin=spawn.DEVNULL,
                stdout=spawn.DEVNULL,
                stderr=spawn.DEVNULL,
                new_session=True,
                pass_fds=(ready_w,),
            )  # fmt: skip
        finally:
            os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read().decode(errors="replace").strip()
        if answer == "ok":
            return
        code_text, _, message = answer.partition(" ")
        if not code_text.isdigit():
            raise ContainerError(f"the monitor of container {record.id[:12]} failed to start it")
        raise ContainerError(message, int(code_text))

    # -- inspect / remove ----------------------------------------------------------

    def true_state(self, record: ContainerRecord) -> tuple[str, int | None]:
        """The state as it really is: a monitor SIGKILLed with its container still
        running leaves the record at "running", and the runtime tells the rest."""
        if record.state != "running":
            return record.state, record.exit_code
        if record.monitor_pid and _alive(record.monitor_pid):
            return "running", None
        live = self.runtime_for(record).state(record.id)
        if live is not None and live.get("status") == "running":
            return "running", None
        return "exited", record.exit_code if record.exit_code is not None else 255

    def restart_pending(self, record: ContainerRecord) -> bool:
        """Exited, with its monitor alive and waiting to run it again (``--restart``)."""
        return (
            record.state != "running"
            and parse_restart(record.restart_policy).name != "no"
            and bool(record.monitor_pid)
            and _alive(record.monitor_pid)
        )

    def cancel_restart(self, record: ContainerRecord) -> ContainerRecord:
        """Tell the monitor of a container between two runs not to start it again and
        wait until the monitor has gone; a run it began before it could see that is
        killed. ``stop`` and ``rm -f`` cancel a pending restart this way, as docker's do."""
        record = self.records.set_state(record, stop_requested=True)
        last_code, killed = record.exit_code, False
        deadline = time.monotonic() + 5.0  # the longest restart delay is 2 s
        while _alive(record.monitor_pid) and time.monotonic() < deadline:
            if self.records.get(record.id).state == "running":
                self.runtime_for(record).kill(record.id, "KILL", all_processes=True)
                killed = True
            time.sleep(0.05)
        record = self.records.get(record.id)
        if killed and record.state != "running":
            # that run should not have been: the code to show is the one before it
            record = self.records.set_state(record, exit_code=last_code)
        return record

    def remove(self, name: str, *, force: bool = False, volumes: bool = False) -> ContainerRecord:
        record = self.records.get(name)
        state, _ = self.true_state(record)
        if state != "running" and self.restart_pending(record):
            if not force:
                raise Conflict(
                    f"You cannot remove a restarting container {record.id}. Stop the "
                    "container before attempting removal or force remove"
                )
            record = self.cancel_restart(record)
        elif state == "running":
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {record.id}. Stop the container "
                    "before attempting removal or force remove"
                )
            # its monitor must not restart it (--restart) while it is being removed
            record = self.records.set_state(record, stop_requested=True)
            self.runtime_for(record).kill(record.id, "KILL", all_processes=True)
            if record.pid:
                _wait_gone(record.pid)
            if record.monitor_pid:
                _wait_gone(record.monitor_pid, 2.0)  # let it record the exit first
        self._cleanup(record)
        if volumes and record.anonymous_volumes:
            from pallet.runtime.volumes import Volumes

            vols = Volumes(self.store)
            for name in record.anonymous_volumes:
                with contextlib.suppress(PalletError, OSError):
                    vols.remove(name)
        return record

    def unmount_rootfs(self, container_id: str) -> None:
        rootfs = self.dir(container_id) / "rootfs"
        if os.path.ismount(rootfs):
            unmount(rootfs, lazy=True)

    def _cleanup(self, record: ContainerRecord) -> None:
        # A delete already started (its container exited) runs on after we return: the
        # container, its mounts and its record are gone, and waiting for that process
        # (state directory, cgroups) would add 10-15 ms to every ``run --rm``.
        deleting = self._deleting.pop(record.id, None)
        if deleting is None and self.runtime.knows(record.id):
            # the monitor deletes it when the container exits
            self.runtime_for(record).delete(record.id, force=True)
        cdir = self.dir(record.id)
        if record.host_config.get("IDMappings"):
            from pallet.runtime.idmap import runtime_root, unmount_runtime_view

            unmount_runtime_view(runtime_root(self.runtime.state_root, record.id))
        self.unmount_rootfs(record.id)
        with contextlib.suppress(OSError):
            remove_tree(cdir)
        # slirp4netns leaves its socket when its monitor was SIGKILLed
        self.slirp_socket(record.id).unlink(missing_ok=True)
        (self.runtime.state_root / f"{record.id[:16]}.attach").unlink(missing_ok=True)  # -t's
        self.records.remove(record.id)
        if record.lease_id:
            with contextlib.suppress(PalletError):
                self.store.leases.get(record.lease_id).release()


def _mount_requests(opts: RunOptions) -> list[MountRequest]:
    """``-v``, ``--mount`` and ``--tmpfs``, checked."""
    if not (opts.binds or opts.mounts or opts.tmpfs):
        return []
    from pallet.runtime.mounts import parse_mount, parse_tmpfs, parse_volume

    return [
        *(parse_volume(v) for v in opts.binds),
        *(parse_mount(m) for m in opts.mounts),
        *(parse_tmpfs(t) for t in opts.tmpfs),
    ]


def _valid_name(name: str) -> bool:
    import re

    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) is not None


def _mkdir_in_rootfs(rootfs: Path, path: str, owner: tuple[int, int] | None = None) -> None:
    """Create the working directory inside the container's rootfs without following
    symlinks out of it (each component is checked with O_NOFOLLOW); new directories get
    ``owner`` (the container root's host IDs under a user namespace)."""
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in [p for p in path.split("/") if p and p != "."]:
            if part == "..":
                raise InvalidArgument(f"working directory {path!r} must not contain '..'")
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                if owner is not None:
                    os.chown(part, *owner, dir_fd=fd)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return  # a symlink or a file: let the runtime report it as docker does
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


def _resolve_in_rootfs(rootfs: Path, path: str, depth: int = 0) -> Path | None:
    """``path`` inside the container, symlinks followed but never out of ``rootfs``."""
    parts = [p for p in path.split("/") if p and p != "."]
    current = rootfs
    for i, part in enumerate(parts):
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        candidate = current / part
        if candidate.is_symlink():
            if depth > 40:
                return None
            target = os.readlink(candidate)
            rest = "/".join(parts[i + 1 :])
            base = "" if target.startswith("/") else str(current.relative_to(rootfs))
            return _resolve_in_rootfs(rootfs, f"{base}/{target}/{rest}", depth + 1)
        current = candidate
    return current


def check_executable(rootfs: Path, argv0: str, path_env: str, cwd: str) -> None:
    """Fail as docker does (127 not found, 126 not executable) before the runtime runs."""
    if "/" in argv0:
        candidates = [argv0 if argv0.startswith("/") else f"{cwd}/{argv0}"]
    else:
        candidates = [f"{d or '.'}/{argv0}" for d in path_env.split(":")]
    denied = False
    for candidate in candidates:
        resolved = _resolve_in_rootfs(rootfs, candidate)
        if resolved is None or not resolved.is_file():
            continue
        if resolved.stat().st_mode & 0o111:
            return
        denied = True
    if denied:
        raise ContainerError(f'failed to create container: exec: "{argv0}": permission denied', 126)
    where = (
        "executable file not found in $PATH" if "/" not in argv0 else "no such file or directory"
    )
    raise ContainerError(f'failed to create container: exec: "{argv0}": {where}', 127)


def _last_runtime_error(log: Path) -> str | None:
    """The last error the runtime wrote to its JSON log (None: it logged no error)."""
    message = None
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("level") == "error":
                    message = str(entry.get("msg", ""))
    return message


def _runtime_message(log: Path) -> str:
    """The last error the runtime logged, without runc's own prefixes."""
    message = _last_runtime_error(log) or ""
    for prefix in (
        "runc create failed: ",
        "runc start failed: ",
        "unable to start container process: ",
    ):
        message = message.replace(prefix, "")
    return f"failed to create container: {message or 'the OCI runtime failed'}"


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _wait_for(pid: int) -> int:
    """Wait for the container init (our child once ``runc create`` exited, as subreaper)."""
    while True:
        try:
            waited, status = os.waitpid(pid, 0)
        except ChildProcessError:
            _wait_gone(pid)
            return 255
        except InterruptedError:
            continue
        if waited == pid:
            if os.WIFEXITED(status):
                return os.WEXITSTATUS(status)
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)


_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _relay_signals(runtime_proc: spawn.Process) -> dict[signal.Signals, Any]:
    """Signals sent to ``pallet run`` go to the runtime's ``run``, which passes them on."""
    old: dict[signal.Signals, Any] = {}

    def relay(signum: int, _frame: object) -> None:
        runtime_proc.send_signal(signum)

    for sig in _FORWARDED:
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, relay)
    return old


def _forward_signals(runtime: OCIRuntime, container_id: str) -> dict[signal.Signals, Any]:
    """Signals sent to the monitor (``pallet run``) go to the container, as docker's proxy does."""
    old: dict[signal.Signals, Any] = {}

    def forward(signum: int, _frame: object) -> None:
        runtime.kill(container_id, str(signum))

    for sig in _FORWARDED:
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, forward)
    return old


def monitor_main(argv: list[str]) -> None:
    """Entry of a detached monitor: ``python -m pallet.runtime.container ROOT ID LOG FD``;
    it writes ``ok`` or ``CODE message`` to FD once the container runs or failed."""
    root, container_id, log, ready_fd = argv
    ready: int | None = int(ready_fd)
    store = Store.open(Path(root))
    containers = Containers(store)
    record = containers.records.get(container_id)
    from pallet.runtime.logs import LogWriter

    writer = LogWriter(Path(log))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    writer.pump(out_r, "stdout")
    writer.pump(err_r, "stderr")

    def started() -> None:
        nonlocal ready
        if ready is not None:
            os.write(ready, b"ok\n")
            os.close(ready)
            ready = None

    try:
        containers.run_monitored(
            record,
            stdin=spawn.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            on_started=started,
            console_out=out_w if record.tty else None,
        )
    except PalletError as exc:
        writer.write("stderr", f"error: {exc}\n".encode())
        if ready is not None:
            code = exc.exit_code if isinstance(exc, ContainerError) else 125
            os.write(ready, f"{code} {exc}\n".encode())
            os.close(ready)
            ready = None
    finally:
        os.close(out_w)
        os.close(err_w)
        writer.close()
        if ready is not None:
            os.close(ready)
    with contextlib.suppress(PalletError):  # rm -f may have taken it already
        if containers.records.get(container_id).auto_remove:
            containers.remove(container_id, force=True, volumes=True)


@dataclass(frozen=True)
class RestartPolicy:
    """``--restart``: whether and how often the monitor runs an exited container again."""

    name: str  # no, always, unless-stopped, on-failure
    limit: int = 0  # on-failure:N, 0 = unlimited

    def should_restart(self, status: int, count: int, stopped: bool) -> bool:
        if stopped or self.name == "no":
            return False
        if self.name == "on-failure":
            return status != 0 and (self.limit == 0 or count < self.limit)
        return True


def parse_restart(text: str) -> RestartPolicy:
    name, _, limit = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (
        limit and (name != "on-failure" or not limit.isdigit())
    ):
        raise InvalidArgument(f"invalid restart policy '{text}'")
    return RestartPolicy(name, int(limit or 0))


def cgroups_path(container_id: str) -> str:
    """One cgroup per container under a ``pallet`` parent, in every v1 controller."""
    return f"/pallet/{container_id}"


def find_init() -> str:
    """A small static init for ``--init`` (reaps zombies, forwards signals), as Docker's tini."""
    for candidate in ("catatonit", "tini-static", "tini", "docker-init"):
        path = which(candidate)
        if path:
            return path
    raise ContainerError("--init needs catatonit or tini installed on the host")


if __name__ == "__main__":
    monitor_main(sys.argv[1:])
