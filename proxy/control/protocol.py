"""Control API framing: a 4-byte big-endian length, then one msgpack map; sans-I/O encode and decode.

Messages (all maps):
  client → server  {"op": "hello", "token": T}                      first frame, exactly once
                   {"id": n, "op": OP, ...fields}                   a request (n: a non-negative integer)
                   {"id": m, "op": "unwatch", "watch": n}           end stream n
  server → client  {"id": n, "ok": true, "result": R}               the answer (for a stream: its start)
                   {"id": n, "ok": false, "error": "one line"}      a refusal or failure
                   {"id": n, "event": E}                            one stream item, after its start
                   {"id": n, "end": "why"}                          the stream is over (no more events)
A frame that is not a msgpack map, or is longer than MAX_FRAME, ends that control connection only.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

MAX_FRAME = 16 * 1024 * 1024
PROTOCOL_VERSION = 1
_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be read; the connection that sent it is closed. One line, no payload bytes."""


def encode_frame(message: dict[str, Any], max_frame: int = MAX_FRAME) -> bytes:
    """The frame for `message`; ValueError when it cannot be packed or is longer than `max_frame`."""
    try:
        payload = msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"cannot encode control message: {error}") from None
    if len(payload) > max_frame:
        raise ValueError(f"control message of {len(payload)} bytes exceeds the {max_frame}-byte frame cap")
    return _LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    """One frame's payload as a map with string keys; FrameError otherwise."""
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except Exception as error:  # msgpack raises several unrelated types for garbage
        raise FrameError(f"malformed frame ({type(error).__name__})") from None
    if not isinstance(message, dict):
        raise FrameError("a control frame must hold a map")
    if not all(isinstance(key, str) for key in message):
        raise FrameError("control frame keys must be strings")
    return message


class FrameDecoder:
    """Incremental: `feed` any slice of the byte stream, get every whole message it completes."""

    __slots__ = ("_buffer", "_max_frame", "_needed")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame
        self._needed = 0  # payload length of the frame being read; 0 while reading a length

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages: list[dict[str, Any]] = []
        buffer = self._buffer
        start = 0
        while True:
            if not self._needed:
                if len(buffer) - start < _LENGTH.size:
                    break
                (length,) = _LENGTH.unpack_from(buffer, start)
                if length > self._max_frame:
                    raise FrameError(f"frame of {length} bytes exceeds the {self._max_frame}-byte cap")
                if length == 0:
                    raise FrameError("empty control frame")
                start += _LENGTH.size
                self._needed = length
            if len(buffer) - start < self._needed:
                break
            end = start + self._needed
            messages.append(decode_payload(bytes(buffer[start:end])))
            start = end
            self._needed = 0
        if start:
            del buffer[:start]
        return messages

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)
