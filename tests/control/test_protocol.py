"""Control frames: round trips in any slicing, the size cap, and garbage that only ever raises FrameError."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.control.address import ControlAddress, parse_control_address
from proxy.control.protocol import MAX_FRAME, FrameDecoder, FrameError, decode_payload, encode_frame

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
scalars |= st.text(max_size=40) | st.binary(max_size=40)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
messages = st.dictionaries(st.text(max_size=12), values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_messages_survive_any_slicing(batch: list[dict], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(message) for message in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    received: list[dict] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        received += decoder.feed(stream[start:cut])
        start = cut
    assert received == batch
    assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    message = {"id": 7, "op": "approvals.decide", "request": "r1", "approve": True, "reason": "ok ✓"}
    decoder = FrameDecoder()
    frame = encode_frame(message)
    out = [item for byte in frame for item in decoder.feed(bytes([byte]))]
    assert out == [message]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_raises_frame_error_or_decodes_to_maps(garbage: bytes) -> None:
    decoder = FrameDecoder(max_frame=1024)
    try:
        decoded = decoder.feed(garbage)
    except FrameError as error:
        assert "\n" not in str(error)
    else:
        assert all(isinstance(message, dict) for message in decoded)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (msgpack.packb([1, 2]), "must hold a map"),
        (msgpack.packb({1: "x"}), "malformed frame"),
        (b"\xc1", "malformed frame"),
        (msgpack.packb({"a": 1}) + b"\x00", "malformed frame"),
    ],
)
def test_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_payload(payload)


def test_frames_over_the_cap_and_empty_frames_are_refused() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(FrameError, match="empty"):
        FrameDecoder().feed(struct.pack(">I", 0))
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame({"blob": b"x" * 2000}, max_frame=1000)
    with pytest.raises(ValueError, match="cannot encode"):
        encode_frame({"when": object()})


def test_control_addresses() -> None:
    unix = ControlAddress("unix", path=Path("/run/hoop/control.sock"))
    assert parse_control_address("unix:/run/hoop/control.sock") == unix
    assert parse_control_address("tcp://127.0.0.1:7443") == ControlAddress("tcp", host="127.0.0.1", port=7443)
    assert str(parse_control_address("tcp://[::1]:7443")) == "tcp://[::1]:7443"
    for bad in ("", "unix:", "http://x:1", "tcp://nohost", "tcp://h:99999"):
        with pytest.raises(ValueError):
            parse_control_address(bad)
