"""Incremental framing: a captured-style session fed whole, byte by byte, in random splits, and cut short."""

from __future__ import annotations

from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.postgres.framing import StartupDecoder
from proxy.postgres.messages import DataRow, Message
from tests.codec.message_strategies import backend_messages, chunkings, frontend_messages, split_at
from tests.codec.psql_session import ROW_COUNT, Session, psql_session
from tests.codec.stream_decoding import decode_client_session, decode_messages

SESSION = psql_session()
CLIENT_STREAM = SESSION.startup_bytes + SESSION.client_bytes
SERVER_STREAM = SESSION.server_bytes
SMALL_SESSION = psql_session(rows=3)


def _one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def _message_ends(messages: list[Message]) -> list[int]:
    return list(accumulate(len(message.encode()) for message in messages))


def test_session_is_the_captured_shape() -> None:
    rows = [m for m in SESSION.server if isinstance(m, DataRow)]
    assert len(rows) == ROW_COUNT + 8  # the simple query's rows plus the extended batch's
    kinds = {type(m).__name__ for m in SESSION.client + SESSION.server}
    expected = {"CopyInResponse", "CopyOutResponse", "CopyFail", "NotificationResponse", "NoticeResponse"}
    assert expected <= kinds


# ---------------------------------------------------------------- whole, byte by byte, random splits


def test_server_stream_in_one_chunk() -> None:
    messages, decoder = decode_messages("backend", [SERVER_STREAM])
    assert messages == SESSION.server
    assert decoder.framer.buffered == 0


def test_server_stream_one_byte_at_a_time() -> None:
    messages, decoder = decode_messages("backend", _one_byte_chunks(SERVER_STREAM))
    assert messages == SESSION.server
    assert decoder.framer.buffered == 0


def test_client_stream_in_one_chunk() -> None:
    assert decode_client_session([CLIENT_STREAM]) == (SESSION.startup, SESSION.client)


def test_client_stream_one_byte_at_a_time() -> None:
    assert decode_client_session(_one_byte_chunks(CLIENT_STREAM)) == (SESSION.startup, SESSION.client)


@settings(max_examples=60, deadline=None)
@given(chunkings(len(SERVER_STREAM)))
def test_server_stream_in_random_splits(cuts: list[int]) -> None:
    messages, decoder = decode_messages("backend", split_at(SERVER_STREAM, cuts))
    assert messages == SESSION.server
    assert decoder.framer.buffered == 0


@settings(max_examples=100, deadline=None)
@given(chunkings(len(CLIENT_STREAM)))
def test_client_stream_in_random_splits(cuts: list[int]) -> None:
    assert decode_client_session(split_at(CLIENT_STREAM, cuts)) == (SESSION.startup, SESSION.client)


@settings(max_examples=150, deadline=None)
@given(st.lists(frontend_messages, max_size=20), st.data())
def test_any_frontend_stream_in_any_split(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    cuts = data.draw(chunkings(len(stream)), label="cuts")
    decoded, decoder = decode_messages("frontend", split_at(stream, cuts))
    assert decoded == messages
    assert decoder.framer.buffered == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(backend_messages, max_size=20), st.data())
def test_any_backend_stream_in_any_split(messages: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in messages)
    cuts = data.draw(chunkings(len(stream)), label="cuts")
    decoded, decoder = decode_messages("backend", split_at(stream, cuts))
    assert decoded == messages
    assert decoder.framer.buffered == 0


# ---------------------------------------------------------------- truncated input


def _assert_every_prefix(direction: str, messages: list[Message]) -> None:
    stream = b"".join(m.encode() for m in messages)
    ends = [0, *_message_ends(messages)]
    complete = 0
    for cut in range(len(stream) + 1):
        while complete + 1 < len(ends) and ends[complete + 1] <= cut:
            complete += 1
        decoded, decoder = decode_messages(direction, [stream[:cut]])
        assert decoded == messages[:complete], f"prefix of {cut} bytes"
        assert decoder.framer.buffered == cut - ends[complete]
        # What stayed buffered is kept, not lost: the rest of the stream completes it.
        decoder.feed(stream[cut:])
        assert list(decoder) == messages[complete:]


def test_every_prefix_of_the_server_stream() -> None:
    _assert_every_prefix("backend", SMALL_SESSION.server)


def test_every_prefix_of_the_client_stream() -> None:
    _assert_every_prefix("frontend", SMALL_SESSION.client)


def test_every_prefix_of_the_startup_packets() -> None:
    stream = SMALL_SESSION.startup_bytes
    ends = [0, *accumulate(len(packet.encode()) for packet in SMALL_SESSION.startup)]
    for cut in range(len(stream) + 1):
        decoder = StartupDecoder()
        decoder.feed(stream[:cut])
        packets = []
        while (packet := decoder.next_packet()) is not None:
            packets.append(packet)
        complete = max(index for index, end in enumerate(ends) if end <= cut)
        assert packets == SMALL_SESSION.startup[:complete]
        assert decoder.take_raw() == stream[ends[complete] : cut]


def test_prefix_of_a_whole_session_through_the_handover() -> None:
    # Cut inside the first typed message after the StartupMessage: the packets are out, nothing typed yet.
    session: Session = SMALL_SESSION
    startup = session.startup_bytes
    first = session.client[0].encode()
    packets, messages = decode_client_session([startup + first[:-1]])
    assert (packets, messages) == (session.startup, [])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(SERVER_STREAM)))
def test_random_prefix_of_the_large_server_stream(cut: int) -> None:
    ends = [0, *_message_ends(SESSION.server)]
    complete = max(index for index, end in enumerate(ends) if end <= cut)
    decoded, decoder = decode_messages("backend", [SERVER_STREAM[:cut]])
    assert decoded == SESSION.server[:complete]
    assert decoder.framer.buffered == cut - ends[complete]
