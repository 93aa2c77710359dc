"""The flags of the commands whose start-up users feel (``run``, ``create``, ``push``), as
plain data.

One table serves two parsers: the click command (help, errors, every unusual form) and
the click-free fast path that runs the command without importing click (see
``pallet.cli.fast_path``). Keeping both on this table is what keeps them in agreement.
"""

from __future__ import annotations


class Flag:
    """One flag. A plain class: a NamedTuple's generated code costs ``run`` 2 ms to build."""

    __slots__ = ("bounds", "choices", "convert", "default", "dest", "help", "kind", "names")

    def __init__(
        self,
        names: tuple[str, ...],  # "-i", "--interactive"
        dest: str,  # keyword the command receives
        kind: str,  # "flag" (bool), "value" (last one wins) or "multi" (a tuple of all)
        convert: type[str] | type[int] | type[float] = str,
        default: object = None,
        choices: tuple[str, ...] = (),
        help: str | None = None,  # click's name for it
        bounds: tuple[int, int] | None = None,  # an int's inclusive range
    ) -> None:
        self.names = names
        self.dest = dest
        self.kind = kind
        self.convert = convert
        self.default = default
        self.choices = choices
        self.help = help
        self.bounds = bounds


NETWORKS = ("none", "host", "private", "bridge", "default")

#: flags ``run`` and ``create`` share, as docker's
CREATE_FLAGS: tuple[Flag, ...] = (
    Flag(("-i", "--interactive"), "interactive", "flag", help="Keep STDIN open."),
    Flag(("-t", "--tty"), "tty", "flag", help="Allocate a pseudo-TTY."),
    Flag(("--rm",), "auto_remove", "flag", help="Remove the container on exit."),
    Flag(("--name",), "name", "value", help="Assign a name to the container."),
    Flag(("-e", "--env"), "env", "multi", help="Set an environment variable (K=V or K)."),
    Flag(("--env-file",), "env_files", "multi", help="Read environment variables from a file."),
    Flag(("-u", "--user"), "user", "value", help="user[:group], by name or id."),
    Flag(("-w", "--workdir"), "workdir", "value", help="Working directory inside."),
    Flag(("-h", "--hostname"), "hostname", "value", help="Container host name."),
    Flag(("--entrypoint",), "entrypoint", "value", help="Overwrite the image's ENTRYPOINT."),
    Flag(("--network", "--net"), "network", "value", default="private", choices=NETWORKS),
    Flag(("--read-only",), "read_only", "flag", help="Mount the root filesystem read-only."),
    Flag(("-v", "--volume"), "volumes", "multi", help="Bind mount or volume: SRC:DST[:ro]."),
    Flag(("--mount",), "mounts", "multi", help="type=bind|volume|tmpfs,..."),
    Flag(("--tmpfs",), "tmpfs", "multi", help="Mount a tmpfs: PATH[:OPTIONS]."),
    Flag(("--cap-add",), "cap_add", "multi"),
    Flag(("--cap-drop",), "cap_drop", "multi"),
    Flag(("--privileged",), "privileged", "flag"),
    Flag(("--security-opt",), "security_opts", "multi"),
    Flag(("-m", "--memory"), "memory", "value", help="Memory limit (b, k, m, g)."),
    Flag(("--cpus",), "cpus", "value", convert=float),
    Flag(("--pids-limit",), "pids_limit", "value", convert=int),
    Flag(("--add-host",), "add_hosts", "multi", help="host:ip"),
    Flag(("--dns",), "dns", "multi"),
    Flag(("-l", "--label"), "labels", "multi"),
    Flag(("--restart",), "restart", "value", default="no", help="no|on-failure[:N]|always"),
    Flag(("--init",), "init", "flag", help="Run an init inside the container."),
    Flag(("-p", "--publish"), "publish", "multi", help="[IP:]HOST:CTR[/proto]"),
    Flag(("--userns",), "userns", "value", help="User namespace: host or auto[:size=N]."),
    Flag(("--uidmap",), "uidmaps", "multi", help="UID map of a user namespace: CTR:HOST:SIZE."),
    Flag(("--gidmap",), "gidmaps", "multi", help="GID map (default: the --uidmap)."),
)

DETACH = Flag(("-d", "--detach"), "detach", "flag", help="Run in the background and print the ID.")

RUN_FLAGS: tuple[Flag, ...] = (DETACH, *CREATE_FLAGS)

#: registry transfers at once unless told otherwise (docker's defaults: 3 downloads,
#: 5 uploads)
DEFAULT_CONCURRENCY = 3
DEFAULT_UPLOADS = 5

PUSH_FLAGS: tuple[Flag, ...] = (
    Flag(("-a", "--all-tags"), "all_tags", "flag", help="Push every tag of the repository."),
    Flag(("--max-concurrent-uploads",), "max_concurrent_uploads", "value", convert=int,
         default=DEFAULT_UPLOADS, bounds=(1, 32), help="Layers uploaded at once."),
    Flag(("-q", "--quiet"), "quiet", "flag", help="Print nothing but errors."),
)  # fmt: skip


def defaults(flags: tuple[Flag, ...]) -> dict[str, object]:
    """The keywords a command receives when no flag is given."""
    out: dict[str, object] = {}
    for flag in flags:
        if flag.kind == "flag":
            out[flag.dest] = False
        elif flag.kind == "multi":
            out[flag.dest] = ()
        else:
            out[flag.dest] = flag.default
    return out
