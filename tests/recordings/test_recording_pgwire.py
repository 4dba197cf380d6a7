"""DataRow decoding: exact round trip, and one clear error (never a crash) on garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.errors import RecordingFormatError
from recordings.pgwire import decode_datarows, encode_datarow

rows = st.lists(st.lists(st.none() | st.binary(max_size=40), max_size=8), max_size=10)


@settings(max_examples=200, deadline=None)
@given(rows=rows)
def test_decode_returns_what_was_encoded(rows: list[list[bytes | None]]) -> None:
    raw = b"".join(encode_datarow(row) for row in rows)
    assert decode_datarows(raw) == rows


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_garbage_raises_a_format_error_only(data: bytes) -> None:
    try:
        decode_datarows(data)
    except RecordingFormatError:
        pass


def test_a_row_cut_short_is_refused() -> None:
    raw = encode_datarow([b"hello", b"world"])
    with pytest.raises(RecordingFormatError):
        decode_datarows(raw[:-1])
