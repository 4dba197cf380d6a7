"""`hoop-tui init` and `hoop-tui serve`: writing a starter config and running the headless gateway."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from hoop_tui.commands.errors import fail, load_config_or_exit


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing hoop.toml.")
def init_command(directory: Path, force: bool) -> None:
    """Write a starter config (DIR/hoop.toml) and create the gateway's keys."""
    from proxy.config import load_config, starter_config_text
    from proxy.identity.local_issuer import LocalIssuer
    from recordings.keys import load_or_create_signing_key

    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "hoop.toml"
    if config_path.exists() and not force:
        fail(f"{config_path} already exists (use --force to overwrite it)")
    config_path.write_text(starter_config_text())
    config = load_config(config_path)
    state_dir = config.gateway.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    issuer = LocalIssuer.load_or_create(state_dir)
    load_or_create_signing_key(state_dir / "keys")
    click.echo(str(config_path))
    click.echo(f"wrote {config_path}; state in {state_dir}; local issuer {issuer.issuer}", err=True)
    click.echo(
        f"next: export the upstream password variable named in {config_path.name}, then "
        f"`hoop-tui serve --config {config_path}`",
        err=True,
    )


@click.command("serve")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Gateway config (TOML)."
)
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def serve_command(config_path: str, log_level: str) -> None:
    """Run the gateway headless (no TUI) until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=getattr(logging, log_level),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = load_config_or_exit(config_path)
    from proxy.serve import serve_forever

    def ready(gateway: object) -> None:
        from proxy.gateway import Gateway

        assert isinstance(gateway, Gateway)
        if gateway.postgres_address:
            host, port = gateway.postgres_address
            click.echo(f"hoop-tui: postgres listener on {host}:{port}", err=True)

    try:
        serve_forever(config, on_ready=ready)
    except OSError as error:
        fail(f"cannot start the gateway: {error}")
