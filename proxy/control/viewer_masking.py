"""Render-time masking for control API viewers: a session's events masked further by the viewer's role.

Recordings hold what the storage policy let through. An auditor who is not an admin sees that masked again
for `[gateway] auditor_mask`'s entities, on the gateway, before an event leaves it: a remote console never
receives what its operator may not see. Masking only replaces more; nothing masked at storage comes back.

Streams are masked as streams: terminal output and input go through a line-buffered masker per stream (a
value split across two events is seen whole) and the screen-level pass (escapes inside a value); what a
stream holds back is flushed as soon as any other kind of event comes. Screen keyframes are masked over the
whole screen read row after row, so a value the terminal wrapped onto the next row is found too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import Any

from proxy.control.roles import ADMIN
from proxy.control.streams import Watch
from proxy.masking.masker import Masker
from proxy.masking.render import viewer_masker
from proxy.masking.stream import StreamMasker
from proxy.ssh.terminal_mask import TerminalMasker
from recordings.errors import RecordingError
from recordings.pgwire import decode_datarows, encode_datarow

_SKIP_KINDS = frozenset({"session.end", "ssh.exit", "ssh.resize", "mask.summary", "pg.execute", "pg.bind"})
_STREAM_KINDS = frozenset({"ssh.output", "ssh.input"})


def viewer_entities(roles: Iterable[str], auditor_mask: Iterable[str]) -> frozenset[str]:
    """What a viewer with `roles` may not see beyond the recording: nothing for an admin."""
    return frozenset() if ADMIN in set(roles) else frozenset(auditor_mask)


class EventMasker:
    """Masks every text a recording event carries: statements, commands, outputs, rows, errors, screens.

    One per viewer stream: it keeps the line state of the session's terminal streams between events.
    """

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._screen = TerminalMasker(masker)
        # (kind, stream name) -> (line masker, time and fields of the last event, for a flush)
        self._streams: dict[tuple[str, str], tuple[StreamMasker, list[Any]]] = {}

    @classmethod
    def for_entities(cls, entities: frozenset[str]) -> EventMasker | None:
        return cls(viewer_masker(entities)) if entities else None

    def event(self, event: Any) -> Any:
        """`event` masked. Terminal streams may hold back a partial line: see `flush`."""
        if not isinstance(event, list) or len(event) < 3 or event[1] in _SKIP_KINDS:
            return event
        kind = event[1]
        if kind in _STREAM_KINDS:
            return self._stream(event)
        if kind == "pg.rows" and len(event) >= 4 and isinstance(event[3], bytes | bytearray):
            return [*event[:3], self._rows(bytes(event[3])), *event[4:]]
        if kind == "screen.keyframe" and isinstance(event[2], dict):
            return [*event[:2], self._keyframe(event[2]), *event[3:]]
        return [*event[:2], *(self._value(value) for value in event[2:])]

    def flush(self) -> list[list[Any]]:
        """Events for what the terminal streams hold back (partial lines), masked; they are then empty."""
        flushed = []
        for (kind, name), (stream, last) in self._streams.items():
            if stream.held:
                data, _counts = stream.flush()
                data, _counts = self._screen.mask(data)
                flushed.append([last[0], kind, *([name] if kind == "ssh.output" else []), data])
        return flushed

    def _stream(self, event: list[Any]) -> list[Any]:
        kind = event[1]
        if kind == "ssh.output" and len(event) >= 4 and isinstance(event[3], bytes | bytearray):
            name, data, head = str(event[2]), bytes(event[3]), event[:3]
        elif kind == "ssh.input" and isinstance(event[2], bytes | bytearray):
            name, data, head = "", bytes(event[2]), event[:2]
        else:
            return [*event[:2], *(self._value(value) for value in event[2:])]
        key = (kind, name)
        stream = self._streams.get(key)
        if stream is None:
            stream = (StreamMasker(self._masker), event)
        self._streams[key] = (stream[0], event)
        masked, _counts = stream[0].feed(data)
        masked, _counts = self._screen.mask(masked)
        return [*head, masked, *event[len(head) + 1 :]]

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._masker.mask_text(value)[0]
        if isinstance(value, bytes | bytearray):
            masked = self._masker.mask_bytes(bytes(value))
            return value if masked is None else masked[0]
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        return value

    def _rows(self, raw: bytes) -> bytes:
        try:
            rows = decode_datarows(raw)
        except RecordingError:
            return b""  # rows this masker cannot read are not shown at all (fail closed)
        out = []
        for row in rows:
            values = []
            for value in row:
                masked = None if value is None else self._masker.mask_bytes(value)
                values.append(value if masked is None else masked[0])
            out.append(encode_datarow(values))
        return b"".join(out)

    def _keyframe(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The screen read row by row, and as one text where a full-width row runs on into the next (a value
        the terminal wrapped); what either reading finds is painted over, cell for cell, with its token (cut
        to the value's width), so the screen keeps its geometry."""
        lines = frame.get("lines")
        if not isinstance(lines, list):
            return {key: self._value(value) for key, value in frame.items()}
        rows: list[list[str]] = [
            list(line)
            if isinstance(line, str)
            else [str(cell) for cell in line]
            if isinstance(line, list)
            else []
            for line in lines
        ]
        cols = frame.get("cols") if isinstance(frame.get("cols"), int) else 0
        readings: list[tuple[str, list[tuple[int, int] | None]]] = []
        joined: list[str] = []
        joined_where: list[tuple[int, int] | None] = []
        for y, cells in enumerate(rows):
            row_text: list[str] = []
            row_where: list[tuple[int, int] | None] = []
            for x, cell in enumerate(cells):
                for char in cell:
                    row_text.append(char)
                    row_where.append((y, x))
            readings.append(("".join(row_text), row_where))
            joined += row_text
            joined_where += row_where
            if cols and len(cells) < cols:  # a row that did not reach the margin ends its line
                joined.append("\n")
                joined_where.append(None)
        readings.append(("".join(joined), joined_where))
        painted = False
        for text, where in readings:
            for start, end, entity in self._masker.find(text):
                token = self._masker.replacement(entity, text[start:end])
                covered = list(dict.fromkeys(cell for cell in where[start:end] if cell is not None))
                for index, (y, x) in enumerate(covered):
                    rows[y][x] = token[index] if index < len(token) else " "
                painted = True
        if not painted:
            return frame
        masked_lines = [
            "".join(cells) if isinstance(line, str) else cells
            for line, cells in zip(lines, rows, strict=True)
        ]
        return {**frame, "lines": masked_lines}


def masked_watch(watch: Watch, masker: EventMasker) -> Watch:
    """`watch` with every event masked for the viewer; held partial lines go out before any other event."""

    async def events() -> AsyncGenerator[Any, None]:
        source = watch.events
        try:
            async for event in source:
                if not (isinstance(event, list) and len(event) > 1 and event[1] in _STREAM_KINDS):
                    for held in masker.flush():
                        yield held
                yield masker.event(event)
            for held in masker.flush():
                yield held
        finally:
            await source.aclose()

    return Watch(watch.initial, events())
