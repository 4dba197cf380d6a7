"""Turning events into a chunk's compressed frame and back: msgpack values back to back in one zstd frame."""

from __future__ import annotations

import msgpack
import zstandard

from recordings.errors import RecordingFormatError
from recordings.layout import MAX_CHUNK_RAW

# Level 6 reaches the 0.2 bytes-per-payload-byte budget on SQL sessions at ~150 MB/s on one core; higher
# levels gain a few percent for a several-fold slowdown (see bench/recordings_bench.py).
DEFAULT_COMPRESSION_LEVEL = 6

# Lone surrogates (e.g. from a lossy decode upstream) must not make a recording unwritable.
_UNICODE_ERRORS = "surrogatepass"


def new_packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, unicode_errors=_UNICODE_ERRORS)


def new_compressor(level: int = DEFAULT_COMPRESSION_LEVEL) -> zstandard.ZstdCompressor:
    # The SHA-256 chain already covers every byte, so zstd's own checksum would be redundant.
    return zstandard.ZstdCompressor(
        level=level, write_checksum=False, write_content_size=True, write_dict_id=False
    )


def decompress_frame(frame: bytes, raw_length: int) -> bytes:
    """The msgpack bytes of a chunk, refusing frames whose size disagrees with the chunk prefix."""
    if raw_length > MAX_CHUNK_RAW:
        raise RecordingFormatError(f"chunk claims {raw_length} bytes of events, over the limit")
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise RecordingFormatError(f"chunk frame is not zstd: {exc}") from None
    if declared != raw_length:
        raise RecordingFormatError("chunk frame size disagrees with the chunk prefix")
    try:
        raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise RecordingFormatError(f"chunk frame does not decompress: {exc}") from None
    if len(raw) != raw_length:
        raise RecordingFormatError("chunk frame decompressed to the wrong size")
    return raw


def unpack_events(raw: bytes, expected_count: int) -> list[list]:
    """The events of a chunk's msgpack bytes; the count must match the chunk prefix."""
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=False,
        unicode_errors=_UNICODE_ERRORS,
        max_buffer_size=max(len(raw), 1),
    )
    unpacker.feed(raw)
    try:
        events = list(unpacker)
    except Exception as exc:  # msgpack raises several unrelated types (ValueError, TypeError, StackError...)
        raise RecordingFormatError(f"chunk events do not decode: {exc}") from None
    if len(events) != expected_count:
        raise RecordingFormatError(f"chunk holds {len(events)} events, its prefix says {expected_count}")
    for event in events:
        if not isinstance(event, list) or len(event) < 2 or not isinstance(event[0], int):
            raise RecordingFormatError("chunk holds a value that is not an event")
    return events


def unpack_map(payload: bytes, what: str) -> dict:
    """A msgpack map from ``payload`` (a header or seal); anything else is a :class:`RecordingFormatError`."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False, unicode_errors=_UNICODE_ERRORS)
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise RecordingFormatError(f"{what} does not decode: {exc}") from None
    if not isinstance(value, dict):
        raise RecordingFormatError(f"{what} is not a map")
    return value
