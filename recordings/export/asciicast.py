"""asciicast v2 export: terminal sessions replay their output; SQL sessions replay a psql-like transcript.

The file is one JSON header line, then ``[seconds, "o", text]`` output events (plus ``"r"`` resizes and
``"m"`` markers at each statement or command, which ``asciinema play`` can pause on).
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, TextIO

from recordings import events as ev
from recordings.export.jsonvalue import display_text
from recordings.export.source import ProgressCallback, iter_events, started_at
from recordings.export.transcript import NEWLINE, SqlTranscript, safe_text
from recordings.reader import RecordingReader
from recordings.terminal import DEFAULT_COLS, DEFAULT_ROWS, clamp_size

SQL_COLS = 120
SQL_ROWS = 40
MARKER_LENGTH = 60
_BARE_NEWLINE = re.compile(r"(?<!\r)\n")


def _marker(text: Any) -> str:
    line = safe_text(text).strip().splitlines()
    label = line[0] if line else ""
    return label if len(label) <= MARKER_LENGTH else label[: MARKER_LENGTH - 1] + "…"


class _CastWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, value: Any) -> None:
        self.out.write(json.dumps(value, ensure_ascii=False) + "\n")

    def event(self, t_us: int, code: str, data: str) -> None:
        if data:
            self.line([round(t_us / 1_000_000, 6), code, data])


def _header(reader: RecordingReader, cols: int, rows: int) -> dict[str, Any]:
    header = reader.header
    start = started_at(reader)
    cast: dict[str, Any] = {"version": 2, "width": cols, "height": rows}
    if start is not None:
        cast["timestamp"] = int(start.timestamp())
    if reader.duration_us:
        cast["duration"] = round(reader.duration_us / 1_000_000, 6)
    identity = display_text(header.get("identity"))
    cast["title"] = (
        f"{identity} @ {display_text(header.get('connection'))} ({display_text(header.get('session_id'))})"
    )
    cast["env"] = {"TERM": display_text(header.get("term") or "xterm-256color")}
    return cast


def _initial_terminal_size(reader: RecordingReader) -> tuple[int, int]:
    size = reader.header.get("terminal_size")
    if isinstance(size, list | tuple) and len(size) == 2:
        return clamp_size(*size)
    for event in reader.iter_events():
        if event[1] == ev.SSH_RESIZE and len(event) >= 4:
            return clamp_size(event[2], event[3])
        if event[1] == ev.SSH_OUTPUT:
            break
    return DEFAULT_COLS, DEFAULT_ROWS


def export_asciicast(
    reader: RecordingReader, out: TextIO, on_progress: ProgressCallback | None = None
) -> int:
    """Write ``reader`` as an asciicast v2 file to ``out``; returns the number of output events."""
    protocol = display_text(reader.header.get("protocol"))
    if protocol == "postgres" or (protocol != "ssh" and not reader.terminal):
        return _export_sql(reader, out, on_progress)
    return _export_terminal(reader, out, on_progress)


def _has_pty(reader: RecordingReader) -> bool:
    """Whether the remote side wrote to a terminal (CRLF line ends, cursor control) or to a pipe.

    The header's ``pty`` flag decides when the gateway sets it; otherwise a session that ran a command
    before any output is taken to be an exec without a pty.
    """
    flag = reader.header.get("pty")
    if isinstance(flag, bool):
        return flag
    if not reader.terminal:
        return False
    for event in reader.iter_events():
        if event[1] == ev.SSH_EXEC:
            return False
        if event[1] == ev.SSH_OUTPUT:
            break
    return True


def _export_terminal(reader: RecordingReader, out: TextIO, on_progress: ProgressCallback | None) -> int:
    cast = _CastWriter(out)
    pty = _has_pty(reader)
    cols, rows = _initial_terminal_size(reader) if pty else (DEFAULT_COLS, DEFAULT_ROWS)
    cast.line(_header(reader, cols, rows))
    decoders: dict[str, codecs.IncrementalDecoder] = {}
    outputs = 0
    for event in iter_events(reader, on_progress):
        t_us, kind = event[0], event[1]
        if kind == ev.SSH_OUTPUT and len(event) >= 4 and isinstance(event[3], bytes):
            name = event[2] if isinstance(event[2], str) else "stdout"
            decoder = decoders.setdefault(name, codecs.getincrementaldecoder("utf-8")("replace"))
            text = decoder.decode(event[3])
            if not pty:
                # Without a pty nothing turns LF into CRLF; a player would draw a staircase.
                text = _BARE_NEWLINE.sub("\r\n", text)
            cast.event(t_us, "o", text)
            outputs += bool(text)
        elif kind == ev.SSH_RESIZE and len(event) >= 4 and pty:
            cast.event(t_us, "r", "{}x{}".format(*clamp_size(event[2], event[3])))
        elif kind == ev.SSH_EXEC and len(event) >= 3:
            cast.event(t_us, "m", _marker(event[2]))
            if not pty:
                cast.event(t_us, "o", f"$ {safe_text(event[2])}{NEWLINE}")
                outputs += 1
        elif kind == ev.SSH_EXIT and len(event) >= 3 and not pty:
            cast.event(t_us, "o", f"\x1b[2m[exit {safe_text(event[2])}]\x1b[0m{NEWLINE}")
            outputs += 1
        elif kind == ev.POLICY_DECISION and len(event) >= 3 and isinstance(event[2], dict):
            decision = display_text(event[2].get("decision"))
            if decision != "allow":
                cast.event(t_us, "m", _marker(f"hoop: {decision} {display_text(event[2].get('statement'))}"))
    return outputs


def _export_sql(reader: RecordingReader, out: TextIO, on_progress: ProgressCallback | None) -> int:
    cast = _CastWriter(out)
    cast.line(_header(reader, SQL_COLS, SQL_ROWS))
    transcript = SqlTranscript(prompt=f"{safe_text(reader.header.get('connection') or '')}=>")
    outputs = 0
    last_t = 0
    for event in iter_events(reader, on_progress):
        if event[1] in ev.STATEMENT_KINDS and len(event) >= 3:
            cast.event(event[0], "m", _marker(ev.statement_text(event)))
        text = transcript.feed(event)
        if text:
            cast.event(event[0], "o", text)
            outputs += 1
        last_t = event[0]
    held = transcript.finish()
    if held:
        cast.event(last_t, "o", held)
        outputs += 1
    return outputs
