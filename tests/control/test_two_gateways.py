"""Two gateway processes on one PostgreSQL store: an agent held on A is released by an approval made through
B's control API; and a gateway restarted while it holds a statement cancels it without running it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from proxy.control.client import ControlClient
from proxy.control.errors import ControlError
from tests.control.conftest import pending_via_cli, wait_for
from tests.control.gateway_process import GatewayProcess, share_issuer, start_gateway_process, write_config
from tests.pg_fixture import UpstreamPostgres
from tests.store.helpers import PostgresDatabase, create_database, drop_database

ROUNDS = 5


@pytest.fixture(scope="module")
def shared_store(upstream: UpstreamPostgres) -> Iterator[PostgresDatabase]:
    database = create_database(upstream)
    try:
        yield database
    finally:
        drop_database(upstream, database)


@pytest.fixture
def two_gateways(
    tmp_path: Path, seeded: UpstreamPostgres, shared_store: PostgresDatabase
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    write_config(tmp_path / "a", seeded, shared_store, "gw-a")
    write_config(tmp_path / "b", seeded, shared_store, "gw-b")
    share_issuer(tmp_path / "a" / "state", tmp_path / "b" / "state")
    started: list[GatewayProcess] = []
    try:
        started.append(start_gateway_process(tmp_path / "a", seeded, shared_store, "gw-a"))
        started.append(start_gateway_process(tmp_path / "b", seeded, shared_store, "gw-b"))
        yield started[0], started[1]
    finally:
        for gateway in started:
            gateway.stop()


async def test_approval_on_gateway_b_releases_agent_held_on_gateway_a(
    two_gateways: tuple[GatewayProcess, GatewayProcess],
    seeded: UpstreamPostgres,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway_a, gateway_b = two_gateways
    agent = await asyncpg.connect(gateway_a.url(gateway_a.token("ci-bot", ("ci-agents",))), ssl=False)
    operator = await ControlClient.connect(gateway_b.control, gateway_b.token("alice", ("oncall",)))
    admin = await ControlClient.connect(gateway_b.control, gateway_b.token("root", ("admins",)))
    after_return: list[float] = []  # the brief's figure: approve call returned -> agent's statement done
    after_send: list[float] = []  # the whole path: approve sent to B -> B's store -> NOTIFY -> A -> upstream
    try:
        # B lists A's session from the shared index, and refuses to kill what it does not run.
        (session,) = await admin.list_sessions()
        assert session["gateway"] == "gw-a/0" and session["identity"] == "ci-bot"
        with pytest.raises(ControlError, match="runs on gateway gw-a/0; end it through that gateway"):
            await admin.kill_session(session["id"], "wrong gateway")

        async with await operator.watch_approvals() as requests:
            assert requests.initial == []
            for round_number in range(ROUNDS):
                # A new statement text each round: asyncpg re-executes a cached prepared statement without
                # a new Parse, which the gateway does not review again (reported to the relay's owner).
                statement = asyncio.create_task(
                    agent.execute(f"INSERT INTO victims VALUES ({60 + round_number}, 'cross')")
                )
                async with asyncio.timeout(15):
                    held = await anext(requests)
                assert held["state"] == "pending" and held["gateway"] == "gw-a/0"
                assert not statement.done()
                completed: list[float] = []
                statement.add_done_callback(lambda _, done=completed: done.append(time.perf_counter()))
                sent = time.perf_counter()
                await operator.approve(held["id"])
                returned = time.perf_counter()
                assert await asyncio.wait_for(statement, 10) == "INSERT 0 1"
                after_return.append(max(0.0, completed[0] - returned))
                after_send.append(completed[0] - sent)
                async with asyncio.timeout(15):
                    decided = await anext(requests)
                assert (decided["id"], decided["state"], decided["decider"]) == (
                    held["id"],
                    "approved",
                    "alice",
                )
    finally:
        await agent.close()
        await operator.close()
        await admin.close()
    assert seeded.execute("SELECT count(*) FROM victims WHERE name = 'cross'") == [(ROUNDS,)]
    with capsys.disabled():
        print(
            f"\ncross-gateway release over {ROUNDS} rounds: approve returned -> statement done "
            f"median {statistics.median(after_return) * 1000:.1f} ms, max {max(after_return) * 1000:.1f} ms; "
            f"approve sent -> statement done median {statistics.median(after_send) * 1000:.1f} ms, "
            f"max {max(after_send) * 1000:.1f} ms"
        )
    assert max(after_return) < 1.0 and max(after_send) < 1.0


needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")


@needs_psql
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "crash"])
def test_restart_while_held_cancels_the_request_and_nothing_runs(
    two_gateways: tuple[GatewayProcess, GatewayProcess],
    seeded: UpstreamPostgres,
    shared_store: PostgresDatabase,
    stop_signal: signal.Signals,
) -> None:
    gateway_a, gateway_b = two_gateways
    psql = subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", gateway_a.dsn(gateway_a.token("ci-bot", ("ci-agents",))),
         "-c", "DELETE FROM victims WHERE id > 0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    oncall = gateway_b.token("alice", ("oncall",))
    (request,) = pending_via_cli(gateway_b.control, oncall)
    gateway_a.stop(stop_signal)
    _, err = psql.communicate(timeout=30)
    assert psql.returncode != 0
    if stop_signal == signal.SIGTERM:
        assert "hoop: the gateway is shutting down" in err
    else:
        assert "server closed the connection unexpectedly" in err

    restarted = start_gateway_process(gateway_a.directory, seeded, shared_store, "gw-a")
    try:

        async def state() -> str:
            async with await ControlClient.connect(restarted.control, oncall) as client:
                found = await client.list_approvals(["cancelled"])
                return next((r["state"] for r in found if r["id"] == request["id"]), "")

        assert wait_for(lambda: asyncio.run(state()) == "cancelled", "the request to be cancelled")
        with pytest.raises(ControlError, match=f"request {request['id']} is already cancelled"):
            asyncio.run(_approve(restarted.control, oncall, request["id"]))
    finally:
        restarted.stop()
    time.sleep(0.2)
    assert seeded.execute("SELECT count(*) FROM victims") == [(3,)], "nothing ran"


async def _approve(control: str, token: str, request_id: str) -> None:
    async with await ControlClient.connect(control, token) as client:
        await client.approve(request_id)
