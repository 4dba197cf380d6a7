"""asyncpg (extended protocol, pipelining, notifications, cancel) and psycopg through the gateway."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import psycopg
import pytest

from tests.conftest import RunningGateway
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient


async def connect(gateway: RunningGateway, **kwargs: object) -> asyncpg.Connection:
    return await asyncpg.connect(gateway.url(), ssl=False, **kwargs)  # type: ignore[arg-type]


async def test_prepared_statements_and_types(gateway: RunningGateway) -> None:
    conn = await connect(gateway)
    try:
        statement = await conn.prepare("SELECT $1::int * 2 AS doubled, $2::text AS label")
        for value in range(20):
            row = await statement.fetchrow(value, f"v{value}")
            assert row["doubled"] == value * 2 and row["label"] == f"v{value}"
        assert await conn.fetchval("SELECT $1::jsonb ->> 'k'", '{"k": "v"}') == "v"
    finally:
        await conn.close()


async def test_pipelined_executemany_reaches_the_database(
    gateway: RunningGateway, upstream: UpstreamPostgres
) -> None:
    upstream.execute("DROP TABLE IF EXISTS many_probe; CREATE TABLE many_probe (id int, v text)")
    upstream.execute("GRANT ALL ON many_probe TO app")
    conn = await connect(gateway)
    try:
        await conn.executemany(
            "INSERT INTO many_probe VALUES ($1, $2)", [(i, f"row{i}") for i in range(2000)]
        )
        async with conn.transaction():
            await conn.execute("INSERT INTO many_probe VALUES (-1, 'in tx')")
        rows = await conn.fetch("SELECT id FROM many_probe ORDER BY id LIMIT 3")
        assert [r["id"] for r in rows] == [-1, 0, 1]
    finally:
        await conn.close()
    assert upstream.execute("SELECT count(*) FROM many_probe") == [(2001,)]


async def test_large_result_through_cursor_and_fetch(gateway: RunningGateway) -> None:
    conn = await connect(gateway)
    try:
        rows = await conn.fetch("SELECT g, repeat('x', 20) FROM generate_series(1, 100000) g")
        assert len(rows) == 100000 and rows[-1][0] == 100000
        async with conn.transaction():
            total = 0
            async for record in conn.cursor("SELECT g FROM generate_series(1, 5000) g", prefetch=100):
                total += record[0]
        assert total == sum(range(1, 5001))
    finally:
        await conn.close()


async def test_listen_notify(gateway: RunningGateway, upstream: UpstreamPostgres) -> None:
    conn = await connect(gateway)
    received: asyncio.Queue[str] = asyncio.Queue()
    try:
        await conn.add_listener("hoop_probe", lambda *args: received.put_nowait(args[3]))
        await asyncio.to_thread(upstream.execute, "NOTIFY hoop_probe, 'hello through the gateway'")
        assert await asyncio.wait_for(received.get(), 10) == "hello through the gateway"
    finally:
        await conn.close()


CANCEL_CLIENT = """
import sys, threading, time, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    threading.Timer(0.5, conn.cancel).start()
    started = time.monotonic()
    try:
        conn.execute("SELECT pg_sleep(30)")
        print("not cancelled")
    except psycopg.errors.QueryCanceled:
        print(f"cancelled after {time.monotonic() - started:.1f}s")
    conn.rollback()
    print(conn.execute("SELECT 'still usable'").fetchone()[0])
"""


def test_cancel_running_query_psycopg(gateway: RunningGateway) -> None:
    # libpq's PQcancel blocks without releasing the GIL, so the client runs in its own process
    # (the gateway runs on a thread of this one).
    result = subprocess.run(
        [sys.executable, "-c", CANCEL_CLIENT, gateway.dsn()], capture_output=True, text=True, timeout=60
    )
    lines = result.stdout.split("\n")
    assert lines[0].startswith("cancelled after"), result.stdout + result.stderr
    assert float(lines[0].split()[-1].rstrip("s")) < 10
    assert lines[1] == "still usable"


async def test_cancel_running_query_asyncpg_timeout(gateway: RunningGateway) -> None:
    conn = await connect(gateway)
    try:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await conn.execute("SELECT pg_sleep(30)", timeout=0.5)
        assert time.monotonic() - started < 10
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


def test_garbage_mid_session_ends_only_that_session(gateway: RunningGateway) -> None:
    healthy = psycopg.connect(gateway.dsn(), autocommit=True)
    bad = RawClient(gateway.host, gateway.port)
    try:
        greeting = bad.login("appdb", gateway.token())
        assert type(greeting[-1]).__name__ == "ReadyForQuery"
        assert healthy.execute("SELECT 1").fetchone() == (1,)
        bad.send(b"Q\x7f\xff\xff\xff garbage that claims a 2 GB message")
        error = bad.read_message()
        assert error is not None and type(error).__name__ == "ErrorResponse"
        assert error.fields["S"] == "FATAL" and error.fields["C"] == "08P01"  # type: ignore[attr-defined]
        assert bad.read_message() is None, "the gateway closed the bad session"
        for i in range(50):
            assert healthy.execute("SELECT %s::int", (i,)).fetchone() == (i,)
    finally:
        bad.close()
        healthy.close()


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00\x00\x00\x03",  # length below the minimum
        b"\x00\x01\x00\x00" + b"\x00" * 12,  # startup packet over the limit
        b"\x00\x00\x00\x08\x00\x02\x00\x00",  # protocol 2.0
        b"\x00\x00\x00\x0c\x00\x03\x00\x00user",  # parameters not terminated
    ],
)
def test_malformed_startup_gets_one_fatal_error(gateway: RunningGateway, packet: bytes) -> None:
    raw = RawClient(gateway.host, gateway.port)
    try:
        raw.send(packet)
        error = raw.read_message()
        assert error is not None and error.fields["S"] == "FATAL"  # type: ignore[attr-defined]
        assert error.fields["C"] == "08P01"  # type: ignore[attr-defined]
    finally:
        raw.close()
    with psycopg.connect(gateway.dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_client_sending_unknown_message_type(gateway: RunningGateway) -> None:
    raw = RawClient(gateway.host, gateway.port)
    try:
        raw.login("appdb", gateway.token())
        raw.send(b"Y\x00\x00\x00\x04")
        messages = raw.read_until_ready()
        # The upstream itself rejects the unknown type; either way the client gets a clear error.
        assert any(type(m).__name__ == "ErrorResponse" for m in messages)
    finally:
        raw.close()


async def test_many_concurrent_sessions(gateway: RunningGateway) -> None:
    async def one(i: int) -> int:
        conn = await connect(gateway)
        try:
            return int(await conn.fetchval("SELECT $1::int", i))
        finally:
            await conn.close()

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert results == list(range(40))


def test_recording_failure_ends_the_session_in_strict_mode(gateway: RunningGateway) -> None:
    import os

    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        (session,) = gateway.gateway.sessions.list()
        # A real write failure: the recording's file descriptor goes away under the writer thread.
        os.close(gateway.gateway.live_recorder(session.id)._writer._fd)
        deadline = time.monotonic() + 15
        ended = False
        while time.monotonic() < deadline and not ended:
            try:
                conn.execute("SELECT repeat('x', 100000)")
            except psycopg.OperationalError as error:
                assert "recording failed" in str(error)
                ended = True
            time.sleep(0.1)
        assert ended, "the session outlived its recording"
