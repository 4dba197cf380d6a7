"""PostgreSQL DataRow bytes as recorded in ``pg.rows`` events: decode them for readers and exports."""

from __future__ import annotations

import struct

from recordings.errors import RecordingFormatError

_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_NULL_LENGTH = -1


def decode_datarows(raw: bytes) -> list[list[bytes | None]]:
    """The column values of every DataRow message in ``raw`` (``None`` for SQL NULL).

    ``raw`` is the concatenation of backend ``D`` messages exactly as on the wire:
    ``b'D' + int32 length + int16 column count + (int32 value length + value bytes) * count``.
    """
    view = memoryview(raw)
    rows: list[list[bytes | None]] = []
    offset = 0
    end = len(raw)
    while offset < end:
        if end - offset < 7 or view[offset] != 0x44:
            raise RecordingFormatError(f"not a DataRow message at byte {offset}")
        (length,) = _INT32.unpack_from(raw, offset + 1)
        message_end = offset + 1 + length
        if length < 6 or message_end > end:
            raise RecordingFormatError(f"DataRow at byte {offset} has a bad length {length}")
        (columns,) = _INT16.unpack_from(raw, offset + 5)
        position = offset + 7
        values: list[bytes | None] = []
        for _ in range(columns):
            if position + 4 > message_end:
                raise RecordingFormatError(f"DataRow at byte {offset} ends inside a column")
            (size,) = _INT32.unpack_from(raw, position)
            position += 4
            if size == _NULL_LENGTH:
                values.append(None)
                continue
            if size < 0 or position + size > message_end:
                raise RecordingFormatError(f"DataRow at byte {offset} has a bad column length {size}")
            values.append(bytes(view[position : position + size]))
            position += size
        if position != message_end:
            raise RecordingFormatError(f"DataRow at byte {offset} has trailing bytes")
        rows.append(values)
        offset = message_end
    return rows


def encode_datarow(values: list[bytes | None]) -> bytes:
    """One DataRow message for ``values`` -- what the proxy forwards, for tests and benchmarks."""
    parts = [_INT16.pack(len(values))]
    for value in values:
        if value is None:
            parts.append(_INT32.pack(_NULL_LENGTH))
        else:
            parts.append(_INT32.pack(len(value)))
            parts.append(value)
    body = b"".join(parts)
    return b"D" + _INT32.pack(len(body) + 4) + body
