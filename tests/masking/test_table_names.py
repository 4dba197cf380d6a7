"""TableNames: the upstream catalog that lets column rules know a result column's table and own name."""

from __future__ import annotations

import pytest

import proxy.masking.table_names as table_names
from proxy.masking.table_names import TableNames

ROWS = [
    ("t", "16389", "crm", "users", "r"),
    ("c", "16389", "1", "id", None),
    ("c", "16389", "2", "ssn", None),
    ("t", "16390", "crm", "accounts", "p"),
    ("t", "16391", "crm", "accounts_2024", "p"),
    ("t", "16393", "crm", "accounts_2024_q1", "r"),
    ("c", "16393", "1", "secret", None),
    ("a", "16391", "16390", None, None),
    ("a", "16393", "16391", None, None),
    ("t", "16392", "crm", "users_view", "v"),
    ("c", "16392", "1", "ssn", None),
    ("t", "16400", "public", "empty_table", "r"),
    ("t", "not-a-number", "x", "y", "r"),
    ("t", "16401", None, "t", "r"),
    ("t", "16402", "s", "t"),  # wrong shape
]


def catalog() -> TableNames:
    tables = TableNames()
    tables.replace(ROWS, "fingerprint-1", tables.begin_load())
    return tables


def test_tables_resolve_with_their_columns_ancestors_and_descendants() -> None:
    tables = catalog()
    users = tables.resolve(16389)
    assert users is not None and users.names == (("crm", "users"),) and users.columns == ("id", "ssn")
    assert tables.column_name(16389, 2) == "ssn"
    middle = tables.resolve(16391)
    assert middle is not None
    assert middle.names == (("crm", "accounts_2024"), ("crm", "accounts"), ("crm", "accounts_2024_q1"))
    top = tables.resolve(16390)
    assert top is not None and top.names[0] == ("crm", "accounts") and len(top.names) == 3
    empty = tables.resolve(16400)
    assert empty is not None and empty.columns == ()


def test_computed_columns_views_unknown_and_unreadable_rows_resolve_to_no_table() -> None:
    tables = catalog()
    assert tables.resolve(0) is None  # a computed column
    assert tables.resolve(16392) is None  # a view: matched by name...
    assert tables.column_name(16392, 1) == "ssn" and tables.relation_columns(16392) == ("ssn",)  # ...its own
    assert tables.resolve(99999) is None
    assert tables.resolve(16401) is None and tables.resolve(16402) is None


def test_a_changed_fingerprint_makes_the_catalog_unusable_until_reloaded() -> None:
    tables = TableNames()
    assert tables.check("fingerprint-1") and not tables.fresh()
    tables.replace(ROWS, "fingerprint-1", tables.begin_load())
    assert tables.fresh() and not tables.check("fingerprint-1")
    assert tables.check("fingerprint-2") and not tables.fresh()


def test_of_two_overlapping_loads_the_one_begun_later_wins() -> None:
    tables = TableNames()
    first, second = tables.begin_load(), tables.begin_load()
    tables.replace([("t", "1", "s", "newer", "r")], "fingerprint-2", second)
    tables.replace([("t", "1", "s", "older", "r")], "fingerprint-1", first)  # finished last, read earlier
    relation = tables.resolve(1)
    assert (
        relation is not None and relation.names == (("s", "newer"),) and tables.fingerprint == "fingerprint-2"
    )


def test_a_catalog_not_verified_lately_is_not_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = catalog()
    assert tables.fresh()
    monkeypatch.setattr(table_names, "FRESH_SECONDS", -1.0)
    assert not tables.fresh()
