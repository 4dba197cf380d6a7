"""Any changed byte of a sealed recording is reported as tampered; a re-signed file fails a pinned key."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.keys import fingerprint
from recordings.verify import verify, verify_stream
from tests.recordings.helpers import sql_header, sql_session, write_recording


def _small_sealed_file(tmp_path: Path, key) -> bytes:
    path = write_recording(tmp_path / "small.hrec", sql_session(6), key, chunk_max_bytes=300)
    data = path.read_bytes()
    assert verify_stream(io.BytesIO(data), name="small").status == "intact"
    return data


def test_flipping_any_single_byte_is_tampered(tmp_path: Path, signing_key) -> None:
    data = _small_sealed_file(tmp_path, signing_key)
    assert len(data) < 6000  # every byte is checked: keep the file small
    wrong = []
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        report = verify_stream(io.BytesIO(bytes(changed)), name="flip")
        if report.status != "tampered":
            wrong.append((position, report.status, report.problem))
    assert wrong == []


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_flipping_any_bits_of_any_byte_is_tampered(
    tmp_path_factory, signing_key, position: int, mask: int
) -> None:
    data = _cached_file(tmp_path_factory, signing_key)
    changed = bytearray(data)
    changed[position % len(data)] ^= mask
    report = verify_stream(io.BytesIO(bytes(changed)), name="flip", public_key=signing_key.public_key())
    assert report.status == "tampered"
    assert report.failed_part in {"header", "chunk", "seal", "signature", "trailer"}


_FILES: dict[int, bytes] = {}


def _cached_file(tmp_path_factory, key) -> bytes:
    if id(key) not in _FILES:
        _FILES[id(key)] = _small_sealed_file(tmp_path_factory.mktemp("tamper"), key)
    return _FILES[id(key)]


def test_a_changed_chunk_names_that_chunk(tmp_path: Path, signing_key) -> None:
    path = write_recording(tmp_path / "r.hrec", sql_session(80), signing_key, chunk_max_bytes=600)
    from recordings.reader import RecordingReader

    with RecordingReader(path) as reader:
        target = reader.chunks[3]
    data = bytearray(path.read_bytes())
    data[target.offset + 9 + 60] ^= 0xFF  # inside chunk 3's compressed frame
    path.write_bytes(bytes(data))
    report = verify(path)
    assert (report.status, report.failed_part, report.first_bad_chunk) == ("tampered", "chunk", 3)
    assert report.chunks_intact == 3


def test_a_changed_header_is_named_as_the_header(tmp_path: Path, signing_key) -> None:
    path = write_recording(tmp_path / "r.hrec", sql_session(10), signing_key)
    data = path.read_bytes()
    tampered = data.replace(b"ci-bot", b"ci-bat", 1)
    assert tampered != data
    path.write_bytes(tampered)
    report = verify(path)
    assert (report.status, report.failed_part) == ("tampered", "header")


def test_bytes_appended_after_the_seal_are_tampered(tmp_path: Path, signing_key) -> None:
    path = write_recording(tmp_path / "r.hrec", sql_session(10), signing_key)
    path.write_bytes(path.read_bytes() + b"\x00")
    assert verify(path).status == "tampered"


def test_a_recording_re_signed_with_another_key_fails_the_pinned_key(
    tmp_path: Path, signing_key, other_key
) -> None:
    # The forger rewrites the whole session (dropping the held write) and signs it with their own key.
    genuine = sql_session(40)
    forged_events = [event for event in genuine if event[1] != "approval.requested"]
    forged = write_recording(tmp_path / "forged.hrec", forged_events, other_key, sql_header())

    unpinned = verify(forged)
    assert unpinned.status == "intact"  # internally consistent ...
    assert unpinned.key_fingerprint == fingerprint(other_key.public_key())  # ... but shows whose key it is

    pinned = verify(forged, signing_key.public_key())
    assert pinned.status == "tampered"
    assert pinned.failed_part == "signature"
    assert pinned.key_fingerprint == fingerprint(signing_key.public_key())
    assert pinned.key_pinned


def test_a_genuine_recording_passes_the_pinned_key(tmp_path: Path, signing_key) -> None:
    path = write_recording(tmp_path / "ok.hrec", sql_session(40), signing_key)
    report = verify(path, signing_key.public_key(), deep=True)
    assert report.status == "intact" and report.key_pinned
    assert report.event_count == len(sql_session(40))
