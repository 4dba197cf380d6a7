"""`hoop-tui sessions list | kill ID --reason R`: agent sessions on every gateway sharing the store."""

from __future__ import annotations

import click

from hoop_tui.commands.control_cli import (
    ControlTarget,
    control_options,
    json_option,
    print_json,
    print_table,
    utc_time,
)


@click.group("sessions")
def sessions_group() -> None:
    """Agent sessions: list them, end one."""


@sessions_group.command("list")
@control_options
@json_option
@click.option("--all", "include_ended", is_flag=True, help="Include sessions that have ended.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 10_000))
def list_command(target: ControlTarget, as_json: bool, include_ended: bool, limit: int) -> None:
    """List sessions, oldest first (live counters for sessions of the gateway process you reach)."""
    sessions = target.call(lambda client: client.list_sessions(include_ended=include_ended, limit=limit))
    if as_json:
        print_json(sessions)
        return
    columns = [
        ("ID", lambda s: s["id"]),
        ("IDENTITY", lambda s: s["identity"]),
        ("CONNECTION", lambda s: s["connection"]),
        ("PROTOCOL", lambda s: s["protocol"]),
        ("STARTED", lambda s: utc_time(s["started_at"])),
        ("STATEMENTS", lambda s: str(s["statements"]) if "statements" in s else "-"),
        ("HELD", lambda s: str(s["held"]) if "held" in s else "-"),
        ("GATEWAY", lambda s: s["gateway"]),
    ]
    if include_ended:
        columns.append(("ENDED", lambda s: utc_time(s["ended_at"])))
    print_table(sessions, columns)


@sessions_group.command("kill")
@click.argument("session_id", metavar="ID")
@control_options
@json_option
@click.option("--reason", required=True, help="Why; the agent sees it in its error.")
def kill_command(target: ControlTarget, as_json: bool, session_id: str, reason: str) -> None:
    """End a session now: its agent gets a FATAL error naming you and the reason."""
    result = target.call(lambda client: client.kill_session(session_id, reason))
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['session']} {result['result']}")
