"""Classifier caches: exact-text and literal-free-shape hits must give exactly what a fresh parse gives."""

from __future__ import annotations

import re

import pytest
from pglast import parser as pg_parser

from proxy.policy import kinds
from proxy.policy.classify import MAX_CACHED_QUERY_CHARS, SqlClassifier
from tests.policy.test_classify_corpus import CORPUS, WRITE_FUNCTIONS


def test_identical_query_string_is_answered_from_the_text_cache() -> None:
    classifier = SqlClassifier()
    first = classifier.classify("SELECT * FROM t WHERE id = 1")
    second = classifier.classify("SELECT * FROM t WHERE id = 1")
    assert second is first
    assert classifier.cache_stats()["text_hits"] == 1
    assert classifier.cache_stats()["misses"] == 1


def test_same_shape_with_other_literals_is_answered_without_a_new_parse() -> None:
    classifier = SqlClassifier()
    for aid in range(1, 50):
        (result,) = classifier.classify(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}")
        assert result.text == f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"
        assert (result.kind, result.tables) == (kinds.READ, ("pgbench_accounts",))
    stats = classifier.cache_stats()
    assert (stats["misses"], stats["shape_hits"]) == (1, 48)


@pytest.mark.parametrize(
    ("first", "second", "second_kind"),
    [
        (
            "SELECT set_config('application_name', 'x', false)",
            "SELECT set_config('role', 'x', false)",
            kinds.DANGEROUS_FUNCTION,
        ),
        (
            "SELECT set_config('role', 'x', false)",
            "SELECT set_config('application_name', 'x', false)",
            kinds.SESSION,
        ),
        (
            "SELECT set_config('search_path', 'app', false)",
            "SELECT set_config('search_path', 'evil, pg_catalog', false)",
            kinds.DANGEROUS_FUNCTION,
        ),
        ("BEGIN READ ONLY", "BEGIN READ WRITE", kinds.TRANSACTION),
        ("SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'", kinds.DCL),
        ("SET TRANSACTION READ ONLY", "SET TRANSACTION READ WRITE", kinds.TRANSACTION),
        ("DELETE FROM t WHERE false", "DELETE FROM t WHERE true", kinds.WRITE),
    ],
)
def test_literal_that_matters_is_never_answered_from_a_shared_fingerprint(
    first: str, second: str, second_kind: str
) -> None:
    # pg_query's fingerprint (and normalised text) ignore literal values, so these pairs collide.
    assert pg_parser.fingerprint(first) == pg_parser.fingerprint(second)
    classifier = SqlClassifier()
    fresh = SqlClassifier(cache_size=0)
    classifier.classify(first)
    (result,) = classifier.classify(second)
    assert result == fresh.classify(second)[0]
    assert result.kind == second_kind


def test_begin_read_write_keeps_its_flag_after_begin_read_only_was_cached() -> None:
    classifier = SqlClassifier()
    classifier.classify("BEGIN READ ONLY")
    (result,) = classifier.classify("BEGIN READ WRITE")
    assert {kinds.READ_WRITE, kinds.CHANGES_READ_ONLY} <= result.flags


def test_schema_qualified_tables_survive_the_shape_cache() -> None:
    # The fingerprint ignores schema names; the shape cache must not report the wrong table.
    assert pg_parser.fingerprint("DELETE FROM log WHERE id = 1") == pg_parser.fingerprint(
        "DELETE FROM audit.log WHERE id = 2"
    )
    classifier = SqlClassifier()
    classifier.classify("DELETE FROM log WHERE id = 1")
    (result,) = classifier.classify("DELETE FROM audit.log WHERE id = 2")
    assert result.tables == ("audit.log",)


@pytest.mark.parametrize(
    ("first", "second", "text"),
    [
        ("  \n\tSELECT 1  \n", "  \n\tSELECT 2  \n", "SELECT 2"),
        ("SELECT 1;", "SELECT 2;", "SELECT 2"),
        ("SELECT 1 -- one", "SELECT 2 -- one", "SELECT 2 -- one"),
        ("/* c */ SELECT 1", "/* c */ SELECT 2", "SELECT 2"),
        ("SELECT ';'", "SELECT ';;'", "SELECT ';;'"),
    ],
)
def test_shape_hit_text_is_the_statement_text_a_fresh_parse_gives(first: str, second: str, text: str) -> None:
    classifier = SqlClassifier()
    classifier.classify(first)
    (result,) = classifier.classify(second)
    assert classifier.cache_stats()["shape_hits"] == 1
    assert result.text == text == SqlClassifier(cache_size=0).classify(second)[0].text


def test_multi_statement_shape_hit_has_each_statement_text() -> None:
    classifier = SqlClassifier()
    classifier.classify("SELECT 1; UPDATE t SET a = 2 WHERE id = 3")
    results = classifier.classify("SELECT 10; UPDATE t SET a = 20 WHERE id = 30")
    assert classifier.cache_stats()["shape_hits"] == 1
    assert [r.text for r in results] == ["SELECT 10", "UPDATE t SET a = 20 WHERE id = 30"]
    assert [r.kind for r in results] == [kinds.READ, kinds.WRITE]


def test_only_literal_free_reads_and_writes_enter_the_shape_cache() -> None:
    classifier = SqlClassifier()
    for sql in (
        "SET a.b = 1",
        "EXPLAIN SELECT 1",
        "COPY t TO STDOUT",
        "DROP TABLE t",
        "SELECT set_config('a', 'b', 1)",
    ):
        classifier.classify(sql)
    assert classifier.cache_stats()["shape_entries"] == 0
    classifier.classify("SELECT 1; DELETE FROM t WHERE id = 2")
    assert classifier.cache_stats()["shape_entries"] == 1


def _shift_numbers(sql: str) -> str:
    return re.sub(r"\b\d+\b", lambda match: str(int(match.group()) + 7), sql)


def test_every_corpus_statement_gives_the_same_answer_cold_by_text_and_by_shape() -> None:
    cached = SqlClassifier(write_functions=WRITE_FUNCTIONS)
    cold = SqlClassifier(write_functions=WRITE_FUNCTIONS, cache_size=0)
    for sql, _, _ in CORPUS:
        variant = _shift_numbers(sql)
        assert cached.classify(sql) == cold.classify(sql), sql
        assert cached.classify(sql) == cold.classify(sql), sql  # now from the text cache
        assert cached.classify(variant) == cold.classify(variant), variant  # often from the shape cache
    assert cached.cache_stats()["shape_hits"] > 20


def test_caches_are_bounded_least_recently_used() -> None:
    classifier = SqlClassifier(cache_size=3)
    classifier.classify("SELECT 1 FROM a")
    for table in ("b", "c", "d", "e"):
        classifier.classify("SELECT 1 FROM a")  # keep "a" recently used
        classifier.classify(f"SELECT 1 FROM {table}")
    stats = classifier.cache_stats()
    assert stats["text_entries"] == 3
    assert stats["shape_entries"] == 3
    hits_before = classifier.cache_stats()["text_hits"]
    classifier.classify("SELECT 1 FROM a")
    assert classifier.cache_stats()["text_hits"] == hits_before + 1


def test_cache_size_zero_disables_caching() -> None:
    classifier = SqlClassifier(cache_size=0)
    classifier.classify("SELECT 1")
    classifier.classify("SELECT 1")
    stats = classifier.cache_stats()
    assert (stats["misses"], stats["text_entries"], stats["shape_entries"]) == (2, 0, 0)


def test_set_write_functions_replaces_the_set_and_clears_the_caches() -> None:
    classifier = SqlClassifier()
    assert classifier.classify("SELECT touch_row(1)")[0].kind == kinds.READ
    assert classifier.classify("SELECT touch_row(2)")[0].kind == kinds.READ
    classifier.set_write_functions(["touch_row"])
    assert classifier.classify("SELECT touch_row(1)")[0].kind == kinds.WRITE
    assert classifier.classify("SELECT touch_row(3)")[0].kind == kinds.WRITE
    classifier.set_write_functions([])
    assert classifier.classify("SELECT touch_row(1)")[0].kind == kinds.READ


def test_long_query_strings_are_classified_but_not_cached() -> None:
    classifier = SqlClassifier()
    values = ", ".join(f"({n}, 'row {n}')" for n in range(2_000))
    sql = f"INSERT INTO t (id, label) VALUES {values}"
    assert len(sql) > MAX_CACHED_QUERY_CHARS
    assert classifier.classify(sql)[0].kind == kinds.WRITE
    assert classifier.classify(sql)[0].kind == kinds.WRITE
    stats = classifier.cache_stats()
    assert (stats["text_entries"], stats["shape_entries"], stats["misses"]) == (0, 0, 2)


def test_text_that_is_not_a_string_is_opaque() -> None:
    (result,) = SqlClassifier().classify(b"SELECT 1")  # type: ignore[arg-type]
    assert result.kind == kinds.OPAQUE
