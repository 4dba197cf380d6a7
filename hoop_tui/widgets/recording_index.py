"""What the player needs from a recording without holding its events: statements and their results.

Pure functions over a `RecordingReader` (no textual): the statement scan keeps one small tuple per statement;
a statement's result is read on demand, capped, from the events after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from recordings import events as kinds
from recordings.pgwire import decode_datarows
from recordings.reader import RecordingReader

STATEMENT_KINDS = (kinds.PG_QUERY, kinds.PG_PARSE, kinds.SSH_EXEC)
RESULT_ROW_LIMIT = 500

Mask = Callable[[str], str]


def no_mask(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement or command: where it is in the file and what it said."""

    event_index: int
    t_us: int
    text: str


@dataclass
class StatementResult:
    """The (capped) result of one statement: column names, decoded rows, and how it ended."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    outcome: str = ""


def index_statements(reader: RecordingReader, mask: Mask = no_mask) -> list[Statement]:
    """Every statement of the recording in order (text through `mask`); one pass, events are not kept."""
    statements: list[Statement] = []
    event_index = 0
    for _, chunk in reader.iter_chunks():
        for event in chunk:
            kind = event[1]
            if kind in STATEMENT_KINDS:
                text = event[3] if kind == kinds.PG_PARSE else event[2]
                if isinstance(text, bytes):
                    text = text.decode("utf-8", "replace")
                statements.append(Statement(event_index, int(event[0]), mask(str(text))))
            event_index += 1
    return statements


def _cell(value: bytes | None, mask: Mask) -> str:
    return "NULL" if value is None else mask(value.decode("utf-8", "replace"))


def _error_text(fields: dict) -> str:
    code = fields.get("C", "")
    message = fields.get("M", "")
    return f"ERROR {code}: {message}".strip()


def read_result(
    reader: RecordingReader, start_index: int, end_index: int, mask: Mask = no_mask
) -> StatementResult:
    """The result of the statement at event `start_index`, reading events up to `end_index` (exclusive);
    every cell and message goes through `mask`."""
    result = StatementResult()
    for index in range(start_index + 1, min(end_index, reader.event_count)):
        event = reader.event_at(index)
        kind = event[1]
        if kind == kinds.PG_ROWDESC:
            result.columns = [str(name) for name in event[2]]
        elif kind == kinds.PG_ROWS:
            result.total_rows += int(event[2])
            room = RESULT_ROW_LIMIT - len(result.rows)
            if room > 0:
                decoded = decode_datarows(event[3])[:room]
                result.rows.extend([_cell(value, mask) for value in row] for row in decoded)
        elif kind == kinds.PG_COMPLETE:
            result.outcome = str(event[2])
        elif kind == kinds.PG_ERROR:
            result.outcome = mask(_error_text(event[2]))
        elif kind == kinds.APPROVAL_DECIDED and isinstance(event[2], dict):
            decided = event[2]
            reason = decided.get("reason") or ""
            result.outcome = mask(f"{decided.get('state')} by {decided.get('decider')}: {reason}")
        elif kind == kinds.SSH_EXIT:
            result.outcome = f"exit {event[2]}"
    return result
