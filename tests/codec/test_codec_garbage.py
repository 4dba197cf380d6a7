"""Garbage in: the codec raises one ProtocolError, the relay sends one FATAL; neither ever crashes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.postgres.framing import (
    MessageDecoder,
    StartupDecoder,
    StartupMessage,
    decode_startup_packet,
)
from proxy.postgres.messages import (
    BACKEND_TYPES,
    FRONTEND_TYPES,
    ErrorResponse,
    NoticeResponse,
    decode_backend,
    decode_frontend,
)
from proxy.postgres.protocol import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    PROTOCOL_3_0,
    PROTOCOL_3_2,
    SSL_REQUEST_CODE,
    ProtocolError,
)
from tests.codec.message_strategies import chunkings, split_at
from tests.codec.relay_harness import start_relay

GARBAGE_EXAMPLES = 300
garbage = st.binary(max_size=300)
# Most messages open with one or two strings; random bytes rarely get past them, so often start with some.
frame_bodies = st.binary(max_size=60) | st.builds(
    bytes.__add__, st.sampled_from([b"\0", b"\0\0", b"portal\0stmt\0"]), st.binary(max_size=40)
)


def _framed(type_byte: int, body: bytes) -> bytes:
    return bytes([type_byte]) + struct.pack("!I", len(body) + 4) + body


# ---------------------------------------------------------------- Framer + typed decode


@pytest.mark.parametrize("direction", ["frontend", "backend"])
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(data=garbage)
def test_random_bytes_raise_only_protocol_error(direction: str, data: bytes) -> None:
    decoder = MessageDecoder(direction, 4096)
    decoder.feed(data)
    try:
        for _ in decoder:
            pass
    except ProtocolError:
        return
    # No error: whatever is left is the start of a frame still waiting for its end.
    left = decoder.framer.take_raw()
    assert data.endswith(left)
    assert len(left) < 5 or struct.unpack_from("!I", left, 1)[0] + 1 > len(left)


@pytest.mark.parametrize("direction", ["frontend", "backend"])
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(st.data())
def test_well_framed_random_bodies_raise_only_protocol_error(direction: str, data: st.DataObject) -> None:
    # Random bytes rarely form a frame of a known type; here every frame is well formed, only its body is not.
    types = FRONTEND_TYPES if direction == "frontend" else BACKEND_TYPES
    type_byte = data.draw(st.sampled_from(sorted(types)), label="type")
    body = data.draw(garbage, label="body")
    decode = decode_frontend if direction == "frontend" else decode_backend
    try:
        message = decode(type_byte, body)
    except ProtocolError:
        return
    assert type(message) is types[type_byte]
    # Whatever decodes re-encodes to the very bytes it came from (a rewritten message changes only what
    # the rewrite changed). Field messages are a dict by code, so a repeated code collapses: skip them here.
    if not isinstance(message, ErrorResponse | NoticeResponse):
        assert message.encode() == _framed(type_byte, body)


@pytest.mark.parametrize("direction", ["frontend", "backend"])
def test_unknown_type_byte_is_a_protocol_error(direction: str) -> None:
    types = FRONTEND_TYPES if direction == "frontend" else BACKEND_TYPES
    unknown = next(b for b in range(256) if b not in types)
    decoder = MessageDecoder(direction)
    decoder.feed(_framed(unknown, b""))
    with pytest.raises(ProtocolError, match=f"invalid {direction} message type"):
        decoder.next_message()


# A 16-bit count with no items behind it: "negative" while counts are read signed, "too short" once they
# are read unsigned as PostgreSQL does (see the known-bug tests); either way one ProtocolError.
COUNT_OVERRUN = "negative|too short|unterminated"

MALFORMED: list[tuple[str, bytes, bytes, str]] = [
    ("frontend", b"Q", b"SELECT 1", "unterminated"),
    ("frontend", b"Q", b"SELECT 1\0extra", "trailing"),
    ("frontend", b"Q", b"SELECT \xff\0", "UTF-8"),
    ("frontend", b"P", b"\0SELECT 1\0\xff\xff", COUNT_OVERRUN),
    ("frontend", b"P", b"\0SELECT 1\0\0\x02\0\0\0\x17", "too short"),
    ("frontend", b"B", b"\0\0\0\0\0\x01\0\0\0\x09abc\0\0", "too short"),
    ("frontend", b"B", b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0", "too short"),
    ("frontend", b"B", b"\0\0\0\0\xff\xff\0\0", COUNT_OVERRUN),
    ("frontend", b"D", b"X\0", "S or P"),
    ("frontend", b"D", b"", "too short"),
    ("frontend", b"C", b"Q name\0", "S or P"),
    ("frontend", b"E", b"\0\0\0", "too short"),
    ("frontend", b"S", b"\0", "trailing"),
    ("frontend", b"X", b"bye", "trailing"),
    ("frontend", b"F", b"\0\0\0\x01", "too short"),
    ("backend", b"R", b"\0\0", "too short"),
    ("backend", b"K", b"\0\0\0\x01\0\0\0", "4 to 256"),
    ("backend", b"K", b"\0\0\0\x01" + bytes(257), "4 to 256"),
    ("backend", b"Z", b"", "too short"),
    ("backend", b"Z", b"Q", "I, T or E"),
    ("backend", b"Z", b"II", "trailing"),
    ("backend", b"D", b"\xff\xff", COUNT_OVERRUN),
    ("backend", b"D", b"\0\x01\0\0\0\x05ab", "too short"),
    ("backend", b"T", b"\0\x01name\0\0\0", "too short"),
    ("backend", b"T", b"\xff\xff", COUNT_OVERRUN),
    ("backend", b"E", b"SERROR\0", "too short"),
    ("backend", b"E", b"SERROR", "unterminated"),
    ("backend", b"v", b"\0\0\0\0\xff\xff\xff\xff", "negative"),
    ("backend", b"v", b"\0\0\0\0\0\0\0\x02a\0", "unterminated"),
    ("backend", b"t", b"\x80\0", COUNT_OVERRUN),
    ("backend", b"V", b"\0\0\0\x05ab", "too short"),
    ("backend", b"G", b"\0\0\x01", "too short"),
    ("backend", b"A", b"\0\0\0\x01chan\0", "unterminated"),
    ("backend", b"1", b"\0", "trailing"),
]


@pytest.mark.parametrize(("direction", "type_byte", "body", "match"), MALFORMED)
def test_malformed_body_is_one_protocol_error(
    direction: str, type_byte: bytes, body: bytes, match: str
) -> None:
    decoder = MessageDecoder(direction)
    decoder.feed(_framed(type_byte[0], body))
    with pytest.raises(ProtocolError, match=match):
        decoder.next_message()


# ---------------------------------------------------------------- startup phase


@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(garbage)
def test_random_bytes_in_the_startup_phase_raise_only_protocol_error(data: bytes) -> None:
    decoder = StartupDecoder()
    decoder.feed(data)
    try:
        while decoder.next_packet() is not None:
            pass
    except ProtocolError:
        return
    left = decoder.take_raw()
    assert data.endswith(left)
    assert len(left) < 4 or struct.unpack_from("!I", left)[0] > len(left)


startup_codes = st.sampled_from(
    (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE, PROTOCOL_3_0, PROTOCOL_3_2)
) | st.integers(0, 2**32 - 1)


@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(startup_codes, st.binary(max_size=300))
def test_startup_packet_with_random_body_raises_only_protocol_error(code: int, tail: bytes) -> None:
    body = struct.pack("!I", code) + tail
    packet = struct.pack("!I", len(body) + 4) + body
    try:
        decoded = decode_startup_packet(packet)
    except ProtocolError:
        return
    if isinstance(decoded, StartupMessage):
        # A repeated parameter name keeps its last value, so compare what re-encoding decodes to.
        assert decode_startup_packet(decoded.encode()) == decoded
    else:
        assert decoded.encode() == packet


MALFORMED_STARTUP: list[tuple[bytes, str]] = [
    (b"\0\0\0\x04", "too short"),
    (struct.pack("!II", 9, SSL_REQUEST_CODE) + b"x", "SSLRequest"),
    (struct.pack("!II", 9, GSSENC_REQUEST_CODE) + b"x", "GSSENCRequest"),
    (struct.pack("!IIi", 12, CANCEL_REQUEST_CODE, 1), "CancelRequest"),
    (struct.pack("!IIi", 269, CANCEL_REQUEST_CODE, 1) + bytes(257), "CancelRequest"),
    (struct.pack("!II", 8, 2 << 16), "unsupported frontend protocol 2.0"),
    (struct.pack("!II", 8, PROTOCOL_3_0), "parameters"),
    (struct.pack("!II", 13, PROTOCOL_3_0) + b"user\0", "parameters"),
    (struct.pack("!II", 15, PROTOCOL_3_0) + b"user\0x\0", "parameters"),
    (struct.pack("!II", 14, PROTOCOL_3_0) + b"\0\0a\0\0\0", "empty startup parameter name"),
    (struct.pack("!II", 13, PROTOCOL_3_0) + b"u\0\xff\0\0", "UTF-8"),
]


@pytest.mark.parametrize(("packet", "match"), MALFORMED_STARTUP)
def test_malformed_startup_packet_is_one_protocol_error(packet: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_startup_packet(packet)


# ---------------------------------------------------------------- the relay's inline framing


def _drive_relay_with_garbage(direction: str, data: bytes, cuts: list[int]) -> None:
    harness = start_relay(max_message_size=4096)
    endpoint = harness.client if direction == "client" else harness.server
    for chunk in split_at(data, cuts):
        if chunk:
            endpoint.receive(chunk)  # must not raise: an exception here escapes data_received
    assert len(harness.close_reasons) <= 1
    if harness.close_reasons and "protocol error" in harness.close_reasons[0]:
        # Ended by the garbage (not by a Terminate that happened to be in it): a FATAL 08P01 went out.
        assert b"C08P01\0" in bytes(harness.client.transport.sent)


@pytest.mark.parametrize("direction", ["client", "server"])
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(st.data())
def test_random_bytes_never_crash_the_relay(direction: str, data: st.DataObject) -> None:
    payload = data.draw(garbage, label="payload")
    cuts = data.draw(chunkings(len(payload), max_cuts=8), label="cuts")
    _drive_relay_with_garbage(direction, payload, cuts)


@pytest.mark.parametrize("direction", ["client", "server"])
@settings(max_examples=GARBAGE_EXAMPLES, deadline=None)
@given(st.data())
def test_well_framed_random_bodies_never_crash_the_relay(direction: str, data: st.DataObject) -> None:
    types = FRONTEND_TYPES if direction == "client" else BACKEND_TYPES
    frames = data.draw(
        st.lists(st.tuples(st.sampled_from(sorted(types)), frame_bodies), min_size=1, max_size=6),
        label="frames",
    )
    payload = b"".join(_framed(type_byte, body) for type_byte, body in frames if type_byte != ord("X"))
    cuts = data.draw(chunkings(len(payload), max_cuts=6), label="cuts")
    _drive_relay_with_garbage(direction, payload, cuts)
