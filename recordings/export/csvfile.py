"""CSV export: one row per statement or command, with who ran it, what was decided and what came back.

Text cells starting with ``= + - @`` or a tab/CR get a leading ``'`` so spreadsheets show them as text
instead of running them as formulas (recorded statements are written by the agents being audited).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from recordings.export.jsonvalue import display_text
from recordings.export.source import ProgressCallback, event_time, iter_events, started_at
from recordings.export.statements import statement_rows
from recordings.reader import RecordingReader

COLUMNS = (
    "time",
    "session_id",
    "identity",
    "groups",
    "connection",
    "protocol",
    "statement",
    "kind",
    "decision",
    "rule",
    "approval_id",
    "approval_state",
    "approver",
    "rows",
    "result",
    "error",
    "masked",
)


# Spreadsheets run cells that start with these as formulas; recorded text is attacker-controlled.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def new_csv_writer(out: TextIO) -> csv.DictWriter:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    return writer


def export_csv_rows(
    reader: RecordingReader,
    writer: csv.DictWriter,
    on_progress: ProgressCallback | None = None,
    *,
    events: Iterable[list] | None = None,
) -> int:
    """Append ``reader``'s statements to ``writer`` (several recordings share one header); returns rows.

    ``events`` replaces the reader's own event stream, for callers that look at the events too.
    """
    header = reader.header
    start = started_at(reader)
    groups = header.get("groups")
    session = {
        "session_id": display_text(header.get("session_id")),
        "identity": display_text(header.get("identity")),
        "groups": " ".join(display_text(g) for g in groups)
        if isinstance(groups, list)
        else display_text(groups),
        "connection": display_text(header.get("connection")),
        "protocol": display_text(header.get("protocol")),
    }
    count = 0
    for row in statement_rows(events if events is not None else iter_events(reader, on_progress)):
        cells = {
            **session,
            "time": event_time(start, row.t_us),
            "statement": row.statement,
            "kind": row.kind,
            "decision": row.decision,
            "rule": row.rule,
            "approval_id": row.approval_id,
            "approval_state": row.approval_state,
            "approver": row.approver,
            "rows": "" if row.rows is None else row.rows,
            "result": row.result,
            "error": row.error,
            "masked": row.masked_text(),
        }
        writer.writerow({name: _cell(value) for name, value in cells.items()})
        count += 1
    return count
