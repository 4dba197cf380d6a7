"""Byte layout of a ``.hrec`` file: preamble, block framing, chunk prefix, seal message and index columns.

A file is ``HOOPREC`` + one version byte, then blocks. Every block is framed as
``type (1 byte) | payload length (uint32 BE) | CRC-32 of those 5 bytes (uint32 BE)`` followed by the payload.
The CRC guards only the framing: a damaged length field is reported as damage instead of being mistaken for a
file cut short by a crash. Payload integrity comes from the SHA-256 chain and the Ed25519 seal.

Blocks, in order: one header (``H``, a msgpack map), any number of chunks (``C``), then for a finished
recording one seal (``S``, a msgpack map) and one trailer (``T``, the seal's file offset, so readers find the
seal without scanning).

A chunk payload is ``seq, first_t, last_t, event_count, raw_length`` (:data:`CHUNK_META`), the 32-byte chain
value, then one zstd frame holding the msgpack events back to back. The chain value of chunk *n* is
``SHA-256(chain[n-1] || meta || frame)``; ``chain[-1]`` is the header hash, which is ``SHA-256`` of every file
byte before the first chunk (preamble and header block).
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass

from recordings.errors import RecordingFormatError

MAGIC = b"HOOPREC"
FORMAT_VERSION = 1
PREAMBLE = MAGIC + bytes([FORMAT_VERSION])

BLOCK_HEADER = b"H"
BLOCK_CHUNK = b"C"
BLOCK_SEAL = b"S"
BLOCK_TRAILER = b"T"
BLOCK_TYPES = frozenset({BLOCK_HEADER, BLOCK_CHUNK, BLOCK_SEAL, BLOCK_TRAILER})

_FRAMING = struct.Struct(">cI")
_CRC = struct.Struct(">I")
FRAMING_SIZE = _FRAMING.size + _CRC.size
ZERO_FRAMING = bytes(FRAMING_SIZE)

# Caps that keep a damaged or hostile file from making a reader allocate gigabytes.
MAX_HEADER_PAYLOAD = 1 << 20
MAX_CHUNK_PAYLOAD = 1 << 28
MAX_SEAL_PAYLOAD = 1 << 30
MAX_CHUNK_RAW = 1 << 28

CHUNK_META = struct.Struct(">IqqII")
CHAIN_SIZE = 32
CHUNK_PREFIX_SIZE = CHUNK_META.size + CHAIN_SIZE

_TRAILER = struct.Struct(">Q")
TRAILER_PAYLOAD_SIZE = _TRAILER.size
TRAILER_BLOCK_SIZE = FRAMING_SIZE + TRAILER_PAYLOAD_SIZE

SEAL_DOMAIN = b"hoop-recording-seal/v1\x00"
_SEAL_COUNTS = struct.Struct(">QQQ")

# Seal index columns: name -> array typecode. Stored little-endian so the reader can bisect them directly.
INDEX_COLUMNS: dict[str, str] = {
    "offset": "Q",
    "length": "I",
    "first_t": "q",
    "last_t": "q",
    "event_count": "I",
    "first_event": "Q",
}


def encode_framing(block_type: bytes, length: int) -> bytes:
    """The 9 framing bytes of a block of ``block_type`` carrying ``length`` payload bytes."""
    head = _FRAMING.pack(block_type, length)
    return head + _CRC.pack(zlib.crc32(head))


def decode_framing(raw: bytes) -> tuple[bytes, int]:
    """``(block_type, payload_length)`` from 9 framing bytes; damage raises :class:`RecordingFormatError`."""
    head = raw[: _FRAMING.size]
    (crc,) = _CRC.unpack_from(raw, _FRAMING.size)
    if zlib.crc32(head) != crc:
        raise RecordingFormatError("block framing is damaged (checksum mismatch)")
    block_type, length = _FRAMING.unpack(head)
    if block_type not in BLOCK_TYPES:
        raise RecordingFormatError(f"unknown block type {block_type!r}")
    limit = {
        BLOCK_HEADER: MAX_HEADER_PAYLOAD,
        BLOCK_CHUNK: MAX_CHUNK_PAYLOAD,
        BLOCK_SEAL: MAX_SEAL_PAYLOAD,
        BLOCK_TRAILER: TRAILER_PAYLOAD_SIZE,
    }[block_type]
    if length > limit or (block_type == BLOCK_TRAILER and length != TRAILER_PAYLOAD_SIZE):
        raise RecordingFormatError(f"block {block_type.decode()} has an impossible length {length}")
    return block_type, length


def check_preamble(raw: bytes) -> None:
    """Raise unless ``raw`` (the first 8 bytes) is the preamble of a version this code reads."""
    if raw[: len(MAGIC)] != MAGIC:
        raise RecordingFormatError("not a hoop recording (bad magic)")
    if len(raw) < len(PREAMBLE):
        raise RecordingFormatError("file ends inside the preamble")
    if raw[len(MAGIC)] != FORMAT_VERSION:
        raise RecordingFormatError(f"unsupported recording format version {raw[len(MAGIC)]}")


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """The fixed-size description at the start of every chunk payload."""

    seq: int
    first_t: int
    last_t: int
    event_count: int
    raw_length: int

    def pack(self) -> bytes:
        return CHUNK_META.pack(self.seq, self.first_t, self.last_t, self.event_count, self.raw_length)

    @classmethod
    def unpack(cls, raw: bytes) -> ChunkMeta:
        return cls(*CHUNK_META.unpack_from(raw, 0))


def chain_next(prev_chain: bytes, meta: bytes, frame: bytes) -> bytes:
    """The chain value of a chunk given the previous chain value and the chunk's hashed bytes."""
    digest = hashlib.sha256(prev_chain)
    digest.update(meta)
    digest.update(frame)
    return digest.digest()


def split_chunk_payload(payload: bytes) -> tuple[ChunkMeta, bytes, bytes, bytes]:
    """``(meta, meta_bytes, stored_chain, frame)`` of a chunk payload."""
    if len(payload) < CHUNK_PREFIX_SIZE:
        raise RecordingFormatError("chunk is shorter than its fixed prefix")
    meta_bytes = payload[: CHUNK_META.size]
    chain = payload[CHUNK_META.size : CHUNK_PREFIX_SIZE]
    return ChunkMeta.unpack(meta_bytes), meta_bytes, chain, payload[CHUNK_PREFIX_SIZE:]


def encode_trailer(seal_offset: int) -> bytes:
    return encode_framing(BLOCK_TRAILER, TRAILER_PAYLOAD_SIZE) + _TRAILER.pack(seal_offset)


def decode_trailer_payload(payload: bytes) -> int:
    return _TRAILER.unpack(payload)[0]


def seal_message(
    header_hash: bytes, final_chain: bytes, event_count: int, duration_us: int, chunks: int, seal_body: bytes
) -> bytes:
    """The exact bytes the seal signature covers.

    The seal payload is a msgpack map ``{"body": <msgpack map as bytes>, "signature": <64 bytes>}``; signing
    the body's hash as well means no byte of the seal can change unnoticed, not just the totals.
    """
    return (
        SEAL_DOMAIN
        + header_hash
        + final_chain
        + _SEAL_COUNTS.pack(event_count, duration_us, chunks)
        + hashlib.sha256(seal_body).digest()
    )


def _check_itemsize(column: array) -> None:
    expected = 4 if column.typecode in "Ii" else 8
    if column.itemsize != expected:
        raise RecordingFormatError(f"platform array '{column.typecode}' is not {expected} bytes")


def pack_column(column: array) -> bytes:
    """Little-endian bytes of an index column."""
    _check_itemsize(column)
    if sys.byteorder == "little":
        return column.tobytes()
    swapped = array(column.typecode, column)
    swapped.byteswap()
    return swapped.tobytes()


def unpack_column(raw: bytes, typecode: str) -> array:
    """An index column from its little-endian bytes."""
    column = array(typecode)
    _check_itemsize(column)
    if len(raw) % column.itemsize:
        raise RecordingFormatError("seal index column has a ragged length")
    column.frombytes(raw)
    if sys.byteorder != "little":
        column.byteswap()
    return column
