"""`hoop-tui grants add | list | revoke`: just-in-time widening of a group's policy on one connection."""

from __future__ import annotations

from typing import Any

import click

from hoop_tui.commands.control_cli import (
    ControlTarget,
    control_options,
    json_option,
    print_json,
    print_table,
    time_left,
    utc_time,
)
from hoop_tui.commands.errors import EXIT_USAGE, fail


@click.group("grants")
def grants_group() -> None:
    """Temporary grants: statements of the listed kinds run without review (a deny still denies)."""


def _print_grants(grants: list[dict[str, Any]]) -> None:
    print_table(
        grants,
        [
            ("ID", lambda g: g["id"]),
            ("GROUP", lambda g: g["group"]),
            ("CONNECTION", lambda g: g["connection"]),
            ("ALLOW", lambda g: ",".join(g["allow"])),
            ("BY", lambda g: g["created_by"]),
            ("EXPIRES", lambda g: f"{utc_time(g['expires_at'])} ({time_left(g['expires_at'])})"),
        ],
    )


@grants_group.command("add")
@click.argument("group")
@click.argument("connection")
@control_options
@json_option
@click.option(
    "--allow",
    "allow",
    multiple=True,
    required=True,
    help="Kind to allow without review, e.g. write (repeatable, or comma-separated).",
)
@click.option("--for", "duration", required=True, help="How long: 30m, 2h (at most 24h).")
def add_command(
    target: ControlTarget, as_json: bool, group: str, connection: str, allow: tuple[str, ...], duration: str
) -> None:
    """Let GROUP run the given kinds on CONNECTION without review, until the grant expires."""
    from proxy.durations import DurationError, parse_duration

    try:
        seconds = parse_duration(duration)
    except DurationError as error:
        fail(f"--for: {error}", EXIT_USAGE)
    kinds = [kind.strip() for entry in allow for kind in entry.split(",") if kind.strip()]
    if not kinds:
        fail("--allow: name at least one kind, e.g. --allow write", EXIT_USAGE)
    grant = target.call(lambda client: client.add_grant(group, connection, kinds, seconds))
    if as_json:
        print_json(grant)
        return
    _print_grants([grant])


@grants_group.command("list")
@control_options
@json_option
def list_command(target: ControlTarget, as_json: bool) -> None:
    """List grants in force, oldest first."""
    grants = target.call(lambda client: client.list_grants())
    if as_json:
        print_json(grants)
        return
    _print_grants(grants)


@grants_group.command("revoke")
@click.argument("grant_id", metavar="ID")
@control_options
@json_option
def revoke_command(target: ControlTarget, as_json: bool, grant_id: str) -> None:
    """End a grant now (gateways sharing the store stop applying it within seconds)."""
    grant = target.call(lambda client: client.revoke_grant(grant_id))
    if as_json:
        print_json(grant)
        return
    click.echo(f"{grant['id']} revoked")
