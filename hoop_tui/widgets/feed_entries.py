"""A live session's recorded events folded into feed entries: statements with their fate (pure, bounded).

No textual here: the session view's feed renders these entries, and tests check them directly. Memory is
bounded whatever the session does: at most `MAX_ENTRIES` entries, `MAX_ROWS` decoded rows and `MAX_NOTES`
notes each, and statement text capped at `MAX_TEXT` characters.
"""

from __future__ import annotations

import re
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hoop_tui.widgets.pg_values import cell_text
from recordings import events as kinds
from recordings.errors import RecordingFormatError
from recordings.pgwire import decode_datarows

MAX_ENTRIES = 1_000
MAX_ROWS = 50
MAX_NOTES = 5
MAX_TEXT = 4_000
MAX_CELL = 200  # characters of a column name
STATEMENT = "statement"  # SQL (pg.query / pg.parse)
COMMAND = "command"  # an SSH exec
ERROR = "error"  # an error with no statement to hang it on (e.g. while the session started)
END = "end"  # the session ended


@dataclass(slots=True)
class FeedEntry:
    """One line of the feed and what happened to it; `version` moves on every change (render caches)."""

    serial: int
    t_us: int
    kind: str
    text: str
    decision: str | None = None  # allow / deny / review
    classification: str | None = None
    rule: str | None = None
    approval_id: str | None = None
    approval_state: str | None = None  # pending / approved / denied / expired / cancelled
    approval_by: str | None = None
    approval_reason: str | None = None
    expires_at: float | None = None
    columns: list[str] = field(default_factory=list)
    type_oids: list[int] = field(default_factory=list)
    raw_rows: list[bytes] = field(default_factory=list)  # DataRow messages kept, decoded when shown
    kept_rows: int = 0  # how many rows `raw_rows` holds (at most MAX_ROWS)
    total_rows: int = 0
    outcome: str | None = None
    failed: bool = False
    notes: list[str] = field(default_factory=list)
    version: int = 0
    _decoded: list[list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def rows(self) -> list[list[str]]:
        """The kept rows as text, decoded on first use: rows nobody looks at are never decoded."""
        if self._decoded is None:
            oids = self.type_oids
            try:
                decoded = [
                    [
                        cell_text(value, oids[index] if index < len(oids) else 0)
                        for index, value in enumerate(row)
                    ]
                    for row in decode_datarows(b"".join(self.raw_rows))
                ]
            except RecordingFormatError:
                decoded = []
            # One line per kept row whatever happened: the feed placed the entry by that count.
            decoded = decoded[: self.kept_rows]
            decoded.extend([["(unreadable row)"]] * (self.kept_rows - len(decoded)))
            self._decoded = decoded
        return self._decoded


# Everything but the line break: recorded text must not send escape sequences to the operator's terminal.
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _text(value: object, limit: int = 500, *, keep_lines: bool = False) -> str:
    """Recorded text made safe to show: control characters replaced, one line unless `keep_lines`, capped."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = _CONTROLS.sub("�", str(value)) if value is not None else ""
    if not keep_lines:
        text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


_MESSAGE_LENGTH = struct.Struct(">i")
_DATA_ROW = 0x44


def _first_data_rows(raw: bytes, count: int) -> tuple[bytes, int]:
    """The first `count` DataRow messages of `raw` and how many there were; a batch of thousands of rows is
    cut without decoding it, and framing that is not DataRows ends the cut."""
    offset = found = 0
    while found < count and offset + 5 <= len(raw) and raw[offset] == _DATA_ROW:
        (length,) = _MESSAGE_LENGTH.unpack_from(raw, offset + 1)
        if length < 6 or offset + 1 + length > len(raw):
            break
        offset += 1 + length
        found += 1
    return raw[:offset], found


def _error_line(fields: object) -> str:
    if not isinstance(fields, dict):
        return "ERROR"
    code = _text(fields.get("C", ""), 10)
    message = _text(fields.get("M", ""), 500)
    return f"ERROR {code}: {message}".strip()


def _field(event: list, index: int) -> Any:
    return kinds.event_field(event, index)


class FeedModel:
    """Apply events in recording order; `entries` holds the newest `max_entries` of them."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: deque[FeedEntry] = deque()
        self.max_entries = max_entries
        self.dropped = 0  # entries that fell off the front
        self.ended: str | None = None  # the session's end reason, once it ended
        self._serial = 0
        self._by_approval: dict[str, FeedEntry] = {}
        self._current: FeedEntry | None = None  # the statement results and decisions belong to

    # -- building entries -------------------------------------------------------------------------------

    def _add(self, t_us: int, kind: str, text: str) -> FeedEntry:
        if len(self.entries) >= self.max_entries:
            gone = self.entries.popleft()
            self.dropped += 1
            if gone.approval_id is not None:
                self._by_approval.pop(gone.approval_id, None)
            if gone is self._current:
                self._current = None
        self._serial += 1
        entry = FeedEntry(self._serial, t_us, kind, text)
        self.entries.append(entry)
        return entry

    @staticmethod
    def _note(entry: FeedEntry, note: str) -> None:
        if len(entry.notes) < MAX_NOTES:
            entry.notes.append(_text(note, 500))
        entry.version += 1

    def apply(self, event: object) -> None:
        """Fold one event in; events of unknown kinds or shapes are skipped, never fatal."""
        if not isinstance(event, (list, tuple)) or len(event) < 2 or not isinstance(event[1], str):
            return
        try:
            t_us = int(event[0])
        except (TypeError, ValueError):
            return
        try:
            self._apply(t_us, event[1], list(event))
        except (TypeError, ValueError, AttributeError, RecordingFormatError):
            return  # a malformed event of a known kind: the feed shows what it can

    def _apply(self, t_us: int, kind: str, event: list) -> None:
        if kind in (kinds.PG_QUERY, kinds.PG_PARSE, kinds.SSH_EXEC):
            text = kinds.statement_text(event)
            entry_kind = COMMAND if kind == kinds.SSH_EXEC else STATEMENT
            self._current = self._add(t_us, entry_kind, _text(text, MAX_TEXT, keep_lines=True))
            return
        if kind == kinds.POLICY_DECISION:
            self._decided_by_policy(_field(event, 0))
        elif kind == kinds.APPROVAL_REQUESTED:
            self._approval_requested(t_us, _field(event, 0))
        elif kind == kinds.APPROVAL_DECIDED:
            self._approval_decided(_field(event, 0))
        elif kind == kinds.PG_ROWDESC:
            if self._current is not None:
                self._current.columns = [_text(name, MAX_CELL) for name in _field(event, 0) or ()]
                oids = _field(event, 1)
                self._current.type_oids = [oid if isinstance(oid, int) else 0 for oid in oids or ()]
                self._current.version += 1
        elif kind == kinds.PG_ROWS:
            self._rows(int(_field(event, 0) or 0), _field(event, 1))
        elif kind == kinds.PG_COMPLETE:
            self._outcome(t_us, _text(_field(event, 0), 200), failed=False)
        elif kind == kinds.PG_ERROR:
            self._outcome(t_us, _error_line(_field(event, 0)), failed=True)
        elif kind == kinds.PG_NOTICE and self._current is not None:
            fields = _field(event, 0)
            message = fields.get("M", "") if isinstance(fields, dict) else ""
            self._note(self._current, f"notice: {_text(message, 500)}")
        elif kind == kinds.SSH_EXIT:
            self._outcome(t_us, f"exit {_field(event, 0)}", failed=_field(event, 0) not in (0, None))
        elif kind == kinds.MASK_SUMMARY and self._current is not None:
            counts = _field(event, 0)
            if isinstance(counts, dict) and counts:
                masked = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
                self._note(self._current, f"masked: {masked}")
        elif kind == kinds.SESSION_END:
            end = _field(event, 0)
            reason = _text(end.get("reason") if isinstance(end, dict) else end, 500) or "ended"
            self.ended = reason
            self._add(t_us, END, reason)
            self._current = None

    def _decided_by_policy(self, decision: object) -> None:
        if self._current is None or not isinstance(decision, dict):
            return
        entry = self._current
        entry.decision = _text(decision.get("decision"), 20) or None
        entry.classification = _text(decision.get("kind"), 50) or None
        entry.rule = _text(decision.get("rule"), 200) or None
        flags = decision.get("flags")
        if flags and isinstance(flags, (list, tuple)):
            entry.classification = f"{entry.classification} ({', '.join(_text(f, 40) for f in flags[:5])})"
        entry.version += 1

    def _approval_requested(self, t_us: int, request: object) -> None:
        if not isinstance(request, dict) or not isinstance(request.get("id"), str):
            return
        entry = self._current
        if entry is None or entry.approval_id is not None:
            entry = self._add(t_us, STATEMENT, _text(request.get("statement"), MAX_TEXT, keep_lines=True))
            entry.decision = "review"
        entry.approval_id = request["id"]
        entry.approval_state = "pending"
        expires = request.get("expires_at")
        entry.expires_at = float(expires) if isinstance(expires, (int, float)) else None
        entry.version += 1
        self._by_approval[request["id"]] = entry

    def _approval_decided(self, decided: object) -> None:
        if not isinstance(decided, dict):
            return
        entry = self._by_approval.get(decided.get("id"))  # type: ignore[arg-type]
        if entry is None:
            return
        entry.approval_state = _text(decided.get("state"), 20) or None
        entry.approval_by = _text(decided.get("decider"), 200) or None
        entry.approval_reason = _text(decided.get("reason"), 500) or None
        entry.version += 1

    def _rows(self, count: int, raw: object) -> None:
        entry = self._current
        if entry is None:
            return
        entry.total_rows += max(count, 0)
        room = MAX_ROWS - entry.kept_rows
        if room > 0 and isinstance(raw, bytes):
            kept, found = _first_data_rows(raw, room)
            if found:
                entry.raw_rows.append(kept)
                entry.kept_rows += found
                entry._decoded = None
        entry.version += 1

    def _outcome(self, t_us: int, text: str, *, failed: bool) -> None:
        entry = self._current
        if entry is None:
            entry = self._add(t_us, ERROR, text)
            entry.failed = failed
            return
        # A simple Query may hold several statements: each completes in turn.
        entry.outcome = text if entry.outcome is None else _text(f"{entry.outcome}; {text}", 500)
        entry.failed = entry.failed or failed
        entry.version += 1
