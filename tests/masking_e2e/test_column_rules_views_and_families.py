"""Column rules through views, partition families and a table swapped in while a session is open."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

import proxy.masking.table_names as table_names
import proxy.postgres.catalog_watch as catalog_watch
from proxy.postgres.messages import DataRow, Query
from tests.conftest import RunningGateway
from tests.masking_e2e.column_rules_gateway import rules_gateway_over
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient

SSN = "123-45-6789"
SECRET = "hunter2-top-secret"  # no content detector knows it: only a column rule can hide it

POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
mask_columns = ["rv2r.people.ssn=us_ssn", "rv2r.people.note", "rv2r.accounts_2024.secret", "rv2r.kid.secret"]
"""

SETUP = (
    "DROP SCHEMA IF EXISTS rv2r CASCADE; CREATE SCHEMA rv2r; GRANT USAGE ON SCHEMA rv2r TO app;"
    "CREATE TABLE rv2r.people (id int, ssn text, note text);"
    f"INSERT INTO rv2r.people VALUES (1, '{SSN}', '{SECRET}');"
    "CREATE VIEW rv2r.people_directory AS SELECT id, ssn, note FROM rv2r.people;"
    "CREATE MATERIALIZED VIEW rv2r.people_snapshot AS SELECT id, ssn, note FROM rv2r.people;"
    # A rule names one partition (and one inheritance child); their rows are also read through the parent.
    "CREATE TABLE rv2r.accounts (id int, secret text) PARTITION BY RANGE (id);"
    "CREATE TABLE rv2r.accounts_2024 PARTITION OF rv2r.accounts FOR VALUES FROM (0) TO (1000);"
    f"INSERT INTO rv2r.accounts VALUES (1, '{SECRET}');"
    "CREATE TABLE rv2r.base (id int, secret text);"
    "CREATE TABLE rv2r.kid () INHERITS (rv2r.base);"
    f"INSERT INTO rv2r.kid VALUES (1, '{SECRET}');"
    "GRANT SELECT ON ALL TABLES IN SCHEMA rv2r TO app;"
)


@pytest.fixture
def rules_gateway(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    with rules_gateway_over(
        tmp_path, upstream, schema_sql=SETUP, policies=POLICY, drop_sql="DROP SCHEMA IF EXISTS rv2r CASCADE"
    ) as running:
        yield running


async def fetch_values(gateway: RunningGateway, sql: str) -> list[object]:
    conn = await asyncpg.connect(gateway.url(), ssl=False)
    try:
        rows = await conn.fetch(sql)
    finally:
        await conn.close()
    assert rows, f"no rows for {sql}"
    return [value for row in rows for value in row.values()]


def text_values(gateway: RunningGateway, sql: str) -> list[bytes]:
    """The DataRow values of a simple Query (text format: a composite value arrives as its text)."""
    client = RawClient(gateway.host, gateway.port)
    try:
        client.login("appdb", gateway.token())
        client.send(Query(sql).encode())
        messages = client.read_until_ready()
    finally:
        client.close()
    values = [value or b"" for m in messages if isinstance(m, DataRow) for value in m.values]
    assert values, f"no rows came back: {messages}"
    return values


@pytest.mark.parametrize("relation", ["people_directory", "people_snapshot"])
async def test_a_view_column_renamed_by_the_query_is_masked(
    rules_gateway: RunningGateway, relation: str
) -> None:
    """A view (or materialized view) is left unresolved so rules match its columns by name; but the name
    used is the one the query gave (`ssn AS s`), not the view column's own, which the catalog knows."""
    plain = await fetch_values(rules_gateway, f"SELECT ssn, note FROM rv2r.{relation}")
    assert SSN not in plain and SECRET not in plain  # by name: masked
    renamed = await fetch_values(rules_gateway, f"SELECT ssn AS s, note AS n FROM rv2r.{relation}")
    assert SSN not in renamed, f"rv2r.people.ssn read unmasked through {relation} renamed by the query"
    assert SECRET not in renamed, f"rv2r.people.note read unmasked through {relation} renamed by the query"


@pytest.mark.parametrize("relation", ["people_directory", "people_snapshot"])
def test_a_whole_row_value_of_a_view_is_masked(rules_gateway: RunningGateway, relation: str) -> None:
    """`SELECT d FROM view d` is a whole-row value of the view (column number 0): its text carries every
    column of the view, the ruled ones included, but the view is unresolved and `d` names no column."""
    values = text_values(rules_gateway, f"SELECT d FROM rv2r.{relation} d")
    assert not any(SECRET.encode() in value or SSN.encode() in value for value in values), (
        f"rv2r.people's ruled columns read unmasked inside a whole-row value of {relation}: {values}"
    )


@pytest.mark.parametrize(
    ("sql", "ruled"),
    [
        ("SELECT secret FROM rv2r.accounts", "rv2r.accounts_2024.secret"),
        ("SELECT secret FROM rv2r.base", "rv2r.kid.secret"),
    ],
)
async def test_a_rule_naming_a_partition_applies_when_read_through_its_parent(
    rules_gateway: RunningGateway, sql: str, ruled: str
) -> None:
    """A rule naming a partition (or an inheritance child) is checked against the field's table and that
    table's ancestors only; reading the parent returns the child's rows under the parent's OID."""
    child = sql.replace("accounts", "accounts_2024").replace("base", "kid")
    direct = await fetch_values(rules_gateway, child)
    assert not any(SECRET in str(value) for value in direct)  # the child itself: masked
    through_parent = await fetch_values(rules_gateway, sql)
    assert not any(SECRET in str(value) for value in through_parent), (
        f"{ruled} read unmasked through its parent: {through_parent}"
    )


async def test_a_table_swapped_in_during_a_session_is_masked_once_its_catalog_is_not_fresh(
    rules_gateway: RunningGateway, upstream: UpstreamPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog is checked at session starts. A nightly rebuild that renames rv2r.people_new over
    rv2r.people while a pooled session stays open (and no session starts) leaves the catalog calling that OID
    `people_new`: once it is older than FRESH_SECONDS, new result shapes are matched by column name alone."""
    monkeypatch.setattr(table_names, "FRESH_SECONDS", 0.5)
    upstream.execute(
        "CREATE TABLE rv2r.people_new (id int, ssn text, note text);"
        f"INSERT INTO rv2r.people_new VALUES (2, '{SSN}', '{SECRET}');"
        "GRANT SELECT ON rv2r.people_new TO app;"
    )
    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)  # its catalog knows rv2r.people_new
    try:
        assert await conn.fetchval("SELECT ssn FROM rv2r.people") != SSN
        assert await conn.fetchval("SELECT ssn FROM rv2r.people_new") == SSN  # resolved: no rule names it
        upstream.execute("DROP TABLE rv2r.people CASCADE; ALTER TABLE rv2r.people_new RENAME TO people;")
        await asyncio.sleep(0.6)
        row = await conn.fetchrow("SELECT ssn, note FROM rv2r.people")
    finally:
        await conn.close()
    assert row is not None
    assert row["ssn"] != SSN and row["note"] != SECRET, "rv2r.people read unmasked after an in-session swap"


async def test_a_table_swapped_in_during_a_session_is_known_by_its_new_name_once_the_watcher_checks(
    rules_gateway: RunningGateway, upstream: UpstreamPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the connection's watcher checking the fingerprint, the open session sees the swap within one
    VERIFY_INTERVAL, through a catalog that is fresh again: the new rv2r.people is ruled by name and table."""
    monkeypatch.setattr(catalog_watch, "VERIFY_INTERVAL", 0.2)
    upstream.execute(
        "CREATE TABLE rv2r.people_new (id int, ssn text, note text);"
        f"INSERT INTO rv2r.people_new VALUES (2, '{SSN}', '{SECRET}');"
        "GRANT SELECT ON rv2r.people_new TO app;"
    )
    conn = await asyncpg.connect(rules_gateway.url(), ssl=False)
    try:
        assert await conn.fetchval("SELECT ssn FROM rv2r.people_new") == SSN  # no rule names people_new
        upstream.execute("DROP TABLE rv2r.people CASCADE; ALTER TABLE rv2r.people_new RENAME TO people;")
        await asyncio.sleep(0.8)
        row = await conn.fetchrow("SELECT ssn, note FROM rv2r.people")
        assert await conn.fetchval("SELECT secret FROM rv2r.base") != SECRET  # fresh: kid's rule via parent
    finally:
        await conn.close()
    assert row is not None
    assert row["ssn"] != SSN and row["note"] != SECRET
