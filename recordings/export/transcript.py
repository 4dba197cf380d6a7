"""A psql-like text transcript of a SQL session: prompts, result tables, tags, errors and hoop's decisions.

Used by the asciicast export so a Postgres session plays back as readable terminal output. Lines end in CRLF
because the text goes straight to a terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recordings import events as ev
from recordings.errors import RecordingFormatError
from recordings.export.jsonvalue import display_text
from recordings.pgwire import decode_datarows

MAX_ROWS_SHOWN = 50
MAX_CELL_WIDTH = 40
NEWLINE = "\r\n"
_RED = "\x1b[31m"
_YELLOW = "\x1b[33m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


# Recorded text comes from agents and databases: it must not drive the viewer's terminal.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(value: Any) -> str:
    """``value`` as text with terminal control characters replaced (newlines and tabs kept)."""
    return _CONTROL_CHARS.sub("\ufffd", display_text(value))


def _cell(value: bytes | None) -> str:
    if value is None:
        return ""
    text = safe_text(value).replace("\n", " ").replace("\t", " ")
    return text if len(text) <= MAX_CELL_WIDTH else text[: MAX_CELL_WIDTH - 1] + "…"


def render_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned table lines the way psql prints them (header, rule, rows)."""
    widths = [len(name) for name in columns]
    for row in rows:
        for position, value in enumerate(row[: len(widths)]):
            widths[position] = max(widths[position], len(value))

    def line(values: list[str]) -> str:
        cells = [f" {value.ljust(width)} " for value, width in zip(values, widths, strict=False)]
        return "|".join(cells).rstrip()

    rule = "+".join("-" * (width + 2) for width in widths)
    return [line(columns), rule, *(line(row) for row in rows)]


@dataclass
class SqlTranscript:
    """Turns SQL session events into terminal text, one event at a time."""

    prompt: str = "=>"
    _columns: list[str] = field(default_factory=list)
    _rows: list[list[str]] = field(default_factory=list)
    _row_total: int = 0
    _decisions: list[str] = field(default_factory=list)

    def feed(self, event: list) -> str:
        """The text to show for ``event`` ("" when it shows nothing)."""
        kind = event[1]
        fields = event[2:]
        if kind == ev.POLICY_DECISION:
            # The gateway may record its decision just before the statement; show it under the statement.
            self._decisions.append(self._decision(fields))
            return ""
        handler = _HANDLERS.get(kind)
        text = handler(self, fields) if handler is not None else ""
        if kind in ev.STATEMENT_KINDS:
            return text + self.finish()
        return self.finish() + text

    def finish(self) -> str:
        """Text still held back (decisions not yet shown)."""
        held, self._decisions = "".join(self._decisions), []
        return held

    def _statement(self, sql: Any, note: str = "") -> str:
        lines = safe_text(sql).strip().splitlines() or [""]
        continuation = "-" + self.prompt[1:] if len(self.prompt) > 1 else "-"
        text = NEWLINE.join(
            (self.prompt if number == 0 else continuation) + " " + line for number, line in enumerate(lines)
        )
        return text + (f"  {_DIM}-- {note}{_RESET}" if note else "") + NEWLINE

    def _query(self, fields: list) -> str:
        self._reset_result()
        return self._statement(fields[0] if fields else "")

    def _parse(self, fields: list) -> str:
        self._reset_result()
        name = safe_text(fields[0]) if fields else ""
        return self._statement(
            fields[1] if len(fields) > 1 else "", f"prepared {name}" if name else "extended"
        )

    def _rowdesc(self, fields: list) -> str:
        self._columns = [safe_text(name) for name in (fields[0] if fields else [])]
        self._rows = []
        self._row_total = 0
        return ""

    def _datarows(self, fields: list) -> str:
        raw = fields[1] if len(fields) > 1 else b""
        count = fields[0] if fields and isinstance(fields[0], int) else 0
        try:
            decoded = decode_datarows(raw) if isinstance(raw, bytes) else []
        except RecordingFormatError:
            decoded = []
        self._row_total += count or len(decoded)
        room = MAX_ROWS_SHOWN - len(self._rows)
        self._rows.extend([_cell(value) for value in row] for row in decoded[: max(room, 0)])
        return ""

    def _complete(self, fields: list) -> str:
        tag = safe_text(fields[0]) if fields else ""
        lines: list[str] = []
        if self._columns:
            lines.extend(render_table(self._columns, self._rows))
            hidden = self._row_total - len(self._rows)
            if hidden > 0:
                lines.append(f"{_DIM}... {hidden} more rows not shown{_RESET}")
            lines.append(f"({self._row_total} row{'' if self._row_total == 1 else 's'})")
        else:
            lines.append(tag)
        self._reset_result()
        return NEWLINE.join(lines) + NEWLINE + NEWLINE

    def _error(self, fields: list, label: str = "ERROR", color: str = _RED) -> str:
        details = fields[0] if fields and isinstance(fields[0], dict) else {}
        severity = safe_text(details.get("S") or label)
        lines = [f"{color}{severity}:  {safe_text(details.get('M'))}{_RESET}"]
        for code, name in (("D", "DETAIL"), ("H", "HINT")):
            if details.get(code):
                lines.append(f"{name}:  {safe_text(details[code])}")
        self._reset_result()
        return NEWLINE.join(lines) + NEWLINE

    def _notice(self, fields: list) -> str:
        return self._error(fields, "NOTICE", _YELLOW)

    def _copy(self, fields: list) -> str:
        direction = safe_text(fields[0]) if fields else "?"
        size = len(fields[1]) if len(fields) > 1 and isinstance(fields[1], bytes) else 0
        return f"{_DIM}-- COPY {direction}: {size} bytes{_RESET}{NEWLINE}"

    def _decision(self, fields: list) -> str:
        detail = fields[0] if fields and isinstance(fields[0], dict) else {}
        decision = safe_text(detail.get("decision"))
        if decision == "allow":
            return ""
        color = _RED if decision == "deny" else _YELLOW
        rule = safe_text(detail.get("rule"))
        kind = safe_text(detail.get("kind"))
        return f"{color}-- hoop: {decision} ({kind}; rule {rule}){_RESET}{NEWLINE}"

    def _approval_requested(self, fields: list) -> str:
        detail = fields[0] if fields and isinstance(fields[0], dict) else {}
        request = safe_text(detail.get("id"))
        return f"{_YELLOW}-- hoop: held for review (request {request}){_RESET}{NEWLINE}"

    def _approval_decided(self, fields: list) -> str:
        detail = fields[0] if fields and isinstance(fields[0], dict) else {}
        state = safe_text(detail.get("state"))
        decider = safe_text(detail.get("decider"))
        reason = safe_text(detail.get("reason"))
        by = f" by {decider}" if decider else ""
        why = f": {reason}" if reason else ""
        color = _YELLOW if state == "approved" else _RED
        return f"{color}-- hoop: request {safe_text(detail.get('id'))} {state}{by}{why}{_RESET}{NEWLINE}"

    def _mask(self, fields: list) -> str:
        counts = fields[0] if fields and isinstance(fields[0], dict) else {}
        counts = {entity: count for entity, count in counts.items() if count}
        if not counts:
            return ""
        summary = ", ".join(f"{safe_text(k)}={safe_text(v)}" for k, v in sorted(counts.items(), key=str))
        return f"{_DIM}-- masked: {summary}{_RESET}{NEWLINE}"

    def _end(self, fields: list) -> str:
        detail = fields[0] if fields and isinstance(fields[0], dict) else {}
        return f"{_DIM}-- session ended: {safe_text(detail.get('reason'))}{_RESET}{NEWLINE}"

    def _reset_result(self) -> None:
        self._columns = []
        self._rows = []
        self._row_total = 0


_HANDLERS = {
    ev.PG_QUERY: SqlTranscript._query,
    ev.PG_PARSE: SqlTranscript._parse,
    ev.PG_ROWDESC: SqlTranscript._rowdesc,
    ev.PG_ROWS: SqlTranscript._datarows,
    ev.PG_COMPLETE: SqlTranscript._complete,
    ev.PG_ERROR: SqlTranscript._error,
    ev.PG_NOTICE: SqlTranscript._notice,
    ev.PG_COPY: SqlTranscript._copy,
    ev.APPROVAL_REQUESTED: SqlTranscript._approval_requested,
    ev.APPROVAL_DECIDED: SqlTranscript._approval_decided,
    ev.MASK_SUMMARY: SqlTranscript._mask,
    ev.SESSION_END: SqlTranscript._end,
}
