"""Hot-path shortcuts give what the plain code gives: audit lines, the classifier's number-blind key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.audit import AuditLog
from proxy.policy.classify import _fast_key

# The number pattern as first written (look-behind in front): the reference the faster form must match.
_REFERENCE_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
SQL_PIECES = st.text(alphabet=st.sampled_from(list("0123456789.eE+-_ aZx,;()=٣'\"$")), max_size=40)


@settings(max_examples=500, deadline=None)
@given(text=SQL_PIECES)
def test_the_fast_key_replaces_numbers_as_the_reference_pattern_does(text: str) -> None:
    sql = "SELECT * FROM t WHERE a = " + text
    key = _fast_key(sql)
    if key is not None:
        assert key == _REFERENCE_NUMBER.sub("?", sql)


def test_pgbench_statements_share_one_key() -> None:
    keys = {_fast_key(f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};") for aid in (1, 42, 999999)}
    assert keys == {"SELECT abalance FROM pgbench_accounts WHERE aid = ?;"}


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
KEYS = st.sampled_from(["at", "gateway", "session", "identity", "statement", "kind", "x", "é"])


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=2e9, allow_nan=False),
            st.sampled_from([0, 1, 2]),
            st.dictionaries(KEYS, JSON_SCALARS, max_size=4),
        ),
        max_size=8,
    ),
    contexts=st.lists(
        st.dictionaries(KEYS, JSON_SCALARS | st.lists(st.text(max_size=4)), max_size=4),
        min_size=2,
        max_size=2,
    ),
)
def test_audit_lines_are_the_merged_records_as_json(
    tmp_path_factory: Any, records: list[tuple[float, int, dict[str, Any]]], contexts: list[dict[str, Any]]
) -> None:
    directory: Path = tmp_path_factory.mktemp("audit")
    audit = AuditLog(directory, "gw-1", durable=False)
    shared = [contexts[0], contexts[1], None]
    batch = [(at, shared[which], record) for at, which, record in records]
    audit._write(batch)
    written = audit.current_path().read_text(encoding="utf-8").splitlines() if batch else []
    expected = [
        json.dumps(
            {"at": at, "gateway": "gw-1", **(context or {}), **record}, separators=(",", ":"), default=str
        )
        for at, context, record in batch
    ]
    assert written == expected


PER_STATEMENT_RECORDS = st.builds(
    lambda action, decision, kind, rule, text: {
        "action": action, "decision": decision, "kind": kind, "rule": rule, action: text,
    },
    st.sampled_from(["statement", "command"]),
    st.sampled_from(["allow", "deny", "review"]),
    st.sampled_from(["read", "write", "opaque"]),
    st.none() | st.text(max_size=6),
    st.text(max_size=12),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(PER_STATEMENT_RECORDS | st.dictionaries(KEYS, JSON_SCALARS, max_size=4), max_size=10),
    context=st.none() | st.dictionaries(KEYS, JSON_SCALARS, max_size=3),
)
def test_per_statement_records_from_cached_prefixes_are_the_same_json(
    tmp_path_factory: Any, records: list[dict[str, Any]], context: dict[str, Any] | None
) -> None:
    directory: Path = tmp_path_factory.mktemp("audit")
    audit = AuditLog(directory, "gw-1", durable=False)
    batch = [(1.5, context, record) for record in records]
    audit._write(batch)
    audit._write(batch)  # the second time every prefix comes from the cache
    written = audit.current_path().read_text(encoding="utf-8").splitlines() if batch else []
    expected = [
        json.dumps(
            {"at": at, "gateway": "gw-1", **(context or {}), **record}, separators=(",", ":"), default=str
        )
        for at, context, record in batch
    ]
    assert written == expected * 2
