"""`hoop-tui approvals list | approve ID | deny ID --reason R`: the review queue, over the control API."""

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

STATES = ("pending", "approved", "denied", "expired", "cancelled")


@click.group("approvals")
def approvals_group() -> None:
    """Statements and commands held for review: list them, approve or deny them."""


@approvals_group.command("list")
@control_options
@json_option
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Requests in this state (repeatable; default: pending).",
)
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 5000))
def list_command(target: ControlTarget, as_json: bool, states: tuple[str, ...], limit: int) -> None:
    """List approval requests, oldest first."""
    wanted = list(states) or ["pending"]
    requests = target.call(lambda client: client.list_approvals(wanted, limit=limit))
    if as_json:
        print_json(requests)
        return
    print_table(
        requests,
        [
            ("ID", lambda r: r["id"]),
            ("STATE", lambda r: r["state"]),
            ("REQUESTER", lambda r: r["requester"]),
            ("CONNECTION", lambda r: r["connection"]),
            ("KIND", lambda r: r["kind"]),
            ("CREATED", lambda r: utc_time(r["created_at"])),
            ("EXPIRES", lambda r: time_left(r["expires_at"]) if r["state"] == "pending" else "-"),
            ("STATEMENT", lambda r: r["statement"]),
        ],
    )


def _print_decision(decided: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(decided)
        return
    click.echo(
        f"{decided['id']} {decided['state']} (requester {decided['requester']}, {decided['connection']})"
    )


@approvals_group.command("approve")
@click.argument("request_id", metavar="ID")
@control_options
@json_option
@click.option("--reason", help="Why (recorded with the decision).")
def approve_command(target: ControlTarget, as_json: bool, request_id: str, reason: str | None) -> None:
    """Let a held statement run (once)."""
    decided = target.call(lambda client: client.approve(request_id, reason))
    _print_decision(decided, as_json)


@approvals_group.command("deny")
@click.argument("request_id", metavar="ID")
@control_options
@json_option
@click.option("--reason", required=True, help="Why; the agent sees it in its error.")
def deny_command(target: ControlTarget, as_json: bool, request_id: str, reason: str) -> None:
    """Refuse a held statement: the agent gets an error naming you and the reason."""
    decided = target.call(lambda client: client.deny(request_id, reason))
    _print_decision(decided, as_json)
