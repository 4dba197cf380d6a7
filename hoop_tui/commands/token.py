"""`hoop-tui token mint`: tokens from the gateway's local issuer, for agents and operators."""

from __future__ import annotations

import click

from hoop_tui.commands.errors import fail, load_config_or_exit


@click.group("token")
def token_group() -> None:
    """Tokens signed by the gateway's local issuer."""


@click.command("mint")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Gateway config (TOML)."
)
@click.option("--subject", required=True, help="Who the token speaks for, e.g. ci-bot.")
@click.option("--groups", default="", help="Comma-separated groups, e.g. ci-agents,oncall.")
@click.option("--ttl", default="15m", show_default=True, help="Lifetime: 30s, 15m, 8h, 7d.")
def mint_command(config_path: str, subject: str, groups: str, ttl: str) -> None:
    """Print a signed JWT on stdout."""
    from proxy.durations import DurationError, parse_duration
    from proxy.identity.local_issuer import LocalIssuer

    config = load_config_or_exit(config_path)
    try:
        ttl_seconds = parse_duration(ttl)
    except DurationError as error:
        fail(f"--ttl: {error}")
    if ttl_seconds <= 0:
        fail("--ttl must be positive")
    if not any(i.issuer == "local" for i in config.identity.issuers):
        fail(
            f'{config_path}: identity.issuer does not include "local"; '
            "mint tokens with your identity provider"
        )
    issuer = LocalIssuer.load_or_create(config.gateway.state_dir)
    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    token = issuer.mint(
        subject,
        group_list,
        audience=config.identity.audience,
        ttl_seconds=ttl_seconds,
        groups_claim=config.identity.groups_claim,
    )
    click.echo(token)


token_group.add_command(mint_command)
