"""Ways around column rules: views, partitions, whole-row values, table swaps, rows never described."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.postgres.messages import Bind, DataRow, ErrorResponse, Execute, Parse, Query, Sync
from tests.conftest import RunningGateway
from tests.masking_e2e.column_rules_gateway import fetch_row, rules_gateway_over
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient

SSN = "123-45-6789"
SECRET = "hunter2-top-secret"  # no content detector knows it: only the column rule can hide it

RULES_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
mask_columns = ["rv3.people.ssn=us_ssn", "rv3.people.note", "rv3.accounts.secret"]
"""

SETUP = (
    "DROP SCHEMA IF EXISTS rv3 CASCADE; CREATE SCHEMA rv3; GRANT USAGE ON SCHEMA rv3 TO app;"
    "CREATE TABLE rv3.people (id int, ssn text, note text);"
    f"INSERT INTO rv3.people VALUES (1, '{SSN}', '{SECRET}');"
    # A view the DBA made for reporting: the very same column of the very same table.
    "CREATE VIEW rv3.people_directory AS SELECT id, ssn, note FROM rv3.people;"
    "CREATE TABLE rv3.accounts (id int, secret text) PARTITION BY RANGE (id);"
    "CREATE TABLE rv3.accounts_2024 PARTITION OF rv3.accounts FOR VALUES FROM (0) TO (1000);"
    f"INSERT INTO rv3.accounts VALUES (1, '{SECRET}');"
    "GRANT SELECT ON ALL TABLES IN SCHEMA rv3 TO app;"
)


@pytest.fixture
def rules_gateway(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    with rules_gateway_over(
        tmp_path,
        upstream,
        schema_sql=SETUP,
        policies=RULES_POLICY,
        drop_sql="DROP SCHEMA IF EXISTS rv3 CASCADE",
    ) as running:
        yield running


# ------------------------------------------------------------------------------------------ column rules


async def test_a_view_over_the_ruled_table_hides_the_column(rules_gateway: RunningGateway) -> None:
    """A view's fields carry the view's OID, not the base table's: a view is left unresolved, so a rule
    naming the base table applies to the view's columns by name (as to computed columns)."""
    direct = await fetch_row(rules_gateway, "SELECT ssn, note FROM rv3.people")
    assert direct["ssn"] != SSN and direct["note"] != SECRET  # the rule works on the table itself
    through_view = await fetch_row(rules_gateway, "SELECT ssn, note FROM rv3.people_directory")
    assert through_view["ssn"] != SSN, "rv3.people.ssn read unmasked through a view"
    assert through_view["note"] != SECRET, "rv3.people.note read unmasked through a view"


async def test_a_partition_of_the_ruled_table_hides_the_column(rules_gateway: RunningGateway) -> None:
    """`rv3.accounts.secret` names a partitioned table; its rows live in partitions, which can be selected
    directly. The field then carries the partition's OID: its ancestors must be known."""
    parent = await fetch_row(rules_gateway, "SELECT secret FROM rv3.accounts")
    assert parent["secret"] != SECRET
    partition = await fetch_row(rules_gateway, "SELECT secret FROM rv3.accounts_2024")
    assert partition["secret"] != SECRET, "rv3.accounts.secret read unmasked from a partition"


def test_a_whole_row_reference_carries_the_ruled_column(rules_gateway: RunningGateway) -> None:
    """`SELECT p FROM rv3.people p` is a field whose table OID is rv3.people (column number 0): its composite
    text carries every column, so a rule naming any of them masks the whole value."""
    client = RawClient(rules_gateway.host, rules_gateway.port)
    try:
        client.login("appdb", rules_gateway.token())
        client.send(Query("SELECT p FROM rv3.people p").encode())
        messages = client.read_until_ready()
    finally:
        client.close()
    values = [value for m in messages if isinstance(m, DataRow) for value in m.values]
    assert values, f"no rows came back: {messages}"
    assert not any(SECRET.encode() in (value or b"") for value in values), (
        "rv3.people.note read unmasked inside a whole-row value"
    )


async def test_a_table_swapped_in_by_rename_is_masked(
    rules_gateway: RunningGateway, upstream: UpstreamPostgres
) -> None:
    """A nightly rebuild loads rv3.people_new and renames it over rv3.people. The catalog the gateway loaded
    before names that OID rv3.people_new: the next session must see the new name (the catalog's fingerprint
    changed), or the rule would miss the real rv3.people.ssn."""
    upstream.execute(
        "CREATE TABLE rv3.people_new (id int, ssn text, note text);"
        f"INSERT INTO rv3.people_new VALUES (2, '{SSN}', '{SECRET}');"
        "GRANT SELECT ON rv3.people_new TO app;"
    )
    before = await fetch_row(rules_gateway, "SELECT ssn FROM rv3.people")  # this session loads the catalog
    assert before["ssn"] != SSN
    upstream.execute("DROP TABLE rv3.people CASCADE; ALTER TABLE rv3.people_new RENAME TO people;")
    after = await fetch_row(rules_gateway, "SELECT ssn, note FROM rv3.people")
    assert after["ssn"] != SSN and after["note"] != SECRET, "rv3.people read unmasked after a table swap"


def test_rows_never_described_end_the_session_under_column_rules(rules_gateway: RunningGateway) -> None:
    """Parse/Bind/Execute/Sync with no Describe: the server sends DataRows with no RowDescription, so which
    columns they hold is unknown and no column rule could be applied: the session ends, nothing leaks."""
    client = RawClient(rules_gateway.host, rules_gateway.port)
    try:
        client.login("appdb", rules_gateway.token())
        client.send(
            Parse("", "SELECT note FROM rv3.people").encode()
            + Bind("", "").encode()
            + Execute("", 0).encode()
            + Sync().encode()
        )
        messages = client.read_until_ready()
    finally:
        client.close()
    values = [value for m in messages if isinstance(m, DataRow) for value in m.values]
    assert SECRET.encode() not in values, "rv3.people.note read unmasked through Parse/Bind/Execute"
    errors = [m for m in messages if isinstance(m, ErrorResponse)]
    assert errors and errors[-1].fields["S"] == "FATAL" and "mask_columns" in errors[-1].fields["M"]
