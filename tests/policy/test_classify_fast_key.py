"""The number-blind first cache key: only where tokens are unambiguous, and never across a verdict change."""

from __future__ import annotations

import pytest

from proxy.policy.classify import SqlClassifier, _fast_key


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        (
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?;",
        ),
        ("SELECT t1.x FROM t1 WHERE y > 1.5e3", "SELECT t1.x FROM t1 WHERE y > ?"),
        ("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT ? OFFSET ?"),
    ],
)
def test_numbers_become_placeholders_but_identifiers_do_not(sql: str, key: str) -> None:
    assert _fast_key(sql) == key


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '1'",
        'SELECT "x1" FROM t',
        "SELECT $1",
        "SELECT 1 -- comment",
        "SELECT /* 1 */ 2",
        "SELECT 1; DELETE FROM t",
        "SELECT E'\\x31'",
        "SELECT $$1$$",
    ],
)
def test_text_with_quotes_comments_or_several_statements_gets_no_fast_key(sql: str) -> None:
    assert _fast_key(sql) is None


def test_fast_key_hits_keep_the_verdict_and_the_statement_text() -> None:
    classifier = SqlClassifier()
    first = classifier.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
    second = classifier.classify("SELECT abalance FROM pgbench_accounts WHERE aid = 99999;")
    assert first[0].kind == second[0].kind == "read"
    assert second[0].text == "SELECT abalance FROM pgbench_accounts WHERE aid = 99999"
    assert second == SqlClassifier(cache_size=0).classify(
        "SELECT abalance FROM pgbench_accounts WHERE aid = 99999;"
    )
    assert classifier.cache_stats()["fast_key_entries"] == 1


def test_literal_dependent_verdicts_are_never_fast_keyed() -> None:
    classifier = SqlClassifier()
    classifier.classify("SELECT nextval(12345)")
    assert classifier.classify("SELECT nextval(1)")[0].kind == "write"
    classifier.classify("SELECT pg_cancel_backend(1)")
    assert (
        classifier.classify("SELECT pg_cancel_backend(2)")[0].kind
        == SqlClassifier(cache_size=0).classify("SELECT pg_cancel_backend(2)")[0].kind
    )
