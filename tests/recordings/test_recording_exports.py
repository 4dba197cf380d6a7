"""Exports: JSON Lines readable by jq-style tools, CSV rows per statement, asciicast that asciinema plays."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from recordings.export.asciicast import export_asciicast
from recordings.export.csvfile import COLUMNS, export_csv_rows, new_csv_writer
from recordings.export.jsonl import export_jsonl
from recordings.pgwire import decode_datarows, encode_datarow
from recordings.reader import RecordingReader
from recordings.terminal import TerminalScreen, TolerantStream
from tests.recordings.helpers import sql_header, sql_session, ssh_header, write_recording


def _decode_json_bytes(value: dict) -> bytes:
    return value["utf8"].encode() if "utf8" in value else base64.b64decode(value["base64"])


def test_jsonl_has_one_parseable_line_per_event_and_keeps_unknown_kinds(tmp_path: Path, signing_key) -> None:
    future = [5, "future.kind", b"\xff\xfe raw", {"nested": [1, b"ok"]}, 3.5]
    events = [
        [0, "pg.query", "SELECT 1"],
        [1, "pg.rows", 2, encode_datarow([b"1", None]) + encode_datarow([b"\xff", b"x"])],
        [2, "ssh.output", "stdout", "héllo".encode()],
        [3, "pg.complete", "SELECT 2", "an extra field from a newer gateway"],
        future,
    ]
    path = write_recording(tmp_path / "j.hrec", events, signing_key)
    out = io.StringIO()
    with RecordingReader(path) as reader:
        assert export_jsonl(reader, out) == len(events)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["kind"] == "recording.header" and lines[0]["header"]["connection"] == "appdb"
    query, rows, output, complete, unknown = lines[1:]
    assert query == {"session_id": "sess-sql-1", "t_us": 0, "kind": "pg.query", "sql": "SELECT 1"}
    assert rows["rows"] == [
        [{"utf8": "1"}, None],
        [{"base64": base64.b64encode(b"\xff").decode()}, {"utf8": "x"}],
    ]
    assert output["data"] == {"utf8": "héllo"} and output["stream"] == "stdout"
    assert complete["command_tag"] == "SELECT 2" and complete["extra"] == [
        "an extra field from a newer gateway"
    ]
    assert unknown["kind"] == "future.kind"
    raw, nested, number = unknown["fields"]
    assert _decode_json_bytes(raw) == b"\xff\xfe raw"
    assert nested == {"nested": [1, {"utf8": "ok"}]} and number == 3.5


def test_csv_has_one_row_per_statement_with_decision_approval_rows_and_masking(
    tmp_path: Path, signing_key
) -> None:
    events = sql_session(30)
    events += [
        [10**9, "pg.query", '=HYPERLINK("http://evil")'],
        [10**9 + 1, "pg.error", {"S": "ERROR", "C": "42601", "M": "syntax error"}],
    ]
    path = write_recording(
        tmp_path / "c.hrec", events, signing_key, sql_header(started_at="2030-01-01T00:00:00Z")
    )
    out = io.StringIO()
    with RecordingReader(path) as reader:
        count = export_csv_rows(reader, new_csv_writer(out))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS
    assert count == len(rows) == 31
    held = [row for row in rows if row["decision"] == "review"]
    assert held and all(r["approval_state"] == "approved" and r["approver"] == "alice" for r in held)
    assert all(r["result"] == "UPDATE 1" and r["rows"] == "1" for r in held)
    reads = [row for row in rows if row["kind"] == "read"]
    for row in reads:
        assert row["decision"] == "allow" and row["result"].startswith("SELECT ")
        assert row["rows"] == row["result"].split()[1]
        assert row["masked"] == ("" if row["rows"] == "0" else f"email={row['rows']}")
    assert rows[0]["time"].startswith("2030-01-01T00:00:00") and rows[0]["identity"] == "ci-bot"
    assert rows[0]["groups"] == "ci-agents" and rows[0]["connection"] == "appdb"
    assert rows[-1]["statement"] == '\'=HYPERLINK("http://evil")'  # a spreadsheet must not run it
    assert rows[-1]["error"] == "42601: syntax error"


def test_csv_pairs_decisions_of_a_multi_statement_query_with_their_results(
    tmp_path: Path, signing_key
) -> None:
    events = [
        [0, "pg.query", "SELECT 1; DELETE FROM t"],
        [0, "policy.decision", {"statement": "SELECT 1", "kind": "read", "decision": "allow", "rule": "a"}],
        [
            0,
            "policy.decision",
            {"statement": "DELETE FROM t", "kind": "write", "decision": "deny", "rule": "b"},
        ],
        [1, "pg.rows", 1, encode_datarow([b"1"])],
        [1, "pg.complete", "SELECT 1"],
        [2, "pg.error", {"S": "ERROR", "C": "42501", "M": "hoop: denied by policy"}],
        [3, "ssh.exec", "ls -la"],
        [4, "ssh.exit", 0],
    ]
    path = write_recording(tmp_path / "m.hrec", events, signing_key)
    out = io.StringIO()
    with RecordingReader(path) as reader:
        export_csv_rows(reader, new_csv_writer(out))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["statement"], r["decision"], r["rows"], r["result"], r["error"]) for r in rows] == [
        ("SELECT 1", "allow", "1", "SELECT 1", ""),
        ("DELETE FROM t", "deny", "", "", "42501: hoop: denied by policy"),
        ("ls -la", "", "", "exit 0", ""),
    ]


def _asciinema_cat(cast: Path) -> str:
    # A new session has no controlling terminal, so asciinema does not touch the developer's tty.
    result = subprocess.run(
        [sys.executable, "-m", "asciinema", "cat", str(cast)],
        capture_output=True,
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    return result.stdout.decode("utf-8")


def _cast_output(cast: Path) -> tuple[dict, str]:
    lines = cast.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    text = "".join(event[2] for event in map(json.loads, lines[1:]) if event[1] == "o")
    return header, text


def _render(text: str, cols: int, rows: int) -> list[str]:
    screen = TerminalScreen(cols, rows)
    TolerantStream(screen).feed(text)
    return screen.display


def test_terminal_asciicast_plays_in_asciinema_with_the_recorded_screen(tmp_path: Path, signing_key) -> None:
    output = (
        "".join(f"\x1b[32m$\x1b[0m echo {n} ünïcødé\r\n{n}\r\n" for n in range(40)).encode()
        + "\x1b[1mdone 中".encode()
    )
    events = [
        [n * 1000, "ssh.output", "stdout", output[i : i + 7]] for n, i in enumerate(range(0, len(output), 7))
    ]
    events.insert(3, [2500, "ssh.resize", 100, 30])
    events.sort(key=lambda event: event[0])
    path = write_recording(
        tmp_path / "t.hrec", events, signing_key, ssh_header(terminal_size=[80, 24]), terminal=True
    )
    cast = tmp_path / "t.cast"
    with RecordingReader(path) as reader, cast.open("w", encoding="utf-8") as out:
        export_asciicast(reader, out)
        final = reader.screen_at(reader.duration_us)
    header, text = _cast_output(cast)
    assert header["version"] == 2 and (header["width"], header["height"]) == (80, 24)
    assert text == output.decode("utf-8")  # split UTF-8 sequences were joined again
    played = _asciinema_cat(cast)
    assert played == text
    assert _render(played, final.cols, final.rows) == list(final.lines)


def test_sql_asciicast_is_a_readable_transcript(tmp_path: Path, signing_key) -> None:
    events = sql_session(12)
    path = write_recording(tmp_path / "s.hrec", events, signing_key)
    cast = tmp_path / "s.cast"
    with RecordingReader(path) as reader, cast.open("w", encoding="utf-8") as out:
        export_asciicast(reader, out)
    header, text = _cast_output(cast)
    played = _asciinema_cat(cast)
    assert played == text
    screen_text = "\n".join(_render(played, header["width"], 2000))
    queries = [event[2] for event in events if event[1] == "pg.query"]
    for query in queries:
        assert f"appdb=> {query}" in screen_text
    assert "-- hoop: review (write; rule ci-agents/appdb)" in screen_text
    assert "-- hoop: request req-3 approved by alice: ticket 42" in screen_text
    first_rows = next(event for event in events if event[1] == "pg.rows" and event[2] > 0)
    for row in decode_datarows(first_rows[3]):
        assert row[0].decode() in screen_text
    assert re.search(r" id +\| email +\| name", screen_text)
    markers = [json.loads(line) for line in cast.read_text().splitlines()[1:]]
    assert [event[2] for event in markers if event[1] == "m"] == queries


def test_exec_sessions_without_a_pty_get_prompts_and_crlf(tmp_path: Path, signing_key) -> None:
    events = [
        [0, "ssh.exec", "ls /srv"],
        [10, "ssh.output", "stdout", b"a\nb\n"],
        [20, "ssh.exit", 0],
    ]
    for name, terminal in (("pipe.hrec", False), ("exec.hrec", True)):  # the gateway may keep a screen
        path = write_recording(tmp_path / name, events, signing_key, ssh_header(), terminal=terminal)
        cast = tmp_path / f"{name}.cast"
        with RecordingReader(path) as reader, cast.open("w", encoding="utf-8") as out:
            export_asciicast(reader, out)
        _, text = _cast_output(cast)
        assert _render(text, 80, 5)[:3] == [line.ljust(80) for line in ("$ ls /srv", "a", "b")]
