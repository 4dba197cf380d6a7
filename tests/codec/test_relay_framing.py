"""PgRelay's inline framing: byte-identical pass-through in any chunking, and the events it records."""

from __future__ import annotations

import asyncio
import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.postgres.endpoint import Endpoint
from proxy.postgres.messages import (
    CommandComplete,
    DataRow,
    ErrorResponse,
    FunctionCall,
    Message,
    Parse,
    Query,
    ReadyForQuery,
    Terminate,
    cstr,
    frame,
)
from proxy.postgres.protocol import DEFAULT_MAX_MESSAGE_SIZE
from proxy.postgres.relay import PgRelay
from tests.codec.message_strategies import (
    backend_messages,
    chunkings,
    session_frontend_messages,
    split_at,
)
from tests.codec.psql_session import ROW_COUNT, psql_session
from tests.codec.relay_harness import (
    RelayHarness,
    expected_client_events,
    expected_server_events,
    start_relay,
)

SESSION = psql_session()
TERMINATE = Terminate().encode()


def _feed(harness: RelayHarness, side: str, data: bytes, cuts: list[int]) -> None:
    endpoint = harness.client if side == "client" else harness.server
    for chunk in split_at(data, cuts):
        if chunk:  # a transport never delivers an empty buffer
            endpoint.receive(chunk)


def _statement_count(messages: list[Message]) -> int:
    return sum(isinstance(m, Query | Parse | FunctionCall) for m in messages)


def _assert_client_side(harness: RelayHarness, messages: list[Message], stream: bytes) -> None:
    assert bytes(harness.server.transport.sent) == stream
    assert harness.server.transport.after_close == b""
    assert harness.client_events == expected_client_events(messages)
    assert harness.relay.counters.statements == _statement_count(messages)


def _assert_server_side(harness: RelayHarness, messages: list[Message], stream: bytes) -> None:
    assert bytes(harness.client.transport.sent) == stream
    assert harness.client.transport.after_close == b""
    assert harness.server_events == expected_server_events(messages)
    assert harness.relay.counters.rows == sum(isinstance(m, DataRow) for m in messages)
    statuses = [m.status for m in messages if isinstance(m, ReadyForQuery)]
    assert harness.relay.transaction_status == (statuses[-1] if statuses else "I")


def _assert_timestamps_ordered(harness: RelayHarness) -> None:
    stamps = [record[0] for record in harness.records]
    assert all(isinstance(stamp, int) and stamp >= 0 for stamp in stamps)
    assert stamps == sorted(stamps)


# ---------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(st.lists(session_frontend_messages, max_size=25), st.data())
def test_client_stream_passes_through_byte_identical(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    cuts = data.draw(chunkings(len(stream)), label="cuts")
    harness = start_relay()
    _feed(harness, "client", stream, cuts)
    _assert_client_side(harness, messages, stream)
    assert harness.close_reasons == []


@settings(max_examples=200, deadline=None)
@given(st.lists(backend_messages, max_size=25), st.data())
def test_server_stream_passes_through_byte_identical(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    cuts = data.draw(chunkings(len(stream)), label="cuts")
    harness = start_relay()
    _feed(harness, "server", stream, cuts)
    _assert_server_side(harness, messages, stream)
    assert harness.close_reasons == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(session_frontend_messages, max_size=15),
    st.lists(backend_messages, max_size=15),
    st.data(),
)
def test_both_directions_interleaved(
    client_messages: list[Message], server_messages: list[Message], data: st.DataObject
) -> None:
    client_stream = b"".join(m.encode() for m in client_messages)
    server_stream = b"".join(m.encode() for m in server_messages)
    client_chunks = split_at(client_stream, data.draw(chunkings(len(client_stream), 12), label="client cuts"))
    server_chunks = split_at(server_stream, data.draw(chunkings(len(server_stream), 12), label="server cuts"))
    schedule = data.draw(st.permutations([True] * len(client_chunks) + [False] * len(server_chunks)))
    harness = start_relay()
    client_iter, server_iter = iter(client_chunks), iter(server_chunks)
    for from_client in schedule:
        chunk = next(client_iter) if from_client else next(server_iter)
        if chunk:
            (harness.client if from_client else harness.server).receive(chunk)
    _assert_client_side(harness, client_messages, client_stream)
    _assert_server_side(harness, server_messages, server_stream)
    _assert_timestamps_ordered(harness)
    assert harness.close_reasons == []


@settings(max_examples=100, deadline=None)
@given(st.lists(backend_messages, max_size=20), st.data())
def test_pass_through_without_a_recorder(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    harness = start_relay(record=False)
    _feed(harness, "server", stream, data.draw(chunkings(len(stream)), label="cuts"))
    assert bytes(harness.client.transport.sent) == stream
    assert harness.records == []
    assert harness.relay.counters.rows == sum(isinstance(m, DataRow) for m in messages)


# ---------------------------------------------------------------- the captured-style session


def _run_session(client_cuts: list[int], server_cuts: list[int]) -> RelayHarness:
    harness = start_relay()
    body = SESSION.client_bytes[: -len(TERMINATE)]  # psql sends its Terminate on its own
    _feed(harness, "client", body, client_cuts)
    _feed(harness, "server", SESSION.server_bytes, server_cuts)
    assert harness.close_reasons == []
    harness.client.receive(TERMINATE)
    return harness


def _assert_session_relayed(harness: RelayHarness) -> None:
    assert bytes(harness.server.transport.sent) == SESSION.client_bytes
    assert bytes(harness.client.transport.sent) == SESSION.server_bytes
    assert harness.client_events == expected_client_events(SESSION.client)
    assert harness.server_events == expected_server_events(SESSION.server)
    rows = [event for event in harness.server_events if event[0] == "pg.rows"]
    assert rows[0][1] == ROW_COUNT
    assert harness.relay.counters.rows == ROW_COUNT + 8
    assert harness.close_reasons == ["client terminated the session"]
    _assert_timestamps_ordered(harness)


def test_session_relayed_whole() -> None:
    _assert_session_relayed(_run_session([], []))


def test_session_relayed_one_byte_at_a_time() -> None:
    client_cuts = list(range(1, len(SESSION.client_bytes) - len(TERMINATE)))
    server_cuts = list(range(1, len(SESSION.server_bytes)))
    _assert_session_relayed(_run_session(client_cuts, server_cuts))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_session_relayed_in_random_splits(data: st.DataObject) -> None:
    client_cuts = data.draw(chunkings(len(SESSION.client_bytes) - len(TERMINATE)), label="client cuts")
    server_cuts = data.draw(chunkings(len(SESSION.server_bytes), 80), label="server cuts")
    _assert_session_relayed(_run_session(client_cuts, server_cuts))


# ---------------------------------------------------------------- lifecycle


def test_handshake_leftovers_are_relayed_first() -> None:
    # Bytes the upstream sent while the gateway finished its handshake, cut mid-message.
    ready, complete = ReadyForQuery("I").encode(), CommandComplete("SELECT 0").encode()
    harness = start_relay(server_pending=ready + complete[:3])
    assert bytes(harness.client.transport.sent) == ready
    harness.server.receive(complete[3:])
    assert bytes(harness.client.transport.sent) == ready + complete
    # Each side's write pressure pauses the other side's reads.
    assert harness.client.peer is harness.server.transport
    assert harness.server.peer is harness.client.transport


def test_losing_either_side_closes_once() -> None:
    harness = start_relay()
    harness.server.on_lost(None)
    assert harness.close_reasons == ["upstream closed the connection"]
    assert harness.client.transport.closing
    assert harness.client.on_lost is None and harness.client.relay is None
    harness.relay.close("again")
    assert harness.close_reasons == ["upstream closed the connection"]


def test_fail_client_sends_one_decodable_fatal_error() -> None:
    # The FATAL the relay sends is a well-formed ErrorResponse the client can decode.
    harness = start_relay()
    harness.relay.fail_client("bad frame")
    sent = bytes(harness.client.transport.sent)
    error = ErrorResponse.decode(sent[5:])
    assert (error.severity, error.sqlstate, error.message) == ("FATAL", "08P01", "bad frame")
    assert harness.close_reasons == ["protocol error: bad frame"]


# ---------------------------------------------------------------- known relay bugs (fail until fixed)


def test_ready_for_query_without_status_is_a_protocol_error() -> None:
    # An empty ReadyForQuery must end the session like any other malformed frame, not raise IndexError
    # out of data_received, nor read the next message's type byte as the transaction status.
    for stream in (b"Z\0\0\0\x04", b"Z\0\0\0\x04" + CommandComplete("SELECT 1").encode()):
        harness = start_relay()
        harness.server.receive(stream)
        assert len(harness.close_reasons) == 1
        assert harness.close_reasons[0].startswith("upstream protocol error")
        assert harness.relay.transaction_status in ("I", "T", "E")


def test_bind_with_a_huge_format_count_does_not_crash_the_relay() -> None:
    # 0x8000 read as int16 puts the parameter-count offset 64 KiB before the buffer: struct.error escaped
    # data_received. The relay may forward the Bind (PostgreSQL rejects it) or end the session with a
    # FATAL, but it must not raise.
    bind = frame(b"B", b"\0\0\x80\x00")
    harness = start_relay()
    harness.client.receive(bind)
    if harness.close_reasons:
        assert harness.close_reasons[0].startswith("protocol error")
        assert b"C08P01\0" in bytes(harness.client.transport.sent)
    else:
        assert bytes(harness.server.transport.sent) == bind


def test_bind_with_more_than_32767_parameters_is_recorded() -> None:
    # PostgreSQL accepts up to 65535 parameters (counts are unsigned 16-bit); psycopg sends one format
    # code per parameter, so both counts are over 32767 here.
    count = 40000
    formats = struct.pack("!H", count) + struct.pack("!h", 0) * count
    values = struct.pack("!H", count) + (struct.pack("!i", 1) + b"7") * count
    bind = frame(b"B", cstr("") + cstr("s1") + formats + values + struct.pack("!h", 0))
    harness = start_relay()
    harness.client.receive(bind)
    assert bytes(harness.server.transport.sent) == bind
    assert harness.client_events == [["pg.bind", "", "s1", count]]


def test_function_call_oid_is_recorded_unsigned() -> None:
    harness = start_relay()
    oid = 2**32 - 2  # OIDs are unsigned 32-bit; a long-lived cluster hands out the upper half
    harness.client.receive(FunctionCall(oid, (), (), 0).encode())
    assert harness.client_events == [["pg.function_call", oid]]


def test_each_received_byte_is_counted_once() -> None:
    harness = start_relay()
    client_stream = Query("SELECT 1").encode() * 3
    server_stream = DataRow((b"1",)).encode() * 3
    _feed(harness, "client", client_stream, list(range(1, len(client_stream))))
    _feed(harness, "server", server_stream, list(range(1, len(server_stream))))
    assert harness.relay.counters.bytes_from_client == len(client_stream)
    assert harness.relay.counters.bytes_from_server == len(server_stream)


def test_messages_before_terminate_in_the_same_buffer_reach_the_server() -> None:
    harness = start_relay()
    query = Query("INSERT INTO audit_log VALUES (1)").encode()
    harness.client.receive(query + TERMINATE)
    assert bytes(harness.server.transport.sent) == query + TERMINATE
    assert harness.server.transport.after_close == b""
    assert harness.close_reasons == ["client terminated the session"]


async def test_messages_before_terminate_reach_a_real_upstream_socket() -> None:
    # The same through real Endpoints and asyncio transports: a write after close() is lost.
    loop = asyncio.get_running_loop()
    client_app, client_gateway = socket.socketpair()
    upstream_gateway, upstream_app = socket.socketpair()
    for sock in (client_app, upstream_app):
        sock.setblocking(False)
    try:
        _, client_endpoint = await loop.connect_accepted_socket(Endpoint, client_gateway)
        _, upstream_endpoint = await loop.connect_accepted_socket(Endpoint, upstream_gateway)
        reasons: list[str] = []
        relay = PgRelay(
            client_endpoint,
            upstream_endpoint,
            max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
            record=None,
            on_close=reasons.append,
        )
        relay.start()
        query = Query("INSERT INTO audit_log VALUES (1)").encode()
        await loop.sock_sendall(client_app, query + TERMINATE)
        received = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(upstream_app, 65536), 5):
            received += chunk
        assert reasons == ["client terminated the session"]
        assert received == query + TERMINATE
    finally:
        for sock in (client_app, upstream_app):
            sock.close()


def test_non_utf8_text_from_a_latin1_session_is_relayed() -> None:
    # With client_encoding=LATIN1 (the gateway forwards it) PostgreSQL sends column names and error
    # texts in LATIN1. Checked against PostgreSQL: `SELECT 1 AS "café"` gives the name b"caf\xe9".
    stream = (
        frame(b"T", struct.pack("!h", 1) + b"caf\xe9\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0))
        + DataRow((b"1",)).encode()
        + CommandComplete("SELECT 1").encode()
        + frame(b"E", b'SERROR\0C42703\0Mcolumn "nosuch_\xe9" does not exist\0\0')
        + frame(b"N", b'SNOTICE\0C00000\0Mtable "caf\xe9" does not exist, skipping\0\0')
        + ReadyForQuery("I").encode()
    )
    harness = start_relay()
    harness.server.receive(stream)
    assert harness.close_reasons == []
    assert bytes(harness.client.transport.sent) == stream
    kinds = [event[0] for event in harness.server_events]
    assert kinds == ["pg.rowdesc", "pg.rows", "pg.complete", "pg.error", "pg.notice"]
