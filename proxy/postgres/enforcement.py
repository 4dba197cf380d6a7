"""Per-statement decisions for one session, and the statement that makes the upstream fail the way we decided.

A denied statement is never sent. In its place the relay sends a `DO` block that raises the gateway's
error *inside the upstream*, so the server's own ErrorResponse and ReadyForQuery reach the client: the
client and the server agree on the transaction state (inside BEGIN the upstream transaction fails too,
and an extended-protocol batch is rolled back exactly as PostgreSQL would roll it back).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from proxy.policy.classify import SqlClassifier, StatementClass
from proxy.policy.engine import Decision, SessionPolicy
from proxy.policy.kinds import CHANGES_READ_ONLY, READ_WRITE, severity
from proxy.postgres.messages import Bind, Execute, Parse, Query

DENY_SQLSTATE = "42501"
# Parsing runs on the event loop: a 4 MB statement takes seconds and would stall every session of the
# process. Statements over this size are denied unparsed (bulk data belongs in COPY, which streams).
MAX_CLASSIFIED_STATEMENT = 256 * 1024
_READ_ONLY_FLAGS = frozenset({CHANGES_READ_ONLY, READ_WRITE})


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # allow | deny | review
    kind: str
    rule: str
    statements: tuple[StatementClass, ...]
    decision: Decision | None

    @property
    def flags(self) -> list[str]:
        return sorted({flag for statement in self.statements for flag in statement.flags})


ALLOW_EMPTY = Verdict("allow", "empty", "empty query", (), None)


class StatementGate:
    """Classifies and decides each statement of one session; strictest decision across statements wins."""

    __slots__ = ("classifier", "policy", "read_only")

    def __init__(self, policy: SessionPolicy, classifier: SqlClassifier) -> None:
        self.policy = policy
        self.classifier = classifier
        # When no policy lets this session write, the upstream session is read-only too, and any attempt
        # to lift that is denied (a second wall behind the classifier).
        self.read_only = not policy.allows_writes

    def check(self, sql: str) -> Verdict:
        if len(sql) > MAX_CLASSIFIED_STATEMENT:
            limit = MAX_CLASSIFIED_STATEMENT // 1024
            rule = f"statements over {limit} KiB are not classified; use COPY for bulk data"
            return Verdict("deny", "opaque", rule, (), None)
        return self.decide(self.classifier.classify(sql))

    def decide(self, statements: tuple[StatementClass, ...]) -> Verdict:
        """The verdict for already-classified statements under the policy as it is now (grants change it)."""
        if not statements:
            return ALLOW_EMPTY
        decide = self.policy.decide
        if len(statements) == 1:  # the usual case, without the ranking
            statement = statements[0]
            if not (self.read_only and statement.flags & _READ_ONLY_FLAGS):
                decision = decide(statement.kind, statement.flags)
                return Verdict(decision.action, decision.kind, decision.rule, statements, decision)
        worst: Decision | None = None
        for statement in statements:
            if self.read_only and statement.flags & _READ_ONLY_FLAGS:
                return Verdict(
                    "deny",
                    statement.kind,
                    "the session is read-only (no policy allows writes), so it may not change that",
                    statements,
                    None,
                )
            decision = decide(statement.kind, statement.flags)
            if worst is None or _rank(decision) > _rank(worst):
                worst = decision
        assert worst is not None
        return Verdict(worst.action, worst.kind, worst.rule, statements, worst)

    def check_function_call(self) -> Verdict:
        """Fast-path FunctionCall messages name a function by OID only: opaque, decided as such."""
        decision = self.policy.decide("opaque")
        return Verdict(decision.action, "opaque", decision.rule, (), decision)


_ACTION_ORDER = {"allow": 0, "review": 1, "deny": 2}


def _rank(decision: Decision) -> tuple[int, int]:
    return _ACTION_ORDER[decision.action], severity(decision.kind)


def new_reference() -> str:
    return secrets.token_hex(4)


def denial_message(verdict: Verdict, reference: str) -> str:
    if verdict.action == "review":
        # Only fast-path FunctionCall messages get here: everything else is held for a human instead.
        return (
            f"hoop: statement needs approval ({verdict.kind}: {verdict.rule}), and a fast-path function call "
            f"cannot be held for review, so it is denied [ref {reference}]"
        )
    return f"hoop: statement denied by policy ({verdict.kind}: {verdict.rule}) [ref {reference}]"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def raising_query(message: str, sqlstate: str = DENY_SQLSTATE) -> bytes:
    """A Query message whose execution raises `message` with `sqlstate` in the upstream session."""
    body = f"RAISE EXCEPTION USING ERRCODE = {_sql_literal(sqlstate)}, MESSAGE = {_sql_literal(message)};"
    tag = "$hoop_" + secrets.token_hex(4) + "$"
    return Query(f"DO {tag}BEGIN {body} END{tag}").encode()


def raising_extended(message: str, sqlstate: str = DENY_SQLSTATE) -> bytes:
    """Parse/Bind/Execute (unnamed) of the raising statement, for use inside an extended-protocol batch."""
    sql = Query.decode(raising_query(message, sqlstate)[5:]).sql
    return Parse("", sql).encode() + Bind().encode() + Execute().encode()
