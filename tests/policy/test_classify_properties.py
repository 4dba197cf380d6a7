"""Property tests: the classifier never raises, fails closed, and is blind to layout, comments and case."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import parser as pg_parser

from proxy.policy import kinds
from proxy.policy.classify import SqlClassifier, StatementClass
from tests.policy.test_classify_corpus import CORPUS, WRITE_FUNCTIONS

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CACHED = SqlClassifier(write_functions=WRITE_FUNCTIONS)
COLD = SqlClassifier(write_functions=WRITE_FUNCTIONS, cache_size=0)

_WORDS = """
SELECT INSERT INTO UPDATE DELETE FROM WHERE SET VALUES WITH AS RETURNING DROP TABLE CREATE ALTER GRANT
REVOKE COPY TO STDIN STDOUT PROGRAM BEGIN COMMIT ROLLBACK EXPLAIN ANALYZE PREPARE EXECUTE DO CALL ROLE
RESET ALL FOR UNION ORDER BY LIMIT t users public pg_read_file nextval set_config bump_counter
( ) , ; * = . :: 'x' 'role' 1 $1 $$a$$ "Q" /*c*/ E'\\'' U&"a"
"""
SQL_WORDS = [*_WORDS.split(), "--c\n", "\n"]


def assert_well_formed(results: tuple[StatementClass, ...]) -> None:
    assert isinstance(results, tuple)
    for result in results:
        assert result.kind in kinds.KINDS
        assert result.flags <= kinds.FLAGS
        assert result.reason
        assert result.transaction_effect is None or result.transaction_effect in kinds.TRANSACTION_EFFECTS


def parses(sql: str) -> bool:
    try:
        pg_parser.parse_sql_json(sql)
    except Exception:
        return False
    return True


@PROPERTY_SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_and_unparseable_text_is_opaque(sql: str) -> None:
    results = CACHED.classify(sql)
    assert_well_formed(results)
    if "\x00" in sql or not parses(sql):
        assert [r.kind for r in results] == [kinds.OPAQUE]


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(SQL_WORDS), max_size=25).map(" ".join))
def test_sql_like_text_is_classified_the_same_cold_and_cached(sql: str) -> None:
    cold = COLD.classify(sql)
    assert_well_formed(cold)
    assert CACHED.classify(sql) == cold
    assert CACHED.classify(sql) == cold


SEPARATORS = [" ", "  ", "\n", "\t", "\r\n", " /* x */ ", "/**/", " /* nested /* comment */ */ ", " --c\n"]


@st.composite
def relaid_statements(draw: st.DrawFn) -> tuple[str, str]:
    """A corpus statement and the same tokens re-joined with other whitespace/comments and keyword case."""
    sql = draw(st.sampled_from([sql for sql, kind, _ in CORPUS if kind != kinds.OPAQUE]))
    pieces: list[str] = [draw(st.sampled_from(SEPARATORS))]
    for token in pg_parser.scan(sql):
        text = sql[token.start : token.end + 1]
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            pieces.append(text + "\n")
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", text):  # keyword or unquoted identifier: case-blind
            text = draw(st.sampled_from([text.lower(), text.upper(), text.swapcase()]))
        pieces.append(text)
        pieces.append(draw(st.sampled_from(SEPARATORS)))
    return sql, "".join(pieces)


def same_meaning(result: StatementClass) -> tuple[object, ...]:
    return (result.kind, result.flags, result.tables, result.functions, result.transaction_effect)


@PROPERTY_SETTINGS
@given(relaid_statements())
def test_layout_comments_and_case_do_not_change_the_classification(pair: tuple[str, str]) -> None:
    original, relaid = pair
    assert [same_meaning(r) for r in COLD.classify(relaid)] == [
        same_meaning(r) for r in COLD.classify(original)
    ]


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from([sql for sql, _, _ in CORPUS if parses(sql)]), min_size=1, max_size=4))
def test_a_multi_statement_string_is_its_statements_classified_one_by_one(statements: list[str]) -> None:
    joined = ";\n".join(statements)
    expected = [same_meaning(COLD.classify(sql)[0]) for sql in statements]
    assert [same_meaning(r) for r in CACHED.classify(joined)] == expected
