"""Helpers for the store tests: throwaway PostgreSQL databases, a store maker per backend, sample records."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from proxy.store.base import ApprovalRecord, Store
from proxy.store.postgres import PostgresStore
from proxy.store.sqlite import SqliteStore
from tests.pg_fixture import UpstreamPostgres

TABLES = ("approvals", "approval_changes", "sessions", "grants", "audit")


@dataclass(frozen=True)
class PostgresDatabase:
    """A throwaway database on the shared test server; `url` carries no password, as the config demands."""

    name: str
    url: str
    password: str | None
    superuser_dsn: str

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.superuser_dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []


def create_database(upstream: UpstreamPostgres) -> PostgresDatabase:
    name = f"store_test_{secrets.token_hex(6)}"
    with psycopg.connect(upstream.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(upstream.superuser_dsn)
    user = parts.username or "postgres"
    url = f"postgresql://{user}@{parts.hostname}:{parts.port or 5432}/{name}"
    superuser_dsn = parts._replace(path="/" + name).geturl()
    return PostgresDatabase(name, url, parts.password, superuser_dsn)


def drop_database(upstream: UpstreamPostgres, database: PostgresDatabase) -> None:
    with psycopg.connect(upstream.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")


def empty_tables(database: PostgresDatabase) -> None:
    exists = database.execute("SELECT to_regclass('hoop.schema_version')")[0][0]
    if exists is None:
        return
    with psycopg.connect(database.superuser_dsn, autocommit=True) as conn:
        # The audit table refuses TRUNCATE through its trigger; a superuser may switch triggers off.
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"TRUNCATE {', '.join(f'hoop.{table}' for table in TABLES)} RESTART IDENTITY")


@dataclass
class StoreMaker:
    """Makes stores of one backend that all share the same state (one SQLite file or one PG database)."""

    backend: str
    sqlite_path: Path
    pg_database: PostgresDatabase | None
    opened: list[Store] = field(default_factory=list)

    def build(self, gateway_id: str = "gw-a") -> Store:
        if self.backend == "sqlite":
            return SqliteStore(self.sqlite_path, gateway_id)
        assert self.pg_database is not None
        return PostgresStore(self.pg_database.url, gateway_id, password=self.pg_database.password)

    async def new(self, gateway_id: str = "gw-a") -> Store:
        store = self.build(gateway_id)
        self.opened.append(store)
        await store.open()
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


def approval(
    approval_id: str | None = None,
    *,
    gateway_id: str = "gw-a",
    created_at: float | None = None,
    ttl: float = 300.0,
    statement: str = "DELETE FROM orders WHERE id = 7",
    connection: str = "appdb",
) -> ApprovalRecord:
    created = time.time() if created_at is None else created_at
    return ApprovalRecord(
        id=approval_id or secrets.token_hex(8),
        session_id="s-" + secrets.token_hex(4),
        requester="ci-bot",
        requester_groups=("ci-agents", "builders"),
        connection=connection,
        protocol="postgres",
        statement=statement,
        kind="write",
        reason="write statements need review",
        rule="policies[0].review",
        approvers=("oncall",),
        created_at=created,
        expires_at=created + ttl,
        state="pending",
        gateway_id=gateway_id,
    )
