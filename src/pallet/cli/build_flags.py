"""``pallet build``'s flags as plain data: one table for the click command (help, errors,
unusual forms) and the click-free fast path (``pallet.cli.fast_build``), so the two
always read a command line alike."""

from __future__ import annotations

from pallet.cli.flag_tables import Flag

COMPRESSIONS = ("gzip", "zstd")
PROGRESS_MODES = ("auto", "plain", "tty", "quiet")

BUILD_FLAGS: tuple[Flag, ...] = (
    Flag(("-f", "--file"), "dockerfile", "value", help="Dockerfile path (- for stdin)."),
    Flag(("-t", "--tag"), "tags", "multi", help="Name the image (repeatable)."),
    Flag(("--build-arg",), "build_args", "multi", help="KEY=VALUE build argument."),
    Flag(("--label",), "labels", "multi", help="KEY=VALUE image label."),
    Flag(("--target",), "target", "value", help="Build this stage (default: the last)."),
    Flag(("--platform",), "platform", "value",
         help="Target platform (only the host's is supported)."),
    Flag(("--no-cache",), "no_cache", "flag", help="Run every step."),
    Flag(("--no-cache-filter",), "no_cache_filter", "multi", help="Stage not to cache."),
    Flag(("--pull",), "pull", "flag", help="Always pull base images."),
    Flag(("--secret",), "secrets", "multi", help="id=ID,src=FILE (or env=VAR)."),
    Flag(("--ssh",), "ssh", "multi", help="default or ID=SOCKET: an ssh-agent to forward."),
    Flag(("--allow",), "allow", "multi", help="Entitlement: security.insecure, network.host."),
    Flag(("--cache-from",), "cache_from", "multi", help="type=local,src=DIR"),
    Flag(("--cache-to",), "cache_to", "multi", help="type=local,dest=DIR"),
    Flag(("--compression",), "compression", "value", default="gzip", choices=COMPRESSIONS),
    Flag(("--compression-level",), "compression_level", "value", convert=int),
    Flag(("--reproducible",), "reproducible", "flag",
         help="Fixed timestamps (SOURCE_DATE_EPOCH or 0)."),
    Flag(("-o", "--output"), "outputs", "multi", help="type=oci|docker|local,dest=PATH"),
    Flag(("--push",), "push", "flag", help="Push every -t name to its registry after the build."),
    Flag(("--iidfile",), "iidfile", "value", help="Write the image ID here."),
    Flag(("-q", "--quiet"), "quiet", "flag", help="Print only the image ID."),
    Flag(("--progress",), "progress", "value", default="auto", choices=PROGRESS_MODES),
)  # fmt: skip
