"""One row per statement or command: pairs each with its policy decision, approval, result and masking.

The proxy emits, per request, a statement event (``pg.query``, ``pg.parse`` or ``ssh.exec``), one
``policy.decision`` per statement it holds (several for a multi-statement simple query), perhaps an approval
pair, then results (``pg.rows``/``pg.complete``/``pg.error``, or ``ssh.exit``) and ``mask.summary``. The
decision may come just before or just after the statement event; both orders are handled. Results are matched
to a request's statements in order, since PostgreSQL answers them in order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from recordings import events as ev
from recordings.export.jsonvalue import display_text

_TAG_COUNT = re.compile(r"(\d+)$")


@dataclass
class StatementRow:
    """What happened to one statement or command."""

    t_us: int
    statement: str
    kind: str = ""
    decision: str = ""
    rule: str = ""
    approval_id: str = ""
    approval_state: str = ""
    approver: str = ""
    rows: int | None = None
    result: str = ""
    error: str = ""
    masked: Counter[str] = field(default_factory=Counter)

    def masked_text(self) -> str:
        return ";".join(f"{entity}={count}" for entity, count in sorted(self.masked.items()) if count)


@dataclass
class _Request:
    text: str | None
    t_us: int
    rows: list[StatementRow] = field(default_factory=list)
    answered: int = 0
    finished: bool = False

    def result_row(self) -> StatementRow:
        if not self.rows:
            self.rows.append(StatementRow(self.t_us, self.text or ""))
        return self.rows[min(self.answered, len(self.rows) - 1)]


class StatementTracker:
    """Feed events in order; completed rows come out of :meth:`feed` and :meth:`finish`."""

    def __init__(self) -> None:
        self._current: _Request | None = None
        self._by_approval: dict[str, StatementRow] = {}

    def feed(self, event: list) -> list[StatementRow]:
        kind = event[1]
        t_us = event[0]
        detail = ev.event_field(event, 0)
        if kind in ev.STATEMENT_KINDS:
            return self._statement(t_us, display_text(ev.statement_text(event)))
        if kind == ev.POLICY_DECISION and isinstance(detail, dict):
            return self._decision(t_us, detail)
        request = self._current
        if kind == ev.APPROVAL_REQUESTED and isinstance(detail, dict):
            self._approval_requested(detail)
        elif kind == ev.APPROVAL_DECIDED and isinstance(detail, dict):
            row = self._by_approval.get(display_text(detail.get("id")))
            if row is not None:
                row.approval_state = display_text(detail.get("state"))
                row.approver = display_text(detail.get("decider"))
        elif request is None:
            return []
        elif kind == ev.PG_ROWS:
            row = request.result_row()
            count = detail if isinstance(detail, int) else 0
            row.rows = (row.rows or 0) + count
        elif kind == ev.PG_COMPLETE:
            row = request.result_row()
            row.result = display_text(detail)
            match = _TAG_COUNT.search(row.result)
            if row.rows is None and match and not row.result.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                row.rows = int(match.group(1))
            request.answered += 1
            request.finished = request.answered >= len(request.rows)
        elif kind == ev.PG_ERROR:
            row = request.result_row()
            fields = detail if isinstance(detail, dict) else {}
            row.error = f"{display_text(fields.get('C'))}: {display_text(fields.get('M'))}".strip(": ")
            request.finished = True  # PostgreSQL skips the rest of a failed simple query
        elif kind == ev.SSH_EXIT:
            request.result_row().result = f"exit {display_text(detail)}"
            request.finished = True
        elif kind == ev.MASK_SUMMARY and isinstance(detail, dict):
            row = (
                request.rows[min(max(request.answered - 1, 0), len(request.rows) - 1)]
                if request.rows
                else None
            )
            row = row or request.result_row()
            for entity, count in detail.items():
                if isinstance(count, int):
                    row.masked[display_text(entity)] += count
        return []

    def finish(self) -> list[StatementRow]:
        return self._close()

    def _close(self) -> list[StatementRow]:
        request, self._current = self._current, None
        if request is None:
            return []
        if not request.rows and request.text is not None:
            request.rows.append(StatementRow(request.t_us, request.text))
        return request.rows

    def _statement(self, t_us: int, text: str) -> list[StatementRow]:
        request = self._current
        if (
            request is not None
            and request.text is None
            and all(row.statement in text for row in request.rows)
        ):
            request.text = text  # the decisions came first; this is their statement event
            return []
        done = self._close()
        self._current = _Request(text, t_us)
        return done

    def _decision(self, t_us: int, detail: dict[str, Any]) -> list[StatementRow]:
        done: list[StatementRow] = []
        statement = display_text(detail.get("statement"))
        request = self._current
        belongs = (
            request is not None
            and not request.finished
            and request.answered == 0
            and (request.text is None or not statement or statement in request.text)
        )
        if request is None or not belongs:
            done = self._close()
            request = self._current = _Request(None, t_us)
        request.rows.append(
            StatementRow(
                t_us,
                statement or request.text or "",
                kind=display_text(detail.get("kind")),
                decision=display_text(detail.get("decision")),
                rule=display_text(detail.get("rule")),
            )
        )
        return done

    def _approval_requested(self, detail: dict[str, Any]) -> None:
        request = self._current
        if request is None:
            return
        statement = display_text(detail.get("statement"))
        candidates = [row for row in request.rows if not row.approval_id]
        matching = [row for row in candidates if row.statement == statement] or candidates
        if matching:
            matching[0].approval_id = display_text(detail.get("id"))
            self._by_approval[matching[0].approval_id] = matching[0]


def statement_rows(events: Iterable[list]) -> Iterator[StatementRow]:
    """The statement rows of one session's events, in order."""
    tracker = StatementTracker()
    for event in events:
        yield from tracker.feed(event)
    yield from tracker.finish()
