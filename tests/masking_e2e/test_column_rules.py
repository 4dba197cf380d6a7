"""Column rules that name a table apply to that table's columns only, resolved from the upstream's catalog.

`mask_columns = ["crm.users.ssn=us_ssn"]` must mask `crm.users.ssn`, also when a query renames it, and leave
an `ssn` column of another table alone. Where the table cannot be known (a computed column, a table created
after the gateway loaded the catalog) the rule applies by column name: more masking, never less.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

import proxy.masking.table_names as table_names
import proxy.postgres.catalog_watch as catalog_watch
from tests.conftest import RunningGateway
from tests.masking_e2e.column_rules_gateway import fetch_row, rules_gateway_over
from tests.pg_fixture import UpstreamPostgres

POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility", "copy_out"]
mask_columns = ["crm.users.ssn=us_ssn", "users.email"]
"""
SSN = "123-45-6789"  # also a valid-looking SSN: only the column rules decide here (no `mask` entities)


SCHEMA_SQL = (
    "DROP SCHEMA IF EXISTS crm CASCADE; DROP TABLE IF EXISTS audit_log, users, later_table CASCADE;"
    "CREATE SCHEMA crm; GRANT USAGE ON SCHEMA crm TO app;"
    "CREATE TABLE crm.users (id int, ssn text, email text);"
    "CREATE TABLE users (id int, ssn text, email text);"  # public.users: same names, another schema
    "CREATE TABLE audit_log (id int, ssn text);"
    f"INSERT INTO crm.users VALUES (1, '{SSN}', 'ann@example.com');"
    f"INSERT INTO users VALUES (1, '{SSN}', 'bob@example.com');"
    f"INSERT INTO audit_log VALUES (1, '{SSN}');"
    "GRANT SELECT ON crm.users, users, audit_log TO app;"
)


@pytest.fixture
def rules_gateway(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    drop_sql = "DROP SCHEMA crm CASCADE; DROP TABLE IF EXISTS audit_log, users, later_table"
    with rules_gateway_over(
        tmp_path, upstream, schema_sql=SCHEMA_SQL, policies=POLICY, drop_sql=drop_sql
    ) as running:
        yield running


async def test_a_rule_naming_a_table_masks_that_tables_column_only(rules_gateway: RunningGateway) -> None:
    crm = await fetch_row(rules_gateway, "SELECT ssn, email FROM crm.users")
    assert crm["ssn"] != SSN and "US_SSN" in str(crm["ssn"])
    assert crm["email"] != "ann@example.com"  # "users.email": any schema's users table

    public = await fetch_row(rules_gateway, "SELECT ssn, email FROM users")
    assert public["ssn"] == SSN  # crm.users.ssn names another schema's table
    assert public["email"] != "bob@example.com"

    audit = await fetch_row(rules_gateway, "SELECT ssn FROM audit_log")
    assert audit == {"ssn": SSN}

    joined = await fetch_row(
        rules_gateway, "SELECT a.ssn AS a_ssn, u.ssn AS u_ssn FROM audit_log a JOIN crm.users u USING (id)"
    )
    # Renamed by the query: the rule still knows crm.users.ssn by its table and column number.
    assert joined["a_ssn"] == SSN and joined["u_ssn"] != SSN
    renamed = await fetch_row(rules_gateway, "SELECT ssn AS s, email AS e FROM crm.users")
    assert renamed["s"] != SSN and renamed["e"] != "ann@example.com"

    # Extended protocol: the shape comes from the statement's Describe, not from a RowDescription per run.
    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)
    try:
        statement = await conn.prepare("SELECT ssn FROM crm.users WHERE id = $1")
        for _ in range(2):
            assert (await statement.fetchval(1)) != SSN
        assert await conn.fetchval("SELECT ssn FROM audit_log WHERE id = $1", 1) == SSN
    finally:
        await conn.close()


async def test_where_the_table_is_unknown_the_rule_applies_by_column_name(
    rules_gateway: RunningGateway, upstream: UpstreamPostgres
) -> None:
    computed = await fetch_row(rules_gateway, f"SELECT '{SSN}'::text AS ssn")
    assert computed["ssn"] != SSN  # no table: fail closed

    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)  # this session's catalog has no later_table
    try:
        upstream.execute(f"CREATE TABLE later_table (ssn text); INSERT INTO later_table VALUES ('{SSN}');"
                         "GRANT SELECT ON later_table TO app;")  # fmt: skip
        assert await conn.fetchval("SELECT ssn FROM later_table") != SSN  # unknown OID: fail closed
    finally:
        await conn.close()

    # The next session finds the catalog's fingerprint changed and reloads it: the table is known.
    known = await fetch_row(rules_gateway, "SELECT ssn FROM later_table")
    assert known["ssn"] == SSN


async def test_copy_output_is_refused_when_column_rules_cannot_apply(rules_gateway: RunningGateway) -> None:
    """COPY data carries no column names or tables, so the rules cannot be applied: fail closed."""
    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)
    received = io.BytesIO()
    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.exceptions.ConnectionDoesNotExistError)) as raised:
            await conn.copy_from_query("SELECT ssn FROM crm.users", output=received)
    finally:
        await conn.close()
    assert SSN.encode() not in received.getvalue()
    assert "mask_columns" in str(raised.value)


async def test_a_session_that_stays_open_keeps_precise_rules_while_the_catalog_is_watched(
    rules_gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled session outlives FRESH_SECONDS with no other session starting: the connection's watcher keeps
    the catalog verified, so audit_log.ssn (which no rule names) still comes through."""
    monkeypatch.setattr(table_names, "FRESH_SECONDS", 1.0)
    monkeypatch.setattr(catalog_watch, "VERIFY_INTERVAL", 0.2)
    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)
    try:
        await asyncio.sleep(1.5)
        assert await conn.fetchval("SELECT ssn FROM audit_log") == SSN
        assert await conn.fetchval("SELECT ssn FROM crm.users") != SSN
    finally:
        await conn.close()
