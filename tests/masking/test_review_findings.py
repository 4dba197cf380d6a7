"""Review of the Postgres masking prefilter and relay: the leaks and crashes found (all fixed now) and
the attacks that held, against a real PostgreSQL through the gateway and against PgRelay driven directly.
The FunctionCallResponse and RowDescription tests failed on 4b2dd04 and pass with the relay's checks since."""

from __future__ import annotations

import asyncio
import select
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg.pq import ExecStatus

from proxy.masking.masker import Masker
from proxy.postgres.messages import DataRow, FieldDescription, Query, ReadyForQuery, RowDescription
from proxy.postgres.protocol import DEFAULT_MAX_MESSAGE_SIZE
from proxy.postgres.relay import PgRelay
from proxy.postgres.session_masking import SessionMasking
from recordings.reader import RecordingReader
from tests.codec.relay_harness import FakeEndpoint
from tests.conftest import ALL_SQL_KINDS, RunningGateway, start_gateway
from tests.pg_fixture import UpstreamPostgres

EMAIL = "dana@example.com"
SSN = "123-45-6789"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415 555 2671"
PLANTED = (EMAIL, SSN, CARD, PHONE)
_KINDS = ", ".join(f'"{kind}"' for kind in ALL_SQL_KINDS)
POLICY = f"""
[[policies]]
groups = ["ci-agents"]
connections = ["*"]
allow = [{_KINDS}]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("review"), upstream, policies=POLICY)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]


def _leaked(data: bytes) -> list[str]:
    return [value for value in PLANTED if value.encode() in data]


def _as_bytes(value: Any) -> bytes:
    """Every text inside a fetched value or a recording event, as bytes (repr keeps nested structures)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list | tuple):
        return b"\x00".join(_as_bytes(item) for item in value)
    if isinstance(value, dict):
        return b"\x00".join(_as_bytes(item) for item in value.values())
    return repr(value).encode()


def _recorded(gateway: RunningGateway, before: set[Path]) -> bytes:
    """The events of the recordings made since `before`, once they are sealed."""
    deadline = time.monotonic() + 15
    paths: list[Path] = []
    while time.monotonic() < deadline:
        paths = [path for path in gateway.recordings_dir.rglob("*.hrec") if path not in before]
        if paths and all(RecordingReader(path).sealed for path in paths):
            break
        time.sleep(0.05)
    assert paths, "no recording was written"
    return b"\x00".join(_as_bytes(list(RecordingReader(path).iter_events())) for path in paths)


def _recordings(gateway: RunningGateway) -> set[Path]:
    return set(gateway.recordings_dir.rglob("*.hrec"))


# --- what held: the prefilter against a real PostgreSQL ---------------------------------------------------

# Values at the start of a value whose length byte runs through every ASCII digit and anchor-like byte, next
# to multi-byte UTF-8, after a backslash, in rows far bigger than one read, in unusual text-carrying types.
TEXT_QUERIES = [
    f"SELECT '{SSN}' || repeat(' ', i), repeat('x', i) || ' {CARD}' FROM generate_series(0, 120) i",
    f"SELECT i, CASE WHEN i % 7 = 0 THEN '{EMAIL}' ELSE 'order-' || i END, repeat('é', i % 5) || '{SSN}' "
    f"|| repeat('ß', i % 3), repeat('日', i % 4) || '{PHONE}' FROM generate_series(1, 3000) i",
    f"SELECT repeat('x', 300000) || ' {EMAIL} ' || repeat('y', 300000), repeat('{SSN} ', 20000)",
    f"SELECT E'\\\\{EMAIL}', E'a\\t {SSN}\\nb', '{EMAIL}'::name, '{PHONE}'::char(40), '{EMAIL}'::varchar",
    f"SELECT ROW(1, '{EMAIL}', '{SSN}'), ARRAY['{EMAIL}', NULL, '{CARD}'], '{PHONE}'::bpchar",
    f"""SELECT '{{"e": "{EMAIL}", "n": [1, "{SSN}"]}}'::jsonb, '{{"k": "{CARD}"}}'::json""",
    """SELECT '{"e": "dana\\u0040example.com"}'::json, '{"s": "123\\u002d45-6789"}'::json""",
    f"SELECT to_tsvector('simple', 'x {EMAIL} y')::text",
]


def test_planted_values_reach_neither_the_client_nor_the_recording_in_text_results(
    gateway: RunningGateway,
) -> None:
    before = _recordings(gateway)
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        for query in TEXT_QUERIES:
            rows = conn.execute(query).fetchall()
            assert rows and _leaked(_as_bytes(rows)) == [], query
    assert _leaked(_recorded(gateway, before)) == []


def test_planted_values_are_masked_in_binary_format_results(gateway: RunningGateway) -> None:
    before = _recordings(gateway)
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        cursor = conn.cursor(binary=True)
        cursor.execute(
            f"""SELECT '{EMAIL}'::text, '{SSN}'::varchar, ARRAY['{CARD}', NULL]::text[],
                       '{{"e": "{EMAIL}"}}'::jsonb, ARRAY['{{"p": "{PHONE}"}}'::jsonb], 42::int8
                FROM generate_series(1, 50)"""
        )
        rows = cursor.fetchall()
        assert len(rows) == 50 and rows[0][5] == 42
        assert _leaked(_as_bytes(rows)) == []
    assert _leaked(_recorded(gateway, before)) == []


def test_copy_out_text_and_csv_with_escapes_around_values_is_masked(gateway: RunningGateway) -> None:
    before = _recordings(gateway)
    query = (
        f"SELECT i, E'\\t{EMAIL}\\n', E'x\\\\{SSN}', '{CARD}', '\"{PHONE}\"' FROM generate_series(1, 2000) i"
    )
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        for options in ("", " WITH (FORMAT csv)"):
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT{options}") as copy:
                data = b"".join(bytes(block) for block in copy)
            assert data.count(b"\n") >= 2000
            assert _leaked(data) == [], options
    assert _leaked(_recorded(gateway, before)) == []


async def test_rows_of_a_portal_suspended_mid_result_are_masked(gateway: RunningGateway) -> None:
    # asyncpg's cursor executes with a row limit: the rows come back in pieces ended by PortalSuspended,
    # each later piece with no RowDescription in front of it.
    conn = await asyncpg.connect(gateway.url())
    try:
        async with conn.transaction():
            query = f"SELECT i, i || ' {EMAIL}', '{SSN}' FROM generate_series(1, 40) i"
            seen = [tuple(row) async for row in conn.cursor(query, prefetch=3)]
        assert len(seen) == 40
        assert _leaked(_as_bytes(seen)) == []
        assert all(row[0] == i for i, row in enumerate(seen, start=1))
    finally:
        await asyncio.wait_for(conn.close(), 10)


def test_rows_after_an_error_in_a_pipeline_are_masked(gateway: RunningGateway) -> None:
    # Two batches pipelined in one write: the first fails, the second's rows follow its ErrorResponse and
    # ReadyForQuery, in the same reads, with their own RowDescription.
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"SELECT 1/0", None)
        pgconn.pipeline_sync()
        pgconn.send_query_params(f"SELECT '{EMAIL}', '{SSN}' FROM generate_series(1, 20)".encode(), None)
        pgconn.pipeline_sync()
        statuses, values = [], []
        deadline = time.monotonic() + 10
        # Never block inside libpq: the gateway runs on a thread of this process.
        while statuses.count(ExecStatus.PIPELINE_SYNC) < 2 and time.monotonic() < deadline:
            pgconn.flush()
            if pgconn.is_busy():
                select.select([pgconn.socket], [], [], 0.2)
                pgconn.consume_input()
                continue
            result = pgconn.get_result()
            if result is None:
                continue
            statuses.append(result.status)
            if result.status == ExecStatus.TUPLES_OK:
                values += [result.get_value(row, 0) for row in range(result.ntuples)]
                values += [result.get_value(row, 1) for row in range(result.ntuples)]
    assert ExecStatus.FATAL_ERROR in statuses and len(values) == 40
    assert _leaked(_as_bytes(values)) == []


# --- findings: text the masker scans without decoding the JSON escapes in it -------------------------------


# A review finding, fixed.
def test_an_escaped_address_in_json_cast_to_text_is_masked(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        (value,) = conn.execute("""SELECT '{"e": "dana\\u0040example.com"}'::json::text""").fetchone()
    assert "example.com" not in value


# A review finding, fixed.
def test_an_escaped_address_in_a_json_array_is_masked(gateway: RunningGateway) -> None:
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        (value,) = conn.execute("""SELECT ARRAY['{"e": "dana\\u0040example.com"}'::json]""").fetchone()
    assert "example.com" not in str(value)


# A review finding, fixed.
def test_a_value_right_after_an_escape_in_a_statement_is_masked_in_the_recording(
    gateway: RunningGateway,
) -> None:
    before = _recordings(gateway)
    with psycopg.connect(gateway.dsn(), autocommit=True) as conn:
        (value,) = conn.execute(f"SELECT E'a\\t{SSN}'").fetchone()
        assert SSN not in value  # the row is masked: the value is a tab and the SSN
    assert _leaked(_recorded(gateway, before)) == []


# --- PgRelay driven directly ----------------------------------------------------------------------------

MASKER = Masker(["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"])


def _relay(record: bool = True) -> tuple[PgRelay, FakeEndpoint, list[str], list[list[Any]]]:
    client, server = FakeEndpoint(), FakeEndpoint()
    closed: list[str] = []
    records: list[list[Any]] = []
    relay = PgRelay(
        client,  # type: ignore[arg-type]
        server,  # type: ignore[arg-type]
        max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
        record=records.append if record else None,
        on_close=closed.append,
        masking=SessionMasking(MASKER, None),
    )
    relay.start()
    relay.from_client(Query("SELECT ...").encode())
    return relay, client, closed, records


def _frame(type_byte: bytes, body: bytes) -> bytes:
    return type_byte + struct.pack("!i", len(body) + 4) + body


def _text_columns(count: int) -> bytes:
    fields = tuple(FieldDescription(f"c{i}", 0, 0, 25, -1, -1, 0) for i in range(count))
    return RowDescription(fields).encode()


def test_a_buffer_with_masked_rows_is_one_write_in_wire_order() -> None:
    relay, client, closed, _records = _relay()
    writes: list[bytes] = []
    transport = client.transport
    original = transport.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        original(data)

    transport.write = counted  # type: ignore[method-assign]
    rows = [DataRow([EMAIL.encode(), b"order-%d" % i]).encode() for i in range(50)]
    notice = _frame(b"N", b"SNOTICE\x00Mnote\x00\x00")
    stream = _text_columns(2) + b"".join(rows[:25]) + notice + b"".join(rows[25:])
    relay.from_server(stream + _frame(b"C", b"SELECT 50\x00") + ReadyForQuery("I").encode())
    assert not closed and len(writes) == 1
    sent = writes[0]
    assert EMAIL.encode() not in sent
    assert sent.index(b"order-24") < sent.index(b"Mnote") < sent.index(b"order-25")
    assert sent.count(b"order-") == 50


def test_a_malformed_flagged_row_ends_only_the_session_with_one_error() -> None:
    relay, client, closed, records = _relay()
    bad = _frame(b"D", b"\x00\x01\x00\x00\x00\x40" + EMAIL.encode())  # a length past the frame's end
    relay.from_server(_text_columns(1) + bad + ReadyForQuery("I").encode())
    sent = bytes(client.transport.sent)
    assert len(closed) == 1 and sent.count(b"upstream protocol error") == 1
    assert EMAIL.encode() not in sent
    assert all(EMAIL.encode() not in _as_bytes(event) for event in records)


def test_a_function_result_whose_length_runs_past_its_frame_ends_the_session() -> None:
    relay, client, closed, _records = _relay()
    function_result = _frame(b"V", b"\x00\x00\x00\x50" + EMAIL.encode())
    relay.from_server(function_result + ReadyForQuery("I").encode())
    assert closed and b"upstream protocol error" in bytes(client.transport.sent)


def test_a_truncated_function_result_ends_the_session_with_one_error() -> None:
    relay, client, closed, _records = _relay()
    relay.from_server(_frame(b"V", b"@a"))
    assert closed and b"upstream protocol error" in bytes(client.transport.sent)


def test_a_malformed_row_description_in_an_unrecorded_session_ends_it_with_one_error() -> None:
    relay, client, closed, _records = _relay(record=False)
    row_description = _frame(b"T", b"\x00\x02c0\x00" + b"\x00" * 18)  # says two columns, holds one
    relay.from_server(row_description + DataRow([b"x", b"y"]).encode() + ReadyForQuery("I").encode())
    assert closed and b"upstream protocol error" in bytes(client.transport.sent)
