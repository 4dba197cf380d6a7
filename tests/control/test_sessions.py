"""Sessions over the control API: listed with live counters, killed with a FATAL at the agent, watched, and
their events read from the recording and then live."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from proxy.control.client import ControlClient
from proxy.control.errors import ControlError
from tests.conftest import RunningGateway
from tests.control.conftest import cli, cli_json, control_address, wait_for
from tests.pg_fixture import UpstreamPostgres

SESSION_KEYS = {"id", "identity", "connection", "protocol", "started_at"}


def test_sessions_list_shows_a_live_session_and_kill_ends_it_with_fatal(
    controlled: RunningGateway, seeded: UpstreamPostgres
) -> None:
    address = control_address(controlled)
    admin = controlled.token(subject="root", groups=("admins",))
    with psycopg.connect(controlled.dsn(), autocommit=True) as agent:
        agent.execute("SELECT 1").fetchall()
        agent.execute("SELECT 2").fetchall()
        (listed,) = wait_for(
            lambda: cli_json("sessions", "list", "--control", address, token=admin), "a session"
        )
        assert set(listed) >= SESSION_KEYS
        assert (listed["identity"], listed["connection"], listed["protocol"]) == (
            "ci-bot",
            "appdb",
            "postgres",
        )
        assert listed["live"] is True and listed["statements"] >= 2
        assert listed["started_at"] <= time.time()
        table = cli("sessions", "list", "--control", address, token=admin)
        assert listed["id"] in table.stdout and "IDENTITY" in table.stdout

        oncall = controlled.token(subject="alice", groups=("oncall",))
        refused = cli("sessions", "kill", listed["id"], "--reason", "x", "--control", address, token=oncall)
        assert refused.returncode == 1 and "killing a session needs the admin role" in refused.stderr
        killed = cli(
            "sessions", "kill", listed["id"], "--reason", "runaway agent", "--control", address, token=admin
        )
        assert killed.returncode == 0, killed.stderr
        assert killed.stdout.strip() == f"{listed['id']} terminated"
        with pytest.raises(psycopg.OperationalError, match="hoop: session terminated by root: runaway agent"):
            agent.execute("SELECT 3")
    assert wait_for(
        lambda: cli_json("sessions", "list", "--control", address, token=admin) == [], "the session to end"
    )
    (ended,) = cli_json("sessions", "list", "--all", "--control", address, token=admin)
    assert ended["id"] == listed["id"] and ended["ended_at"] is not None
    again = cli("sessions", "kill", listed["id"], "--reason", "again", "--control", address, token=admin)
    assert again.returncode == 1 and f"no active session {listed['id']}" in again.stderr
    audit = "".join(path.read_text() for path in (controlled.state_dir / "audit").glob("*.jsonl"))
    assert '"action":"session.kill"' in audit and '"by":"root"' in audit


async def test_sessions_watch_reports_start_end_and_counters(controlled: RunningGateway) -> None:
    client = await ControlClient.connect(
        control_address(controlled), controlled.token(subject="audrey", groups=("auditors",))
    )
    try:
        async with await client.watch_sessions(interval=0.2) as stream:
            assert stream.initial == []
            agent = await psycopg.AsyncConnection.connect(controlled.dsn(), autocommit=True)
            await agent.execute("SELECT 1")
            seen: list[dict] = []
            async with asyncio.timeout(10):
                async for event in stream:
                    seen.append(event)
                    if event["type"] == "counters" and any(s["statements"] >= 1 for s in event["sessions"]):
                        break
            started = next(e["session"] for e in seen if e["type"] == "started")
            assert started["identity"] == "ci-bot" and started["live"] is True
            await agent.close()
            async with asyncio.timeout(10):
                async for event in stream:
                    if event["type"] == "ended":
                        assert event["session"]["id"] == started["id"]
                        assert event["session"]["ended_at"] is not None
                        break
        assert stream.end_reason == "unwatched"
        # The connection carries on after a stream is closed.
        assert await client.list_sessions() == []
    finally:
        await client.close()


async def test_session_events_catch_up_from_the_recording_then_follow_live(
    controlled: RunningGateway,
) -> None:
    auditor = controlled.token(subject="audrey", groups=("auditors",))
    client = await ControlClient.connect(control_address(controlled), auditor)
    agent = await psycopg.AsyncConnection.connect(controlled.dsn(), autocommit=True)
    try:
        for number in range(3):
            await agent.execute(f"SELECT {number} AS before_watch")
        (session,) = await client.list_sessions()
        oncall = await ControlClient.connect(
            control_address(controlled), controlled.token(subject="alice", groups=("oncall",))
        )
        with pytest.raises(ControlError, match="needs the admin or auditor role"):
            await oncall.session_events(session["id"])
        await oncall.close()
        with pytest.raises(ControlError, match=r"'\.\./\.\./etc/passwd' is not a session id"):
            await client.session_events("../../etc/passwd")
        with pytest.raises(ControlError, match="no recording of session 0123456789abcdef is reachable"):
            await client.session_events("0123456789abcdef")

        stream = await client.session_events(session["id"])
        assert stream.initial["live"] is True
        assert stream.initial["header"]["session_id"] == session["id"]
        queries: list[str] = []
        kinds: list[str] = []

        async def read_until(text: str) -> None:
            async for event in stream:
                kinds.append(event[1])
                if event[1] == "pg.query":
                    queries.append(event[2]["sql"] if isinstance(event[2], dict) else event[2])
                    if text in queries[-1]:
                        return

        async with asyncio.timeout(10):
            await read_until("SELECT 2 AS before_watch")
            await agent.execute("SELECT 'live' AS after_watch")
            await read_until("after_watch")
        await agent.close()
        async with asyncio.timeout(10):
            async for event in stream:
                kinds.append(event[1])
        assert stream.end_reason == "the session ended"
        assert kinds[-1] == "session.end"
        assert [q for q in queries if "AS " in q] == [
            "SELECT 0 AS before_watch",
            "SELECT 1 AS before_watch",
            "SELECT 2 AS before_watch",
            "SELECT 'live' AS after_watch",
        ], "every statement exactly once: catch-up and live tail meet without a gap or a repeat"

        # Once ended, the same stream comes from the sealed file alone.
        await asyncio.sleep(0.3)
        async with await client.session_events(session["id"]) as replay:
            assert replay.initial["live"] is False
            async with asyncio.timeout(10):
                replayed = [event async for event in replay]
        assert replay.end_reason == "the recording is complete"
        assert [e[1] for e in replayed if e[1] != "screen.keyframe"] == kinds
    finally:
        await client.close()
        if not agent.closed:
            await agent.close()
