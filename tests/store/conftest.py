"""Store fixtures: the same behavioural suite runs against SQLite and a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.pg_fixture import UpstreamPostgres
from tests.store.helpers import PostgresDatabase, StoreMaker, create_database, drop_database, empty_tables


@pytest.fixture(scope="module")
def pg_database(upstream: UpstreamPostgres) -> Iterator[PostgresDatabase]:
    """One database per test module; each test empties the `hoop` tables first (see `stores`)."""
    database = create_database(upstream)
    try:
        yield database
    finally:
        drop_database(upstream, database)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def stores(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[StoreMaker]:
    """Opens stores of the current backend on one shared state; closes them after the test."""
    database = None
    if backend == "postgres":
        database = request.getfixturevalue("pg_database")
        empty_tables(database)
    maker = StoreMaker(backend, tmp_path / "state" / "hoop.db", database)
    try:
        yield maker
    finally:
        await maker.close_all()
