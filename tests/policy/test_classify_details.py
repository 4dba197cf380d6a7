"""Classifier details: statement splitting and texts, tables, functions, transaction effects, reasons."""

from __future__ import annotations

import inspect
import json

import pytest
from pglast import ast as pglast_ast
from pglast import parser as pg_parser

from proxy.policy import classify as classify_module
from proxy.policy import kinds
from proxy.policy.classify import SqlClassifier, StatementClass


@pytest.fixture
def classifier() -> SqlClassifier:
    return SqlClassifier(write_functions=["public.audit_touch"])


def only(classifier: SqlClassifier, sql: str) -> StatementClass:
    (result,) = classifier.classify(sql)
    return result


@pytest.mark.parametrize("sql", ["", "   ", "\n\t", ";", ";;", " ; ; ", "-- only a comment", "/* nothing */"])
def test_no_statement_gives_empty_tuple(classifier: SqlClassifier, sql: str) -> None:
    assert classifier.classify(sql) == ()


def test_multi_statement_string_is_split_with_each_statement_text(classifier: SqlClassifier) -> None:
    sql = "SELECT 1;  /* note */ UPDATE t SET a = 1 ;;\nWITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x"
    results = classifier.classify(sql)
    assert [r.kind for r in results] == [kinds.READ, kinds.WRITE, kinds.WRITE]
    assert [r.text for r in results] == [
        "SELECT 1",
        "UPDATE t SET a = 1",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    ]
    assert kinds.NO_WHERE in results[1].flags
    assert results[2].flags == {kinds.WRITES_IN_CTE, kinds.NO_WHERE}


def test_smuggled_second_statement_is_classified_on_its_own(classifier: SqlClassifier) -> None:
    results = classifier.classify("SELECT * FROM t WHERE id = 1; DROP TABLE users; --")
    assert [r.kind for r in results] == [kinds.READ, kinds.DROP]
    assert results[1].tables == ("users",)


def test_multi_statement_with_a_syntax_error_is_one_opaque_statement(classifier: SqlClassifier) -> None:
    # The server rejects the whole string, so none of it runs; one opaque result covers it.
    results = classifier.classify("SELECT 1; DELETE FROM t WHERE; SELECT 2")
    assert [r.kind for r in results] == [kinds.OPAQUE]
    assert results[0].text == "SELECT 1; DELETE FROM t WHERE; SELECT 2"


def test_statement_text_with_non_ascii_characters(classifier: SqlClassifier) -> None:
    # libpg_query reports byte offsets; texts must still be cut on character boundaries.
    results = classifier.classify("SELECT 'é€😀' AS ü FROM t; DELETE FROM «x» WHERE ü = 1")
    assert [r.text for r in results] == ["SELECT 'é€😀' AS ü FROM t", "DELETE FROM «x» WHERE ü = 1"]
    assert results[1].tables == ("«x»",)


def test_trailing_comment_stays_with_the_last_statement(classifier: SqlClassifier) -> None:
    results = classifier.classify("SELECT 1; SELECT 2 -- done")
    assert [r.text for r in results] == ["SELECT 1", "SELECT 2 -- done"]


def test_tables_are_schema_qualified_as_written_in_source_order(classifier: SqlClassifier) -> None:
    result = only(classifier, "SELECT * FROM public.users u JOIN orders o ON o.uid = u.id, sales.items")
    assert result.tables == ("public.users", "orders", "sales.items")


def test_quoted_table_names_keep_their_case(classifier: SqlClassifier) -> None:
    assert only(classifier, 'SELECT * FROM "Users", "My Schema"."T"').tables == ("Users", "My Schema.T")


def test_cte_names_are_not_tables_but_their_sources_are(classifier: SqlClassifier) -> None:
    result = only(
        classifier, "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN public.recent r ON true"
    )
    assert result.tables == ("orders", "public.recent")


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("INSERT INTO app.t SELECT * FROM u", ("app.t", "u")),
        ("UPDATE t SET a = (SELECT b FROM u) WHERE id = 1", ("t", "u")),
        ("DELETE FROM t USING u WHERE t.id = u.id", ("t", "u")),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", ("t", "s")),
        ("COPY app.t TO STDOUT", ("app.t",)),
        ("TRUNCATE a, b.c", ("a", "b.c")),
        ("DROP TABLE a.b, c", ("a.b", "c")),
        ("LOCK TABLE t", ("t",)),
        ("GRANT SELECT ON t TO bob", ("t",)),
        ("CREATE TABLE n AS SELECT * FROM o", ("n", "o")),
        ("SELECT * INTO n FROM o", ("n", "o")),
        ("ALTER TABLE t ADD COLUMN x int REFERENCES other(id)", ("t", "other")),
        ("VACUUM t, u", ("t", "u")),
        ("SELECT * FROM cat.sch.tab", ("cat.sch.tab",)),
    ],
)
def test_tables_per_statement_type(classifier: SqlClassifier, sql: str, tables: tuple[str, ...]) -> None:
    assert only(classifier, sql).tables == tables


def test_functions_lists_every_call_lowercased_once_in_source_order(classifier: SqlClassifier) -> None:
    result = only(
        classifier,
        "SELECT LOWER(a), pg_catalog.UPPER(b), lower(c), count(*) OVER (ORDER BY now()) "
        "FROM t, LATERAL generate_series(1, 2) WHERE x = ANY(SELECT abs(y) FROM u) ORDER BY md5(a)",
    )
    assert result.functions == ("lower", "pg_catalog.upper", "count", "now", "generate_series", "abs", "md5")


def test_functions_of_sql_syntax_are_reported_as_written(classifier: SqlClassifier) -> None:
    assert only(classifier, "SELECT extract(year FROM now())").functions == ("extract", "now")


def test_functions_include_calls_in_a_plain_explain_that_does_not_run_them(classifier: SqlClassifier) -> None:
    result = only(classifier, "EXPLAIN SELECT pg_read_file('/x'), nextval('s')")
    assert result.kind == kinds.READ
    assert result.functions == ("pg_read_file", "nextval")


@pytest.mark.parametrize(
    ("sql", "effect"),
    [
        ("BEGIN", kinds.BEGIN),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", kinds.BEGIN),
        ("COMMIT", kinds.COMMIT),
        ("END", kinds.COMMIT),
        ("ABORT", kinds.ROLLBACK),
        ("ROLLBACK", kinds.ROLLBACK),
        ("SAVEPOINT a", kinds.SAVEPOINT),
        ("RELEASE a", kinds.RELEASE),
        ("ROLLBACK TO a", kinds.ROLLBACK_TO),
        ("PREPARE TRANSACTION 'x'", kinds.PREPARE),
        ("COMMIT PREPARED 'x'", None),
        ("SET TRANSACTION READ ONLY", None),
    ],
)
def test_transaction_effects(classifier: SqlClassifier, sql: str, effect: str | None) -> None:
    result = only(classifier, sql)
    assert result.kind == kinds.TRANSACTION
    assert result.transaction_effect == effect


def test_non_transaction_statements_have_no_transaction_effect(classifier: SqlClassifier) -> None:
    for result in classifier.classify("SELECT 1; SET a.b = 1; PREPARE p AS SELECT 1; DISCARD ALL"):
        assert result.transaction_effect is None


def test_unparseable_sql_reason_does_not_echo_the_sql(classifier: SqlClassifier) -> None:
    result = only(classifier, "SELECT FROM WHERE 'hunter2-secret")
    assert result.kind == kinds.OPAQUE
    assert "hunter2" not in result.reason
    assert result.reason.startswith("unparseable SQL")


def test_nul_character_is_opaque(classifier: SqlClassifier) -> None:
    # The server stops at NUL; a classifier that read further would judge text that never runs.
    result = only(classifier, "SELECT 1\x00; DROP TABLE t")
    assert result.kind == kinds.OPAQUE


def test_unencodable_text_is_opaque(classifier: SqlClassifier) -> None:
    assert only(classifier, "SELECT '\ud800'").kind == kinds.OPAQUE


def test_very_deep_nesting_fails_closed(classifier: SqlClassifier) -> None:
    depth = 5000
    results = classifier.classify("SELECT " + "(" * depth + "1" + ")" * depth)
    assert len(results) == 1
    assert results[0].kind in (kinds.READ, kinds.OPAQUE)


def test_reasons_explain_the_kind(classifier: SqlClassifier) -> None:
    assert only(classifier, "UPDATE t SET a = 1").reason == "UPDATE without WHERE"
    assert "pg_read_file" in only(classifier, "SELECT pg_read_file('/x')").reason
    assert "PROGRAM" in only(classifier, "COPY t TO PROGRAM 'x'").reason
    assert "audit_touch" in only(classifier, "SELECT audit_touch()").reason


def test_strictest_finding_wins_inside_one_statement(classifier: SqlClassifier) -> None:
    result = only(classifier, "WITH d AS (DELETE FROM t RETURNING *) SELECT pg_read_file('/x'), nextval('s')")
    assert result.kind == kinds.DANGEROUS_FUNCTION
    assert kinds.WRITES_IN_CTE in result.flags


def test_write_functions_match_by_schema(classifier: SqlClassifier) -> None:
    classifier.set_write_functions(["app.touch", "stamp"])
    assert only(classifier, "SELECT app.touch()").kind == kinds.WRITE
    assert only(classifier, "SELECT touch()").kind == kinds.WRITE  # search_path may pick app.touch
    assert only(classifier, "SELECT other.touch()").kind == kinds.READ  # a different function
    assert only(classifier, "SELECT any_schema.stamp()").kind == kinds.WRITE  # configured without schema
    assert only(classifier, "SELECT STAMP()").kind == kinds.WRITE


def test_severity_order_puts_dangerous_function_on_top() -> None:
    assert kinds.strictest_kind(kinds.KINDS) == kinds.DANGEROUS_FUNCTION
    assert kinds.strictest_kind([kinds.READ, kinds.WRITE, kinds.SESSION]) == kinds.WRITE
    assert kinds.strictest_kind([]) is None
    assert kinds.severity("no-such-kind") == kinds.severity(kinds.OPAQUE)
    assert sorted(kinds.KINDS, key=kinds.severity) == list(kinds.KINDS)


def test_a_node_type_nobody_reviewed_makes_the_statement_opaque(
    classifier: SqlClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates a parser upgrade that adds syntax: the new node must not read as harmless.
    tree = {
        "stmts": [
            {"stmt": {"SelectStmt": {"targetList": [{"ResTarget": {"val": {"FutureCallExpr": {"x": 1}}}}]}}}
        ]
    }
    monkeypatch.setattr(pg_parser, "parse_sql_json", lambda sql: json.dumps(tree))
    result = only(classifier, "SELECT future_syntax()")
    assert result.kind == kinds.OPAQUE
    assert "FutureCallExpr" in result.reason


def test_every_statement_type_of_the_parser_is_mapped() -> None:
    statement_types = {
        name
        for name, node in inspect.getmembers(pglast_ast, inspect.isclass)
        if issubclass(node, pglast_ast.Node) and name.endswith("Stmt")
    }
    never_in_a_raw_tree = {"RawStmt", "PLAssignStmt", "SetOperationStmt"}
    assert statement_types - never_in_a_raw_tree <= set(classify_module._STATIC_ACTIONS) | {"CallStmt"}


def test_attribute_notation_does_not_mistake_ordinary_columns_for_calls(classifier: SqlClassifier) -> None:
    result = only(classifier, "SELECT c.lo_bound, c.dblink_url, c.pg_flag FROM config c")
    assert result.kind == kinds.READ
    assert only(classifier, "SELECT ('select 1'::text).dblink").kind == kinds.DANGEROUS_FUNCTION
    assert only(classifier, "SELECT (x).lo_unlink FROM t").kind == kinds.WRITE
