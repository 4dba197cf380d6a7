"""The length cap: under 4 or over the limit is a ProtocolError in the Framer and ends a relayed session."""

from __future__ import annotations

import struct

import pytest

from proxy.postgres.framing import Framer, MessageDecoder, StartupDecoder, check_length
from proxy.postgres.messages import DataRow, ErrorResponse, Query
from proxy.postgres.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_STARTUP_PACKET,
    SQLSTATE_PROTOCOL_VIOLATION,
    ProtocolError,
)
from tests.codec.relay_harness import RelayHarness, start_relay
from tests.codec.stream_decoding import decode_messages

CAP = 1000
TERMINATE = b"X\x00\x00\x00\x04"
# Length fields as unsigned 32-bit numbers: below the minimum, over the cap, and "negative" when signed.
BAD_LENGTHS = [0, 1, 3, CAP + 1, 2**31 - 1, 2**31, 2**32 - 1]


def _header(type_byte: bytes, length: int) -> bytes:
    return type_byte + struct.pack("!I", length)


# ---------------------------------------------------------------- Framer and MessageDecoder


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_framer_rejects_a_bad_length_from_the_header_alone(length: int) -> None:
    framer = Framer(CAP)
    framer.feed(_header(b"D", length))  # no body at all: the header is enough to know
    with pytest.raises(ProtocolError, match=str(length)):
        framer.next_frame()


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_framer_rejects_a_bad_length_fed_byte_by_byte(length: int) -> None:
    framer = Framer(CAP)
    header = _header(b"Q", length)
    for byte in header[:-1]:
        framer.feed(bytes([byte]))
        assert framer.next_frame() is None
    framer.feed(header[-1:])
    with pytest.raises(ProtocolError):
        framer.next_frame()


def test_framer_accepts_the_bounds() -> None:
    framer = Framer(CAP)
    framer.feed(_header(b"S", 4))
    assert framer.next_frame() == (ord("S"), b"")
    framer.feed(_header(b"d", CAP) + b"x" * (CAP - 5))
    assert framer.next_frame() is None  # exactly at the cap: allowed, still waiting for one byte
    assert framer.buffered == CAP
    framer.feed(b"y")
    assert framer.next_frame() == (ord("d"), b"x" * (CAP - 5) + b"y")


def test_framer_default_cap_is_64_mib() -> None:
    assert DEFAULT_MAX_MESSAGE_SIZE == 64 * 1024 * 1024
    at_cap = Framer()
    at_cap.feed(_header(b"D", DEFAULT_MAX_MESSAGE_SIZE))
    assert at_cap.next_frame() is None
    over_cap = Framer()
    over_cap.feed(_header(b"D", DEFAULT_MAX_MESSAGE_SIZE + 1))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        over_cap.next_frame()


def test_message_decoder_applies_its_cap_after_good_messages() -> None:
    good = Query("SELECT 1").encode()
    decoder = MessageDecoder("frontend", CAP)
    decoder.feed(good + _header(b"Q", CAP + 1))
    assert decoder.next_message() == Query("SELECT 1")
    with pytest.raises(ProtocolError):
        decoder.next_message()


def test_message_decoder_cap_bounds_a_data_row() -> None:
    row = DataRow((b"v" * CAP,)).encode()
    with pytest.raises(ProtocolError):
        decode_messages("backend", [row], max_size=CAP)
    assert decode_messages("backend", [row], max_size=len(row) - 1)[0] == [DataRow((b"v" * CAP,))]


def test_check_length() -> None:
    check_length(4, 4)
    check_length(CAP, CAP)
    with pytest.raises(ProtocolError, match="below the minimum"):
        check_length(3, CAP)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        check_length(CAP + 1, CAP)


def test_message_decoder_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        MessageDecoder("sideways")


# ---------------------------------------------------------------- startup packets


@pytest.mark.parametrize("length", [0, 4, 7, MAX_STARTUP_PACKET + 1, 2**31, 2**32 - 1])
def test_startup_decoder_rejects_a_bad_length_from_the_length_alone(length: int) -> None:
    decoder = StartupDecoder()
    decoder.feed(struct.pack("!I", length))
    with pytest.raises(ProtocolError, match="startup packet length"):
        decoder.next_packet()


def test_startup_decoder_accepts_a_packet_at_the_limit() -> None:
    decoder = StartupDecoder()
    decoder.feed(struct.pack("!I", MAX_STARTUP_PACKET) + b"\x00\x03\x00\x00")
    assert decoder.next_packet() is None  # waiting for the rest


# ---------------------------------------------------------------- the relay's inline framing


def _assert_ended_with_fatal_protocol_error(harness: RelayHarness, already_sent: bytes = b"") -> None:
    assert len(harness.close_reasons) == 1
    sent = bytes(harness.client.transport.sent)
    assert sent.startswith(already_sent)
    messages, decoder = decode_messages("backend", [sent[len(already_sent) :]])
    assert decoder.framer.buffered == 0
    assert len(messages) == 1
    error = messages[0]
    assert isinstance(error, ErrorResponse)
    assert error.severity == "FATAL"
    assert error.sqlstate == SQLSTATE_PROTOCOL_VIOLATION
    # The upstream gets a clean Terminate and both sides are closed.
    assert bytes(harness.server.transport.sent).endswith(TERMINATE)
    assert harness.client.transport.closing
    assert harness.server.transport.closing


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_relay_ends_the_session_on_a_bad_client_length(length: int) -> None:
    harness = start_relay(max_message_size=CAP)
    query = Query("SELECT 1").encode()
    harness.client.receive(query)
    harness.client.receive(_header(b"Q", length))
    _assert_ended_with_fatal_protocol_error(harness)
    assert harness.close_reasons[0].startswith("protocol error")
    assert bytes(harness.server.transport.sent) == query + TERMINATE
    # The relay let go of both endpoints: later bytes go nowhere.
    harness.client.receive(query)
    assert bytes(harness.server.transport.sent) == query + TERMINATE
    assert len(harness.close_reasons) == 1


@pytest.mark.parametrize("length", BAD_LENGTHS)
def test_relay_ends_the_session_on_a_bad_server_length(length: int) -> None:
    harness = start_relay(max_message_size=CAP)
    row = DataRow((b"1",)).encode()
    harness.server.receive(row)
    harness.server.receive(_header(b"D", length))
    _assert_ended_with_fatal_protocol_error(harness, already_sent=row)
    assert harness.close_reasons[0].startswith("upstream protocol error")


def test_relay_checks_the_cap_as_soon_as_the_header_is_complete() -> None:
    harness = start_relay(max_message_size=CAP)
    header = _header(b"d", CAP + 1)
    harness.client.receive(header[:3])
    assert harness.close_reasons == []
    harness.client.receive(header[3:])
    _assert_ended_with_fatal_protocol_error(harness)


def test_relay_accepts_a_message_exactly_at_the_cap() -> None:
    harness = start_relay(max_message_size=CAP)
    message = _header(b"d", CAP) + b"z" * (CAP - 4)
    harness.client.receive(message[:-1])
    assert bytes(harness.server.transport.sent) == b""  # incomplete frames are held back
    harness.client.receive(message[-1:])
    assert harness.close_reasons == []
    assert bytes(harness.server.transport.sent) == message
