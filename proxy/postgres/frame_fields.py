"""Reading one frame of a received buffer in place: strings, error fields, RowDescription, Bind formats."""

# The relay never copies a frame out of the buffer to read it: each function takes the buffer and the
# frame's bounds (`start` just after the type byte and length, `end` one past the frame).

from __future__ import annotations

import struct

from proxy.postgres.messages import ErrorResponse
from proxy.postgres.protocol import ProtocolError

_unpack_i32 = struct.Struct("!i").unpack_from
_unpack_u16 = struct.Struct("!H").unpack_from
_unpack_i16 = struct.Struct("!h").unpack_from
_unpack_u32 = struct.Struct("!I").unpack_from

OWN_ERROR_MARK = b"Mhoop: statement "

_KEPT_ERROR_FIELDS = frozenset("SVCMDH")


def clean_own_error(data: bytes, start: int, end: int) -> bytes:
    """The gateway's own raised denial as an ErrorResponse without the context PostgreSQL attaches to it."""
    fields = fields_at(data, start, end)
    return ErrorResponse({k: v for k, v in fields.items() if k in _KEPT_ERROR_FIELDS}).encode()


def fields_at(data: bytes, start: int, end: int) -> dict[str, str]:
    """Error/notice fields, decoded leniently (a non-UTF-8 client_encoding must not break recording)."""
    fields: dict[str, str] = {}
    offset = start
    while offset < end and data[offset] != 0:
        code = chr(data[offset])
        value, offset = cstring_at(data, offset + 1, end)
        fields[code] = value
    return fields


def row_description_at(data: bytes, start: int, end: int) -> tuple[list[str], list[int]]:
    """Column names and type OIDs of a RowDescription, names decoded leniently."""
    count = _unpack_u16(data, start)[0] if start + 2 <= end else 0
    offset = start + 2
    names: list[str] = []
    oids: list[int] = []
    for _ in range(count):
        name, offset = cstring_at(data, offset, end)
        if offset + 18 > end:
            raise ProtocolError("truncated RowDescription")
        names.append(name)
        oids.append(_unpack_u32(data, offset + 6)[0])
        offset += 18
    return names, oids


class NotUtf8(ProtocolError):
    """SQL text that is not valid UTF-8: never classified by guesswork (it is denied)."""


def sql_at(data: bytes, start: int, end: int) -> tuple[str, int]:
    """Like `cstring_at`, but strict: the classifier must see exactly the text the server will run."""
    stop = data.find(b"\0", start, end)
    if stop < 0:
        raise ProtocolError("unterminated string in message")
    try:
        return data[start:stop].decode("utf-8"), stop + 1
    except UnicodeDecodeError:
        raise NotUtf8("statement text is not valid UTF-8") from None


def bind_result_formats(data: bytes, offset: int, end: int) -> tuple[int, ...]:
    """The result format codes at the end of a Bind body, `offset` being just after the statement name."""

    def need(size: int) -> None:
        if offset + size > end:
            raise ProtocolError("truncated Bind message")

    need(2)
    offset += 2 + 2 * _unpack_u16(data, offset)[0]  # parameter format codes
    need(2)
    count = _unpack_u16(data, offset)[0]
    offset += 2
    for _ in range(count):  # parameter values
        need(4)
        offset += 4 + max(_unpack_i32(data, offset)[0], 0)
    need(2)
    count = _unpack_u16(data, offset)[0]
    need(2 + 2 * count)
    return tuple(_unpack_i16(data, offset + 2 + 2 * i)[0] for i in range(count))


def cstring_at(data: bytes, start: int, end: int) -> tuple[str, int]:
    """The NUL-terminated string at `start` (in a frame ending at `end`) and the offset after it."""
    stop = data.find(b"\0", start, end)
    if stop < 0:
        raise ProtocolError("unterminated string in message")
    return data[start:stop].decode("utf-8", "replace"), stop + 1


class PartialFrame:
    """The incomplete last frame of a direction, kept as chunks: joined once, when the frame is whole.

    Re-concatenating on every read would make one large message cost quadratic copying, stalling the
    event loop (and every session on it) for seconds.
    """

    __slots__ = ("need", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.need = 0

    def keep(self, data: bytes, start: int) -> None:
        rest = data[start:]
        self.parts = [rest]
        self.size = len(rest)
        # Bytes needed before framing can continue: the whole frame if its header is here, else the header.
        self.need = 1 + _unpack_i32(rest, 1)[0] if len(rest) >= 5 else 5

    def add(self, data: bytes) -> bytes | None:
        self.parts.append(data)
        self.size += len(data)
        if self.size < self.need:
            return None
        joined = b"".join(self.parts)
        self.clear()
        return joined

    def clear(self) -> None:
        self.parts = []
        self.size = 0
