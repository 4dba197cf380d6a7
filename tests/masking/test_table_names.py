"""TableNames: the upstream catalog that lets column rules know a result column's table and own name."""

from __future__ import annotations

import pytest

import proxy.masking.table_names as table_names
from proxy.masking.table_names import TableNames


def test_rows_resolve_tables_and_column_numbers_and_bad_rows_are_skipped() -> None:
    tables = TableNames()
    tables.replace(
        [
            ("16389", "crm", "users", "1", "id"),
            ("16389", "crm", "users", "2", "ssn"),
            ("16400", "public", "empty_table", None, None),  # a relation without columns
            ("not-a-number", "x", "y", "1", "z"),
            ("16401", None, "t", "1", "c"),
            ("16402", "s", "t"),  # wrong shape
        ]
    )
    assert tables.resolve(16389) == ("crm", "users")
    assert tables.column_name(16389, 2) == "ssn"
    assert tables.resolve(16400) == ("public", "empty_table")
    assert tables.column_name(16400, 1) is None
    assert tables.resolve(16401) is None and tables.resolve(16402) is None


def test_a_computed_column_is_no_table_and_does_not_make_the_catalog_stale() -> None:
    tables = TableNames()
    tables.replace([("16389", "crm", "users", "1", "id")])
    assert tables.resolve(0) is None
    assert not tables.stale


def test_refresh_is_due_before_the_first_load_after_the_ttl_and_soon_after_an_unknown_oid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = TableNames()
    assert tables.refresh_due()
    tables.replace([])
    loaded = tables.loaded_at
    assert loaded is not None
    assert not tables.refresh_due(loaded + 1)
    assert tables.refresh_due(loaded + table_names.TABLE_NAMES_TTL + 1)
    assert tables.resolve(99999) is None and tables.stale  # a table created since the load
    assert not tables.refresh_due(loaded + table_names.STALE_RELOAD_AFTER / 2)
    assert tables.refresh_due(loaded + table_names.STALE_RELOAD_AFTER + 1)
    tables.replace([("99999", "public", "new_table", "1", "c")])
    assert not tables.stale and tables.resolve(99999) == ("public", "new_table")
