"""``pallet registry``: serve a private OCI registry, collect garbage, apply retention, manage users."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pallet.cli.context import CliContext
from pallet.errors import RegistryError
from pallet.registry.config import AuthConfig, RegistryConfig, TLSConfig, load_config


def _config(
    ctx: click.Context, config_file: Path | None, data: Path | None, **flags: object
) -> RegistryConfig:
    obj: CliContext = ctx.obj
    config = load_config(config_file, obj.store_root / "registry")
    if data is not None:
        config = config.replace(data=data.resolve())
    changes = {k: v for k, v in flags.items() if v is not None}
    return config.replace(**changes) if changes else config


_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML config file.",
)
_data_option = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: <pallet root>/registry).",
)


@click.group("registry")
def registry() -> None:
    """Serve and maintain a private OCI registry."""


@registry.command("serve")
@_config_option
@_data_option
@click.option("--addr", help="Listen address HOST:PORT (default 127.0.0.1:5000).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--auth", "auth_mode", type=click.Choice(["none", "htpasswd", "token"]))
@click.option("--htpasswd", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--anonymous-pull/--no-anonymous-pull", default=None)
@click.option("--read-only", is_flag=True, default=None, help="Refuse every write.")
@click.pass_context
def serve_cmd(
    ctx: click.Context,
    config_file: Path | None,
    data: Path | None,
    addr: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    auth_mode: str | None,
    htpasswd: Path | None,
    anonymous_pull: bool | None,
    read_only: bool | None,
) -> None:
    """Run the registry until interrupted."""
    from pallet.registry.config import split_addr
    from pallet.registry.server import serve

    config = _config(ctx, config_file, data, addr=addr, read_only=read_only)
    if addr is not None:
        split_addr(addr)
    if (tls_cert is None) != (tls_key is None):
        raise RegistryError("--tls-cert and --tls-key go together")
    if tls_cert is not None:
        config = config.replace(tls=TLSConfig(cert=tls_cert.resolve(), key=tls_key))
    auth = config.auth
    if auth_mode is not None:
        auth = _replace_auth(auth, mode=auth_mode)
    if htpasswd is not None:
        auth = _replace_auth(auth, htpasswd=htpasswd.resolve())
    if anonymous_pull is not None:
        auth = _replace_auth(auth, anonymous_pull=anonymous_pull)
    config = config.replace(auth=auth)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    serve(config)


def _replace_auth(auth: AuthConfig, **changes: object) -> AuthConfig:
    import dataclasses

    return dataclasses.replace(auth, **changes)  # type: ignore[arg-type]


@registry.group("user")
def user_group() -> None:
    """Manage htpasswd (bcrypt) users."""


def _htpasswd(ctx: click.Context, config_file: Path | None, data: Path | None) -> object:
    from pallet.registry.auth.htpasswd import Htpasswd

    return Htpasswd(_config(ctx, config_file, data).htpasswd_path)


@user_group.command("add")
@_config_option
@_data_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.pass_context
def user_add(
    ctx: click.Context, config_file: Path | None, data: Path | None, name: str, password_stdin: bool
) -> None:
    """Add NAME, or change its password."""
    from pallet.registry.auth.htpasswd import Htpasswd, check_username

    check_username(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = _htpasswd(ctx, config_file, data)
    assert isinstance(store, Htpasswd)
    store.set(name, password)
    click.echo(f"user {name} saved in {store.path}")


@user_group.command("rm")
@_config_option
@_data_option
@click.argument("name")
@click.pass_context
def user_rm(ctx: click.Context, config_file: Path | None, data: Path | None, name: str) -> None:
    """Remove NAME."""
    from pallet.registry.auth.htpasswd import Htpasswd

    store = _htpasswd(ctx, config_file, data)
    assert isinstance(store, Htpasswd)
    store.remove(name)
    click.echo(f"user {name} removed")


@user_group.command("list")
@_config_option
@_data_option
@click.pass_context
def user_list(ctx: click.Context, config_file: Path | None, data: Path | None) -> None:
    """List users."""
    from pallet.registry.auth.htpasswd import Htpasswd

    store = _htpasswd(ctx, config_file, data)
    assert isinstance(store, Htpasswd)
    for name in store.users():
        click.echo(name)


@registry.command("gc")
@_config_option
@_data_option
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option("--grace", type=click.IntRange(min=0), help="Grace period in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.pass_context
def gc_cmd(
    ctx: click.Context,
    config_file: Path | None,
    data: Path | None,
    dry_run: bool,
    grace: int | None,
    as_json: bool,
) -> None:
    """Remove blobs no manifest references (safe while the server runs)."""
    import dataclasses
    import json

    from pallet.registry.gc import run_gc_offline

    config = _config(ctx, config_file, data)
    _require_data(config)
    report = run_gc_offline(
        config.data,
        grace_seconds=config.gc.grace_seconds if grace is None else grace,
        upload_max_age_seconds=config.limits.upload_max_age_seconds,
        dry_run=dry_run,
        audit_path=config.audit_path,
    )
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), indent=2))
        return
    for digest in report.blobs_removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} blob {digest}")
    click.echo(report.summary())


@registry.command("retention")
@_config_option
@_data_option
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def retention_cmd(
    ctx: click.Context, config_file: Path | None, data: Path | None, dry_run: bool, as_json: bool
) -> None:
    """Apply the config file's retention policies now."""
    import dataclasses
    import json

    from pallet.registry.retention import run_retention_offline

    config = _config(ctx, config_file, data)
    _require_data(config)
    if not config.retention.policies:
        raise RegistryError("no [[retention.policy]] in the config: nothing to apply")
    report = run_retention_offline(
        config.data, config.retention, dry_run=dry_run, audit_path=config.audit_path
    )
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    for action in report.actions:
        what = (
            f"{action.repository}:{action.reference}"
            if action.kind == "tag"
            else (f"{action.repository}@{action.digest}")
        )
        click.echo(f"{verb} {action.kind} {what} ({action.reason})")
    click.echo(report.summary())


def _require_data(config: RegistryConfig) -> None:
    if not (config.data / "metadata.db").is_file():
        raise RegistryError(f"no registry data in {config.data} (no metadata.db)")


def register(group: click.Group) -> None:
    group.add_command(registry)
