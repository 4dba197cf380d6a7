"""TableNames: the upstream catalog that lets column rules know a result column's table and own name."""

from __future__ import annotations

from proxy.masking.table_names import TableNames


def catalog() -> TableNames:
    tables = TableNames()
    tables.replace(
        [
            ("t", "16389", "crm", "users", "r"),
            ("c", "16389", "1", "id", None),
            ("c", "16389", "2", "ssn", None),
            ("t", "16390", "crm", "accounts", "p"),
            ("t", "16391", "crm", "accounts_2024", "r"),
            ("c", "16391", "1", "secret", None),
            ("a", "16391", "crm", "accounts", "1"),
            ("t", "16392", "crm", "users_view", "v"),
            ("c", "16392", "1", "ssn", None),
            ("t", "16400", "public", "empty_table", "r"),
            ("t", "not-a-number", "x", "y", "r"),
            ("t", "16401", None, "t", "r"),
            ("t", "16402", "s", "t"),  # wrong shape
        ],
        "fingerprint-1",
    )
    return tables


def test_tables_resolve_with_their_columns_and_ancestors() -> None:
    tables = catalog()
    users = tables.resolve(16389)
    assert users is not None and users.names == (("crm", "users"),) and users.columns == ("id", "ssn")
    assert tables.column_name(16389, 2) == "ssn"
    partition = tables.resolve(16391)
    assert partition is not None and partition.names == (("crm", "accounts_2024"), ("crm", "accounts"))
    empty = tables.resolve(16400)
    assert empty is not None and empty.columns == ()


def test_computed_columns_views_unknown_and_unreadable_rows_resolve_to_nothing() -> None:
    tables = catalog()
    assert tables.resolve(0) is None  # a computed column
    assert tables.resolve(16392) is None  # a view: its columns are matched by name
    assert tables.resolve(99999) is None
    assert tables.resolve(16401) is None and tables.resolve(16402) is None


def test_a_reload_is_due_before_the_first_load_and_whenever_the_fingerprint_changes() -> None:
    tables = TableNames()
    assert tables.refresh_due("anything")
    tables.replace([], "fingerprint-1")
    assert not tables.refresh_due("fingerprint-1")
    assert tables.refresh_due("fingerprint-2")
