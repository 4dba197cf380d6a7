"""JSON Lines export: a header line per recording, then one event per line with named fields."""

from __future__ import annotations

import json
from typing import Any, TextIO

from recordings import events as ev
from recordings.errors import RecordingFormatError
from recordings.export.jsonvalue import to_json
from recordings.export.source import ProgressCallback, iter_events
from recordings.pgwire import decode_datarows
from recordings.reader import RecordingReader

HEADER_KIND = "recording.header"


def event_to_json(event: list, session_id: Any) -> dict[str, Any]:
    """One event as a JSON object: known kinds get named fields, unknown kinds keep a ``fields`` array."""
    kind = event[1]
    fields = event[2:]
    line: dict[str, Any] = {"session_id": session_id, "t_us": event[0], "kind": kind}
    names = ev.FIELD_NAMES.get(kind) if isinstance(kind, str) else None
    if names is None:
        line["fields"] = to_json(fields)
        return line
    for name, value in zip(names, fields, strict=False):
        line[name] = to_json(value)
    if len(fields) > len(names):
        line["extra"] = to_json(fields[len(names) :])
    if kind == ev.PG_ROWS and len(fields) >= 2 and isinstance(fields[1], bytes):
        try:
            line["rows"] = to_json(decode_datarows(fields[1]))
        except RecordingFormatError:
            return line  # keep the raw bytes when they are not DataRows
        del line["raw"]
    return line


def export_jsonl(
    reader: RecordingReader,
    out: TextIO,
    on_progress: ProgressCallback | None = None,
    *,
    keyframes: bool = False,
) -> int:
    """Write ``reader`` as JSON Lines to ``out``; returns the number of event lines."""
    session_id = to_json(reader.header.get("session_id"))
    header_line = {
        "session_id": session_id,
        "t_us": 0,
        "kind": HEADER_KIND,
        "file": reader.path.name,
        "sealed": reader.sealed,
        "header": to_json(reader.header),
    }
    out.write(json.dumps(header_line, ensure_ascii=False) + "\n")
    count = 0
    for event in iter_events(reader, on_progress, keyframes=keyframes):
        out.write(json.dumps(event_to_json(event, session_id), ensure_ascii=False) + "\n")
        count += 1
    return count
