"""Opening and closing on both backends: idempotent, concurrent migrations, refusals that fail closed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from proxy.store.base import AuditRecord, StoreUnavailable
from proxy.store.migrations import latest_version
from proxy.store.migrations.postgres import MIGRATIONS as PG_MIGRATIONS
from proxy.store.migrations.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from tests.pg_fixture import UpstreamPostgres
from tests.store.helpers import StoreMaker, approval, create_database, drop_database


class FreshState:
    """An empty SQLite file or an empty PostgreSQL database, with raw access for checking what was written."""

    def __init__(self, maker: StoreMaker) -> None:
        self.maker = maker

    def versions(self) -> list[int]:
        return [row[0] for row in self.query("SELECT version FROM {schema}schema_version ORDER BY version")]

    def query(self, sql: str) -> list[tuple]:
        if self.maker.backend == "sqlite":
            with sqlite3.connect(self.maker.sqlite_path) as conn:
                return conn.execute(sql.format(schema="")).fetchall()
        assert self.maker.pg_database is not None
        return self.maker.pg_database.execute(sql.format(schema="hoop."))

    def tamper(self, sql: str) -> None:
        """Run a write as the database owner, outside the store."""
        if self.maker.backend == "sqlite":
            conn = sqlite3.connect(self.maker.sqlite_path, isolation_level=None)
            try:
                conn.execute(sql.format(schema=""))
            finally:
                conn.close()
            return
        assert self.maker.pg_database is not None
        self.maker.pg_database.execute(sql.format(schema="hoop."))


@pytest.fixture
async def fresh(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[FreshState]:
    database = None
    if backend == "postgres":
        upstream: UpstreamPostgres = request.getfixturevalue("upstream")
        database = create_database(upstream)
    maker = StoreMaker(backend, tmp_path / "state" / "hoop.db", database)
    try:
        yield FreshState(maker)
    finally:
        await maker.close_all()
        if database is not None:
            drop_database(upstream, database)


def expected_versions(backend: str) -> list[int]:
    migrations = SQLITE_MIGRATIONS if backend == "sqlite" else PG_MIGRATIONS
    return list(range(1, latest_version(migrations) + 1))


async def test_migrations_run_once_when_several_stores_open_at_once(fresh: FreshState) -> None:
    opened = await asyncio.gather(*(fresh.maker.new(f"gw-{n}") for n in range(4)))
    assert fresh.versions() == expected_versions(fresh.maker.backend)
    # Every one of them works on the shared schema.
    for n, store in enumerate(opened):
        await store.create_approval(approval(f"from-{n}"))
    assert len(await opened[0].list_approvals()) == 4


async def test_open_is_idempotent_and_reopening_keeps_data(fresh: FreshState) -> None:
    store = await fresh.maker.new()
    await store.open()  # a second open on the same instance is a no-op
    await store.create_approval(approval("kept"))
    await store.close()
    await store.close()  # and so is a second close

    reopened = await fresh.maker.new()
    assert (await reopened.get_approval("kept")) is not None
    assert fresh.versions() == expected_versions(fresh.maker.backend)


async def test_a_closed_or_unopened_store_fails_closed(fresh: FreshState) -> None:
    never_opened = fresh.maker.build()
    with pytest.raises(StoreUnavailable, match="not open"):
        await never_opened.get_approval("x")
    with pytest.raises(StoreUnavailable):
        never_opened.watch_approvals()
    store = await fresh.maker.new()
    record = approval()
    await store.create_approval(record)
    waiting = asyncio.create_task(store.wait_for_decision(record.id, timeout=30))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(StoreUnavailable):
        await store.list_approvals()


async def test_a_schema_newer_than_this_code_is_refused(fresh: FreshState) -> None:
    store = await fresh.maker.new()
    await store.close()
    fresh.tamper("INSERT INTO {schema}schema_version (version, description, applied_at) VALUES (999, 'x', 0)")
    with pytest.raises(StoreUnavailable, match="version 999, newer than"):
        await fresh.maker.new()


async def test_the_audit_log_is_append_only_in_the_database_itself(fresh: FreshState) -> None:
    store = await fresh.maker.new()
    await store.append_audit(AuditRecord(None, 1.0, "alice", "approve", "s1", "appdb", {"id": "r1"}))
    refused = (sqlite3.DatabaseError, psycopg.Error)
    with pytest.raises(refused, match="append-only"):
        fresh.tamper("UPDATE {schema}audit SET actor = 'mallory'")
    with pytest.raises(refused, match="append-only"):
        fresh.tamper("DELETE FROM {schema}audit")
    assert [r.actor for r in await store.list_audit()] == ["alice"]
