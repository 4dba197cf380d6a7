"""Incremental framing: bytes in any split → whole typed messages, and the startup-phase packet decoder."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from proxy.postgres.messages import Message, decode_backend, decode_frontend
from proxy.postgres.protocol import (
    CANCEL_REQUEST_CODE,
    DEFAULT_MAX_MESSAGE_SIZE,
    GSSENC_REQUEST_CODE,
    MAX_STARTUP_PACKET,
    SSL_REQUEST_CODE,
    ProtocolError,
)

_HEADER = struct.Struct("!BI")
_U32 = struct.Struct("!I")


def check_length(length: int, max_size: int) -> None:
    """The length field counts itself; under 4 or over the cap is a protocol error."""
    if length < 4:
        raise ProtocolError(f"message length {length} is below the minimum of 4")
    if length > max_size:
        raise ProtocolError(f"message length {length} exceeds the limit of {max_size} bytes")


class Framer:
    """Splits a byte stream into (type byte, body) frames; correct for any split of the input."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_raw(self) -> bytes:
        """Hand over whatever is buffered and not yet framed (used when a session switches to relaying)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def next_frame(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 5:
            return None
        type_byte, length = _HEADER.unpack_from(buffer, 0)
        check_length(length, self._max)
        end = 1 + length
        if len(buffer) < end:
            return None
        body = bytes(buffer[5:end])
        del buffer[:end]
        return type_byte, body

    def frames(self) -> Iterator[tuple[int, bytes]]:
        while (item := self.next_frame()) is not None:
            yield item


class MessageDecoder:
    """Framer plus typed decoding for one direction: "frontend" (client side) or "backend" (server side)."""

    __slots__ = ("_decode", "framer")

    def __init__(self, direction: str, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if direction not in ("frontend", "backend"):
            raise ValueError("direction must be 'frontend' or 'backend'")
        self.framer = Framer(max_size)
        self._decode = decode_frontend if direction == "frontend" else decode_backend

    def feed(self, data: bytes) -> None:
        self.framer.feed(data)

    def next_message(self) -> Message | None:
        item = self.framer.next_frame()
        if item is None:
            return None
        return self._decode(*item)

    def __iter__(self) -> Iterator[Message]:
        while (message := self.next_message()) is not None:
            yield message


# ---------------------------------------------------------------- startup phase


@dataclass(slots=True)
class StartupMessage:
    protocol: int
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def major(self) -> int:
        return self.protocol >> 16

    @property
    def minor(self) -> int:
        return self.protocol & 0xFFFF

    def encode(self) -> bytes:
        body = _U32.pack(self.protocol)
        for key, value in self.parameters.items():
            body += key.encode() + b"\0" + value.encode() + b"\0"
        body += b"\0"
        return _U32.pack(len(body) + 4) + body


@dataclass(slots=True)
class SSLRequest:
    def encode(self) -> bytes:
        return _U32.pack(8) + _U32.pack(SSL_REQUEST_CODE)


@dataclass(slots=True)
class GSSENCRequest:
    def encode(self) -> bytes:
        return _U32.pack(8) + _U32.pack(GSSENC_REQUEST_CODE)


@dataclass(slots=True)
class CancelRequest:
    pid: int
    secret: bytes

    def encode(self) -> bytes:
        body = _U32.pack(CANCEL_REQUEST_CODE) + struct.pack("!i", self.pid) + self.secret
        return _U32.pack(len(body) + 4) + body


StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest


def decode_startup_packet(packet: bytes) -> StartupPacket:
    """Decode one whole untyped startup packet (length prefix included)."""
    if len(packet) < 8:
        raise ProtocolError("startup packet too short")
    code = _U32.unpack_from(packet, 4)[0]
    if code == SSL_REQUEST_CODE:
        if len(packet) != 8:
            raise ProtocolError("malformed SSLRequest")
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        if len(packet) != 8:
            raise ProtocolError("malformed GSSENCRequest")
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        secret = packet[12:]
        if len(packet) < 16 or len(secret) > 256:
            raise ProtocolError("malformed CancelRequest")
        return CancelRequest(struct.unpack_from("!i", packet, 8)[0], bytes(secret))
    if code >> 16 != 3:
        raise ProtocolError(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
    parts = bytes(packet[8:]).split(b"\0")
    # The list ends with a terminating empty name: key, value, ..., "" (plus the split's trailing "").
    if len(parts) < 2 or parts[-1] != b"" or parts[-2] != b"" or len(parts) % 2 != 0:
        raise ProtocolError("malformed startup packet parameters")
    parameters: dict[str, str] = {}
    try:
        for index in range(0, len(parts) - 2, 2):
            key = parts[index].decode("utf-8")
            if not key:
                raise ProtocolError("empty startup parameter name")
            parameters[key] = parts[index + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("startup parameters are not valid UTF-8") from exc
    return StartupMessage(code, parameters)


class StartupDecoder:
    """Frames the untyped startup packets (int32 length, int32 code, ...) that open a connection."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def take_raw(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def next_packet(self) -> StartupPacket | None:
        buffer = self._buffer
        if len(buffer) < 4:
            return None
        length = _U32.unpack_from(buffer, 0)[0]
        if length < 8 or length > MAX_STARTUP_PACKET:
            raise ProtocolError(f"invalid startup packet length {length}")
        if len(buffer) < length:
            return None
        packet = bytes(buffer[:length])
        del buffer[:length]
        return decode_startup_packet(packet)
