"""PostgreSQL specifics: NOTIFY, listener loss and polling, unreachable servers, URL and password rules."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from proxy.store.base import StoreUnavailable
from proxy.store.factory import PASSWORD_ENV, open_store
from proxy.store.migrations.postgres import NOTIFY_CHANNEL
from proxy.store.postgres import PostgresStore
from proxy.store.sqlite import SqliteStore
from tests.store.helpers import PostgresDatabase, StoreMaker, approval, empty_tables


@pytest.fixture
async def pg_stores(pg_database: PostgresDatabase, tmp_path: Path) -> AsyncIterator[StoreMaker]:
    empty_tables(pg_database)
    maker = StoreMaker("postgres", tmp_path / "unused.db", pg_database)
    try:
        yield maker
    finally:
        await maker.close_all()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_server_raises_store_unavailable() -> None:
    store = PostgresStore(
        f"postgresql://hoop@127.0.0.1:{closed_port()}/hoop", "gw-a", password="s3cret-pw", connect_timeout=2
    )
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert "127.0.0.1" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)
    with pytest.raises(StoreUnavailable):
        await store.get_approval("x")


async def test_wrong_password_raises_store_unavailable(pg_database: PostgresDatabase) -> None:
    store = PostgresStore(pg_database.url, "gw-a", password="definitely-wrong-password")
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert "definitely-wrong-password" not in str(raised.value)


def test_a_password_in_the_url_is_refused_without_echoing_it() -> None:
    for url in ("postgresql://hoop:hunter2@db/hoop", "postgresql://hoop@db/hoop?password=hunter2"):
        with pytest.raises(ValueError, match="HOOP_STORE_PASSWORD") as raised:
            PostgresStore(url, "gw-a")
        assert "hunter2" not in str(raised.value)
    with pytest.raises(ValueError, match="postgresql://"):
        PostgresStore("mysql://db/hoop", "gw-a")


async def test_factory_builds_each_backend(
    pg_database: PostgresDatabase, tmp_path: Path, monkeypatch
) -> None:
    sqlite_store = open_store("sqlite", tmp_path / "state", "gw-a")
    assert isinstance(sqlite_store, SqliteStore)
    assert sqlite_store.path == tmp_path / "state" / "hoop.db"
    with pytest.raises(ValueError, match="sqlite"):
        open_store("redis://x", tmp_path, "gw-a")

    empty_tables(pg_database)
    if pg_database.password is not None:
        monkeypatch.setenv(PASSWORD_ENV, pg_database.password)
    store = open_store(pg_database.url, tmp_path, "gw-a")
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        await store.create_approval(approval("via-factory"))
        assert (await store.get_approval("via-factory")) is not None
    finally:
        await store.close()


async def test_tables_live_in_the_hoop_schema(pg_stores: StoreMaker) -> None:
    await pg_stores.new()
    assert pg_stores.pg_database is not None
    tables = pg_stores.pg_database.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'hoop' ORDER BY 1"
    )
    assert [t[0] for t in tables] == [
        "approval_changes",
        "approvals",
        "audit",
        "grants",
        "schema_version",
        "sessions",
    ]
    public = pg_stores.pg_database.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert public == [(0,)]


async def test_every_change_is_notified_with_the_request_id(pg_stores: StoreMaker) -> None:
    store = await pg_stores.new()
    assert pg_stores.pg_database is not None
    listener = await asyncpg.connect(pg_stores.pg_database.url, password=pg_stores.pg_database.password)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        record = approval()
        await store.create_approval(record)
        await store.decide_approval(record.id, state="approved", decider="alice", justification=None, now=1.0)
        assert [await asyncio.wait_for(heard.get(), 3) for _ in range(2)] == [record.id, record.id]
    finally:
        await listener.close()


async def test_a_lost_listener_falls_back_to_polling_then_reconnects(pg_stores: StoreMaker) -> None:
    holder, approver = await pg_stores.new("gw-a"), await pg_stores.new("gw-b")
    assert isinstance(holder, PostgresStore) and pg_stores.pg_database is not None
    listener = holder._listener
    assert listener is not None
    pg_stores.pg_database.execute("SELECT pg_terminate_backend(%s)", (listener.get_server_pid(),))
    for _ in range(100):  # the termination reaches the client asynchronously
        if holder._listener is not listener:
            break
        await asyncio.sleep(0.01)
    assert holder._listener is not listener

    record = approval()
    await holder.create_approval(record)
    waiting = asyncio.create_task(holder.wait_for_decision(record.id, timeout=10))
    await asyncio.sleep(0.05)
    decided = time.perf_counter()
    await approver.decide_approval(record.id, state="denied", decider="bob", justification=None, now=2.0)
    assert (await asyncio.wait_for(waiting, 5)).state == "denied"
    latency = time.perf_counter() - decided
    print(f"\npostgres without its listener: released {latency * 1000:.1f} ms after the decision (polling)")
    assert latency < 1.0

    for _ in range(100):
        if holder._listener is not None and not holder._listener.is_closed():
            break
        await asyncio.sleep(0.05)
    assert holder._listener is not None and holder._listener is not listener


async def test_the_store_survives_its_pool_connections_being_killed(pg_stores: StoreMaker) -> None:
    store = await pg_stores.new("gw-kill")
    assert pg_stores.pg_database is not None
    await store.create_approval(approval("before"))
    pg_stores.pg_database.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'hoop-gateway gw-kill'"
    )
    await asyncio.sleep(0.1)
    outcomes = []
    for _ in range(3):  # each attempt either works on a fresh connection or fails closed, never otherwise
        try:
            outcomes.append(await store.get_approval("before"))
        except StoreUnavailable:
            outcomes.append(None)
    assert outcomes[-1] is not None and outcomes[-1].id == "before"
