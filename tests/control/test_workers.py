"""`workers = 2`: worker 0 serves the control API for both: lists, follows (from the recording file) and
kills (routed to the owner) a worker-1 session."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hoop_tui.embedded_postgres import free_port
from proxy.control.client import ControlClient
from tests.control.conftest import cli, cli_json, wait_for
from tests.control.gateway_process import GatewayProcess, start_gateway_process, write_config
from tests.pg_fixture import UpstreamPostgres

AGENTS = 16


@pytest.fixture
def two_workers(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[GatewayProcess]:
    port = free_port()
    write_config(tmp_path, upstream, None, "gw-w", listen=f"127.0.0.1:{port}", extra="workers = 2")
    gateway = start_gateway_process(tmp_path, upstream, None, "gw-w")
    try:
        wait_for(lambda: "w1 hoop.gateway INFO postgres listener" in gateway.log_path.read_text(), "worker 1")
        yield gateway
    finally:
        gateway.stop()


def local_port(connection: psycopg.Connection) -> int:
    with socket.socket(fileno=connection.pgconn.socket) as sock:
        try:
            return sock.getsockname()[1]
        finally:
            sock.detach()  # the connection keeps its socket


async def follow_file(gateway: GatewayProcess, session_id: str, agent: psycopg.Connection) -> list[str]:
    auditor = gateway.token("audrey", ("auditors",))
    async with (
        await ControlClient.connect(gateway.control, auditor) as client,
        await client.session_events(session_id) as stream,
    ):
        assert stream.initial["live"] is False and stream.initial["session"]["gateway"] == "gw-w/1"
        await asyncio.to_thread(agent.execute, "SELECT 'seen from worker 0'")
        statements: list[str] = []
        async with asyncio.timeout(15):
            async for event in stream:
                if event[1] == "pg.query":
                    statements.append(event[2])
                    if "seen from worker 0" in event[2]:
                        return statements
    raise AssertionError("the stream ended early")


def test_kill_reaches_a_session_on_the_sibling_worker(two_workers: GatewayProcess) -> None:
    admin = two_workers.token("root", ("admins",))
    agent_token = two_workers.token("ci-bot", ("ci-agents",))
    agents = [psycopg.connect(two_workers.dsn(agent_token), autocommit=True) for _ in range(AGENTS)]
    try:
        for agent in agents:
            agent.execute("SELECT 1")

        def all_listed() -> list[dict] | None:
            found = cli_json("sessions", "list", "--control", two_workers.control, token=admin)
            return found if len(found) == AGENTS else None

        sessions = wait_for(all_listed, "every worker's sessions in the list")
        workers = {session["gateway"] for session in sessions}
        assert workers == {"gw-w/0", "gw-w/1"}, "SO_REUSEPORT spreads the agents over both workers"
        on_sibling = next(session for session in sessions if session["gateway"] == "gw-w/1")
        by_port = {local_port(agent): agent for agent in agents}
        victim = by_port[int(on_sibling["client_address"].rsplit(":", 1)[1])]

        # Its events come from its recording file (worker 0 does not hold its recorder), followed live.
        followed = asyncio.run(follow_file(two_workers, on_sibling["id"], victim))
        assert "SELECT 'seen from worker 0'" in followed

        control = ("--control", two_workers.control)
        killed = cli("sessions", "kill", on_sibling["id"], "--reason", "sibling check", *control, token=admin)
        assert killed.returncode == 0, killed.stderr
        assert killed.stdout.strip() == f"{on_sibling['id']} terminated"
        with pytest.raises(psycopg.OperationalError, match="terminated by root: sibling check"):
            victim.execute("SELECT 1")
        for agent in agents:
            if agent is not victim:
                assert agent.execute("SELECT 2").fetchone() == (2,)
    finally:
        for agent in agents:
            agent.close()
