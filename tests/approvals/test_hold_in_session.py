"""Held statements inside live sessions: approved, denied, timed out, cancelled, disconnected."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import asyncpg
import psycopg
import pytest

from proxy.approvals import ApprovalRefused
from tests.approvals.conftest import approval, decide, person, wait_for_pending
from tests.conftest import RunningGateway
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient

ONCALL = person("alice", "oncall")


def wait_for_state(gateway: RunningGateway, state: str, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = gateway.thread.call(gateway.gateway.store.list_approvals(states=[state]))  # type: ignore[attr-defined]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no request reached {state}")


needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")


def start_psql(
    gateway: RunningGateway, sql: str, groups: tuple[str, ...] = ("ci-agents",)
) -> subprocess.Popen[str]:
    token = gateway.token(subject="ci-bot", groups=groups)
    return subprocess.Popen(
        ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", gateway.dsn(token=token), "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_psql
def test_psql_held_then_approved_runs_once(reviewing: RunningGateway, seeded: UpstreamPostgres) -> None:
    psql = start_psql(reviewing, "INSERT INTO victims VALUES (10, 'approved') RETURNING id")
    (request,) = wait_for_pending(reviewing)
    assert request.statement == "INSERT INTO victims VALUES (10, 'approved') RETURNING id"
    assert request.requester == "ci-bot" and request.kind == "write" and request.approvers == ("oncall",)
    assert psql.poll() is None, "the client waits while the statement is held"
    decide(reviewing, request.id, ONCALL, approve=True)
    out, err = psql.communicate(timeout=30)
    assert psql.returncode == 0, err
    assert out.split() == ["10", "INSERT", "0", "1"]
    assert f"hoop: statement held for review (request {request.id}); waiting up to 1m for an approver" in err
    assert seeded.execute("SELECT count(*) FROM victims WHERE id = 10") == [(1,)]
    assert approval(reviewing, request.id).state == "approved"


@needs_psql
def test_psql_held_then_denied_names_the_approver_and_reason(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    psql = start_psql(reviewing, "UPDATE victims SET name = 'mallory' WHERE id = 1")
    (request,) = wait_for_pending(reviewing)
    with pytest.raises(ApprovalRefused, match="needs a reason"):
        decide(reviewing, request.id, ONCALL, approve=False)
    decide(reviewing, request.id, ONCALL, approve=False, reason="not during the freeze")
    _, err = psql.communicate(timeout=30)
    assert psql.returncode != 0
    assert f"hoop: statement denied by alice (request {request.id}): not during the freeze" in err
    assert "PL/pgSQL" not in err, "the client sees the denial, not how the gateway raised it"
    assert seeded.execute("SELECT name FROM victims WHERE id = 1") == [("alice",)]
    with pytest.raises(ApprovalRefused, match="already denied"):
        decide(reviewing, request.id, ONCALL, approve=True)


@needs_psql
def test_review_timeout(reviewing: RunningGateway, seeded: UpstreamPostgres) -> None:
    started = time.monotonic()
    psql = start_psql(reviewing, "DELETE FROM victims WHERE id = 2", groups=("hasty",))
    _, err = psql.communicate(timeout=30)
    assert psql.returncode != 0
    assert "hoop: review timed out after 2s with no decision" in err
    assert 1.5 < time.monotonic() - started < 15
    assert seeded.execute("SELECT count(*) FROM victims WHERE id = 2") == [(1,)]
    (expired,) = reviewing.thread.call(reviewing.gateway.store.list_approvals(states=["expired"]))  # type: ignore[attr-defined]
    assert expired.decider == "gateway"


def test_self_approval_and_non_approvers_are_refused(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    raw = RawClient(reviewing.host, reviewing.port)
    try:
        raw.login("appdb", reviewing.token(subject="ci-bot", groups=("ci-agents", "oncall")))
        from proxy.postgres.messages import NoticeResponse, Query

        raw.send(Query("UPDATE victims SET name = 'x'").encode())
        notice = raw.read_message()
        assert isinstance(notice, NoticeResponse) and "held for review" in notice.message
        (request,) = wait_for_pending(reviewing)
        with pytest.raises(ApprovalRefused, match="your own request"):
            decide(reviewing, request.id, person("ci-bot", "oncall"), approve=True)
        with pytest.raises(ApprovalRefused, match="only members of oncall"):
            decide(reviewing, request.id, person("bob", "developers"), approve=True)
        assert approval(reviewing, request.id).state == "pending"
    finally:
        raw.close()


def test_disconnect_while_held_cancels_and_nothing_runs(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    from proxy.postgres.messages import Query

    raw = RawClient(reviewing.host, reviewing.port)
    raw.login("appdb", reviewing.token())
    raw.send(Query("DELETE FROM victims").encode())
    raw.read_message()  # the hold notice
    (request,) = wait_for_pending(reviewing)
    raw.close()
    deadline = time.monotonic() + 10
    while approval(reviewing, request.id).state == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert approval(reviewing, request.id).state == "cancelled"
    with pytest.raises(ApprovalRefused, match="already cancelled"):
        decide(reviewing, request.id, ONCALL, approve=True)
    time.sleep(0.3)
    assert seeded.execute("SELECT count(*) FROM victims") == [(3,)]


async def test_asyncpg_cancel_while_held(reviewing: RunningGateway, seeded: UpstreamPostgres) -> None:
    conn = await asyncpg.connect(reviewing.url(), ssl=False)
    try:
        with pytest.raises(asyncio.TimeoutError):
            # asyncpg sends a CancelRequest when the timeout passes.
            await conn.execute("UPDATE victims SET name = 'timeout'", timeout=1.0)
        # The connection is usable again once the gateway answered the cancelled statement.
        assert await conn.fetchval("SELECT count(*) FROM victims WHERE name = 'timeout'") == 0
        (request,) = await asyncio.to_thread(wait_for_state, reviewing, "cancelled")
        assert request.decider == "gateway"
    finally:
        await conn.close()
    assert seeded.execute("SELECT count(*) FROM victims WHERE name = 'timeout'") == [(0,)]


async def test_asyncpg_held_executemany_batch(reviewing: RunningGateway, seeded: UpstreamPostgres) -> None:
    conn = await asyncpg.connect(reviewing.url(), ssl=False)
    try:
        batch = asyncio.create_task(
            conn.executemany(
                "INSERT INTO victims VALUES ($1, $2)", [(100 + i, f"bulk{i}") for i in range(50)]
            )
        )
        (request,) = await asyncio.to_thread(wait_for_pending, reviewing)
        assert not batch.done()
        await asyncio.to_thread(decide, reviewing, request.id, ONCALL, True)
        await asyncio.wait_for(batch, 30)
        assert await conn.fetchval("SELECT count(*) FROM victims WHERE id >= 100") == 50
    finally:
        await conn.close()
    assert seeded.execute("SELECT count(*) FROM victims") == [(53,)]


def test_held_inside_transaction_block(reviewing: RunningGateway, seeded: UpstreamPostgres) -> None:
    import threading

    with psycopg.connect(reviewing.dsn()) as conn:
        conn.execute("SELECT 1")  # psycopg opens the transaction
        results: list[object] = []
        worker = threading.Thread(
            target=lambda: results.append(conn.execute("INSERT INTO victims VALUES (20, 'in tx')").rowcount)
        )
        worker.start()
        (request,) = wait_for_pending(reviewing)
        decide(reviewing, request.id, ONCALL, approve=True)
        worker.join(30)
        assert results == [1]
        assert seeded.execute("SELECT count(*) FROM victims WHERE id = 20") == [(0,)], "not committed yet"
        conn.commit()
    assert seeded.execute("SELECT count(*) FROM victims WHERE id = 20") == [(1,)]

    # A denial inside a block aborts it on both sides.
    with psycopg.connect(reviewing.dsn()) as conn:
        conn.execute("SELECT 1")
        errors: list[BaseException] = []

        def run() -> None:
            try:
                conn.execute("INSERT INTO victims VALUES (21, 'denied')")
            except psycopg.Error as error:
                errors.append(error)

        worker = threading.Thread(target=run)
        worker.start()
        (request,) = wait_for_pending(reviewing)
        decide(reviewing, request.id, ONCALL, approve=False, reason="no")
        worker.join(30)
        assert isinstance(errors[0], psycopg.errors.InsufficientPrivilege)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
    assert seeded.execute("SELECT count(*) FROM victims WHERE id = 21") == [(0,)]


async def test_approved_prepared_statement_is_held_again_when_executed_again(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    """asyncpg re-executes a cached prepared statement with Bind/Execute only: no new Parse to hold."""
    conn = await asyncpg.connect(reviewing.url(), ssl=False)
    sql = "INSERT INTO victims VALUES ($1, 'prepared') RETURNING id"
    try:
        first = asyncio.create_task(conn.fetchval(sql, 70))
        (request,) = await asyncio.to_thread(wait_for_pending, reviewing)
        await asyncio.to_thread(decide, reviewing, request.id, ONCALL, True)
        assert await asyncio.wait_for(first, 30) == 70

        second = asyncio.create_task(conn.fetchval(sql, 71))
        pending = await asyncio.to_thread(wait_for_pending, reviewing)
        assert [p.id for p in pending] != [request.id], "a new request for the new execution"
        assert pending[0].statement.startswith("INSERT INTO victims")
        await asyncio.to_thread(decide, reviewing, pending[0].id, ONCALL, False, "once was enough")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="once was enough"):
            await asyncio.wait_for(second, 30)
        assert await conn.fetchval("SELECT count(*) FROM victims WHERE name = 'prepared'") == 1
    finally:
        await conn.close()
    assert seeded.execute("SELECT id FROM victims WHERE name = 'prepared'") == [(70,)]
