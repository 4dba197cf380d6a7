"""ColumnRules: policy `mask_columns` globs over [schema.]table.column, with an optional entity per rule."""

from __future__ import annotations

import pytest

from proxy.masking.columns import ColumnRules


@pytest.mark.parametrize(
    ("patterns", "table", "column", "expected"),
    [
        (["*.email"], "users", "email", True),
        (["*.email"], "public.users", "EMAIL", True),
        (["*.email"], "users", "email_verified", False),
        (["users.ssn"], "users", "ssn", True),
        (["users.ssn"], "public.users", "ssn", True),
        (["users.ssn"], "orders", "ssn", False),
        (["users.ssn"], None, "ssn", True),  # unknown table (an expression): fail closed
        (["public.users.*"], "public.users", "anything", True),
        (["public.users.*"], "audit.users", "anything", False),
        (["public.users.*"], "users", "anything", True),  # no schema given: any schema
        (["public.users.*"], "public.orders", "anything", False),
        (["notes"], "tickets", "notes", True),
        (["notes"], None, "notes", True),
        (["card_*"], "payments", "card_number", True),
        (["pay?ents.card_number"], "payments", "card_number", True),
        ([], "users", "email", False),
    ],
)
def test_matches(patterns: list[str], table: str | None, column: str, expected: bool) -> None:
    assert ColumnRules(patterns).matches(table, column) is expected


def test_each_rule_names_its_entity_and_the_first_matching_rule_wins() -> None:
    rules = ColumnRules(["users.ssn=us_ssn", "*.email = email", "users.*", "*.token=custom:api_token"])
    assert rules.entity_for("users", "ssn") == "us_ssn"
    assert rules.entity_for("people", "email") == "email"
    assert rules.entity_for("users", "notes") == "masked"
    assert rules.entity_for("sessions", "token") == "custom:api_token"
    assert rules.entity_for("orders", "total") is None
    assert rules.entities == {"us_ssn", "email", "masked", "custom:api_token"}
    assert bool(rules) and not ColumnRules([])


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a.b.c.d", "schema.table.column"),
        ("users.", "empty name part"),
        (".ssn", "empty name part"),
        ("users.ssn=social", "unknown entity"),
    ],
)
def test_bad_patterns_are_one_clear_error(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnRules([pattern])


def test_a_single_string_is_refused_rather_than_read_as_characters() -> None:
    with pytest.raises(ValueError, match="list"):
        ColumnRules("*.email")
