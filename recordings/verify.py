"""Integrity check of a recording: hash chain, seal, signature, and whether the file was cut short.

Every byte is read once, front to back, so this works on a plain file and on a zip member alike. Statuses:

- ``intact``: sealed; every chunk continues the chain; the seal matches the chunks and its signature verifies
  with the header's key, or with the pinned key, which must then also be the header's key.
- ``tampered``: anything else that is wrong -- the first bad chunk, or ``header``, ``seal``, ``signature`` or
  ``trailer`` is named. A single changed byte anywhere always lands here.
- ``unsealed``: the file ends without a complete seal and trailer (a crash, or still being written); the
  chunks before the cut are intact. Its chunks are chained but unsigned, so they prove order, not origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recordings.chunkcodec import decompress_frame, unpack_events, unpack_map
from recordings.errors import RecordingError, RecordingFormatError
from recordings.keys import fingerprint, public_key_bytes, public_key_from_bytes
from recordings.layout import (
    BLOCK_CHUNK,
    BLOCK_HEADER,
    BLOCK_SEAL,
    BLOCK_TRAILER,
    FRAMING_SIZE,
    INDEX_COLUMNS,
    PREAMBLE,
    TRAILER_BLOCK_SIZE,
    ZERO_FRAMING,
    chain_next,
    check_preamble,
    decode_framing,
    decode_trailer_payload,
    seal_message,
    split_chunk_payload,
    unpack_column,
)

INTACT = "intact"
TAMPERED = "tampered"
UNSEALED = "unsealed"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying one recording."""

    path: str
    status: str
    chunks_intact: int
    event_count: int
    duration_us: int
    key_fingerprint: str | None
    key_pinned: bool
    session_id: str | None = None
    failed_part: str | None = None
    first_bad_chunk: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == INTACT

    def summary(self) -> str:
        """One line for humans, e.g. ``intact: 12 chunks, 3456 events, 0:01:02; key SHA256:... (pinned)``."""
        key = f"key {self.key_fingerprint or 'unknown'} ({'pinned' if self.key_pinned else 'from header'})"
        if self.status == INTACT:
            what = (
                f"{self.chunks_intact} chunks, {self.event_count} events, {format_duration(self.duration_us)}"
            )
            return f"intact: {what}; {key}"
        if self.status == UNSEALED:
            return f"unsealed, {self.chunks_intact} chunks intact ({self.problem}); {key}"
        return f"tampered: {self.problem}; {key}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_duration(duration_us: int) -> str:
    seconds, micros = divmod(max(0, duration_us), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{micros // 1000:03d}"


class _Tampered(Exception):
    def __init__(self, part: str, problem: str, chunk: int | None = None) -> None:
        super().__init__(problem)
        self.part = part
        self.problem = problem
        self.chunk = chunk


class _Cut(Exception):
    """The file ends before the recording is complete."""


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    parts = []
    remaining = size
    while remaining:
        data = stream.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def _rest_is_zero(stream: BinaryIO) -> bool:
    while True:
        data = stream.read(1 << 16)
        if not data:
            return True
        if data.count(0) != len(data):
            return False


class _Verifier:
    """State of one front-to-back pass over a recording."""

    def __init__(self, stream: BinaryIO, public_key: Ed25519PublicKey | None, deep: bool) -> None:
        self.stream = stream
        self.pinned_key = public_key
        self.deep = deep
        self.offset = 0
        self.chunks = 0
        self.events = 0
        self.last_t = 0
        self.session_id: str | None = None
        self.key: Ed25519PublicKey | None = public_key
        self.header_hash = b""
        self.chain = b""
        self.index: dict[str, list[int]] = {name: [] for name in INDEX_COLUMNS}

    def read(self, size: int) -> bytes:
        data = _read_exact(self.stream, size)
        self.offset += len(data)
        return data

    def run(self) -> None:
        self._read_header()
        while True:
            block_start = self.offset
            framing = self.read(FRAMING_SIZE)
            if not framing:
                raise _Cut(
                    f"file ends after chunk {self.chunks - 1}" if self.chunks else "file ends after header"
                )
            if len(framing) < FRAMING_SIZE:
                raise _Cut(f"file cut short at byte {self.offset}")
            if framing == ZERO_FRAMING:
                if _rest_is_zero(self.stream):
                    raise _Cut(f"zeros from byte {block_start} on (torn write)")
                raise _Tampered("chunk", f"chunk {self.chunks}: zeroed block framing", self.chunks)
            try:
                block_type, length = decode_framing(framing)
            except RecordingFormatError as exc:
                raise _Tampered("chunk", f"chunk {self.chunks}: {exc}", self.chunks) from None
            if block_type == BLOCK_CHUNK:
                self._check_chunk(block_start, length)
            elif block_type == BLOCK_SEAL:
                self._check_seal(block_start, length)
                return
            else:
                raise _Tampered(
                    "chunk", f"chunk {self.chunks}: unexpected {block_type.decode()} block", self.chunks
                )

    def _read_header(self) -> None:
        preamble = self.read(len(PREAMBLE))
        if len(preamble) < len(PREAMBLE) and PREAMBLE.startswith(preamble):
            raise _Cut("file cut short inside the preamble")
        try:
            check_preamble(preamble)
        except RecordingFormatError as exc:
            raise _Tampered("header", f"header: {exc}") from None
        framing = self.read(FRAMING_SIZE)
        if len(framing) < FRAMING_SIZE:
            raise _Cut("file cut short before the header")
        try:
            block_type, length = decode_framing(framing)
        except RecordingFormatError as exc:
            raise _Tampered("header", f"header: {exc}") from None
        if block_type != BLOCK_HEADER:
            raise _Tampered("header", "header: the first block is not a header")
        payload = self.read(length)
        if len(payload) < length:
            raise _Cut("file cut short inside the header")
        try:
            header = unpack_map(payload, "header")
        except RecordingFormatError as exc:
            raise _Tampered("header", f"header: {exc}") from None
        session_id = header.get("session_id")
        self.session_id = str(session_id) if session_id is not None else None
        try:
            header_key = public_key_from_bytes(header.get("signing_public_key") or b"")
        except (RecordingError, ValueError, TypeError):
            raise _Tampered("header", "header: has no valid signing public key") from None
        if header.get("signing_key_fingerprint") != fingerprint(header_key):
            raise _Tampered("header", "header: key fingerprint does not match its key")
        if self.pinned_key is None:
            self.key = header_key
        elif public_key_bytes(self.pinned_key) != public_key_bytes(header_key):
            raise _Tampered(
                "signature", f"signature: recording names key {fingerprint(header_key)}, not the pinned key"
            )
        self.header_hash = hashlib.sha256(preamble + framing + payload).digest()
        self.chain = self.header_hash
        signed_hash = self._signed_header_hash()
        if signed_hash is not None and signed_hash != self.header_hash:
            raise _Tampered("header", "header: changed after the recording was sealed")

    def _signed_header_hash(self) -> bytes | None:
        """The header hash a valid seal vouches for, read from the end of a seekable stream; else None.

        Without it a changed header would only show as a broken chain at chunk 0.
        """
        stream = self.stream
        if self.key is None or not stream.seekable():
            return None
        resume_at = stream.tell()
        try:
            size = stream.seek(0, 2)
            stream.seek(size - TRAILER_BLOCK_SIZE)
            trailer = _read_exact(stream, TRAILER_BLOCK_SIZE)
            if decode_framing(trailer[:FRAMING_SIZE])[0] != BLOCK_TRAILER:
                return None
            seal_offset = decode_trailer_payload(trailer[FRAMING_SIZE:])
            if not resume_at <= seal_offset < size:
                return None
            stream.seek(seal_offset)
            block_type, length = decode_framing(_read_exact(stream, FRAMING_SIZE))
            if block_type != BLOCK_SEAL or seal_offset + FRAMING_SIZE + length + TRAILER_BLOCK_SIZE != size:
                return None
            envelope = unpack_map(_read_exact(stream, length), "seal")
            body = envelope["body"]
            seal = unpack_map(body, "seal body")
            stated = (seal["header_hash"], seal["final_chain"], seal["event_count"], seal["duration_us"])
            self.key.verify(envelope["signature"], seal_message(*stated, seal["chunk_count"], body))
            return seal["header_hash"]
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            InvalidSignature,
            RecordingError,
        ):
            return None
        finally:
            stream.seek(resume_at)

    def _check_chunk(self, block_start: int, length: int) -> None:
        number = self.chunks
        payload = self.read(length)
        if len(payload) < length:
            raise _Cut(f"file cut short inside chunk {number}")
        try:
            meta, meta_bytes, stored_chain, frame = split_chunk_payload(payload)
        except RecordingFormatError as exc:
            raise _Tampered("chunk", f"chunk {number}: {exc}", number) from None
        chain = chain_next(self.chain, meta_bytes, frame)
        if chain != stored_chain:
            culprit = " (the chunk or the header changed)" if number == 0 else ""
            raise _Tampered("chunk", f"chunk {number}: hash chain broken{culprit}", number)
        if meta.seq != number:
            raise _Tampered("chunk", f"chunk {number}: carries sequence number {meta.seq}", number)
        if meta.event_count < 1 or meta.first_t > meta.last_t or meta.first_t < self.last_t:
            raise _Tampered("chunk", f"chunk {number}: impossible time range or event count", number)
        if self.deep:
            self._check_chunk_events(number, meta, frame)
        for name, value in (
            ("offset", block_start),
            ("length", length),
            ("first_t", meta.first_t),
            ("last_t", meta.last_t),
            ("event_count", meta.event_count),
            ("first_event", self.events),
        ):
            self.index[name].append(value)
        self.chain = chain
        self.chunks += 1
        self.events += meta.event_count
        self.last_t = meta.last_t

    def _check_chunk_events(self, number: int, meta: Any, frame: bytes) -> None:
        try:
            events = unpack_events(decompress_frame(frame, meta.raw_length), meta.event_count)
        except RecordingFormatError as exc:
            raise _Tampered("chunk", f"chunk {number}: {exc}", number) from None
        times = [event[0] for event in events]
        if times[0] != meta.first_t or times[-1] != meta.last_t or times != sorted(times):
            raise _Tampered("chunk", f"chunk {number}: event times disagree with its prefix", number)

    def _check_seal(self, seal_offset: int, length: int) -> None:
        payload = self.read(length)
        if len(payload) < length:
            raise _Cut("file cut short inside the seal")
        try:
            envelope = unpack_map(payload, "seal")
            body, signature = envelope["body"], envelope["signature"]
            if set(envelope) != {"body", "signature"} or not isinstance(body, bytes):
                raise ValueError("unexpected seal layout")
            seal = unpack_map(body, "seal body")
            stated = (seal["header_hash"], seal["final_chain"], seal["event_count"], seal["duration_us"])
            stated_chunks = seal["chunk_count"]
            index = {
                name: list(unpack_column(seal["index"][name], code)) for name, code in INDEX_COLUMNS.items()
            }
        except (ValueError, KeyError, TypeError, RecordingFormatError):
            raise _Tampered("seal", "seal: does not decode") from None
        message = seal_message(self.header_hash, self.chain, self.events, self.last_t, self.chunks, body)
        if self.key is None:
            raise _Tampered("signature", "signature: no key to check it with")
        try:
            self.key.verify(signature, message)
        except (InvalidSignature, TypeError, ValueError):
            raise _Tampered("signature", "signature: does not verify against the chunks and key") from None
        if stated != (self.header_hash, self.chain, self.events, self.last_t) or stated_chunks != self.chunks:
            raise _Tampered("seal", "seal: totals do not match the chunks")
        if index != self.index:
            raise _Tampered("seal", "seal: chunk index does not match the chunks")
        trailer = self.read(TRAILER_BLOCK_SIZE)
        if len(trailer) < TRAILER_BLOCK_SIZE:
            raise _Cut("file cut short after the seal")
        try:
            block_type, _ = decode_framing(trailer[:FRAMING_SIZE])
        except RecordingFormatError as exc:
            raise _Tampered("trailer", f"trailer: {exc}") from None
        if block_type != BLOCK_TRAILER or decode_trailer_payload(trailer[FRAMING_SIZE:]) != seal_offset:
            raise _Tampered("trailer", "trailer: does not point at the seal")
        if self.read(1):
            raise _Tampered("trailer", "trailer: bytes follow the end of the recording")


def verify_stream(
    stream: BinaryIO, *, name: str, public_key: Ed25519PublicKey | None = None, deep: bool = False
) -> VerifyReport:
    """Verify a recording read front to back from ``stream``; ``name`` is what the report calls it."""
    verifier = _Verifier(stream, public_key, deep)
    status, part, chunk, problem = INTACT, None, None, None
    try:
        verifier.run()
    except _Tampered as exc:
        status, part, chunk, problem = TAMPERED, exc.part, exc.chunk, exc.problem
    except _Cut as exc:
        status, problem = UNSEALED, str(exc)
    key = verifier.key if public_key is None else public_key
    return VerifyReport(
        path=name,
        status=status,
        chunks_intact=verifier.chunks,
        event_count=verifier.events,
        duration_us=verifier.last_t,
        key_fingerprint=fingerprint(key) if key is not None else None,
        key_pinned=public_key is not None,
        session_id=verifier.session_id,
        failed_part=part,
        first_bad_chunk=chunk,
        problem=problem,
    )


def verify(
    path: Path | str, public_key: Ed25519PublicKey | None = None, *, deep: bool = False
) -> VerifyReport:
    """Verify the recording at ``path``; with ``public_key``, a file signed by any other key is tampered.

    ``deep=True`` also decompresses every chunk and checks its events against the chunk prefix.
    """
    with open(path, "rb") as stream:
        return verify_stream(stream, name=str(path), public_key=public_key, deep=deep)
