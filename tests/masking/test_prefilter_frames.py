"""The whole-buffer frame scan: it may flag too much, never too little, and masking through it is exact."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.masking.framescan import FrameScan
from proxy.masking.masker import Masker
from proxy.masking.pgrows import ColumnInfo, RowMasker, build_copydata, build_datarow
from tests.masking.masking_corpus import LOOK_ALIKES, PLANTED

ALL = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
REDACT = Masker(ALL)
SCAN = FrameScan.for_masker(REDACT)
NUMERIC_ONLY = Masker(["phone", "credit_card", "us_ssn", "iban", "national_id"])
TEXT, INT8, INT4, BYTEA, JSON, JSONB, TIMESTAMPTZ = 25, 20, 23, 17, 114, 3802, 1184

# Noise rich in what the scans look at: digits, separators, capitals, anchor characters, backslashes.
ANCHOR_RICH = st.text(
    alphabet=st.sampled_from(list("@%-_:=AJBbeyXZ+()0123456789 .\n\t\"'[]{}\\xkéß")), max_size=30
)
PIECES = st.one_of(
    st.sampled_from([p.text for p in PLANTED]),
    st.sampled_from(LOOK_ALIKES),
    ANCHOR_RICH,
    st.text(max_size=12),
    st.from_regex(r"[0-9]{3,20}", fullmatch=True),
)
TEXTS = st.lists(PIECES, max_size=5).flatmap(
    lambda pieces: st.sampled_from([" ", "\n", ", ", "", "\t", "-"]).map(lambda sep: sep.join(pieces))
)
# Bytes that may stand right before a value: length bytes that look like digits, anchors or escapes.
LEADING_BYTES = st.binary(max_size=6) | st.sampled_from(
    [b"0", b"12", b"\x00\x00\x009", b"@", b"\\", b"A", b"X-"]
)


def _frame(type_byte: bytes, body: bytes) -> bytes:
    return type_byte + struct.pack("!i", len(body) + 4) + body


def _datarow_body(values: list[bytes | None]) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        out += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return out


def _starts(data: bytes) -> list[int]:
    starts, position = [], 0
    while position < len(data):
        starts.append(position)
        position += 1 + struct.unpack_from("!i", data, position + 1)[0]
    return starts


def _apply(data: bytes, replaced: list[tuple[int, int, bytes]] | None) -> bytes:
    if not replaced:
        return data
    out, kept = [], 0
    for start, end, message in replaced:
        out += [data[kept:start], message]
        kept = end
    return b"".join([*out, data[kept:]])


# --- the scan itself --------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(value=TEXTS, before=LEADING_BYTES, after=st.binary(max_size=6))
def test_a_value_the_detector_masks_is_flagged_wherever_it_sits(
    value: str, before: bytes, after: bytes
) -> None:
    encoded = value.encode()
    if REDACT.mask_bytes(encoded) is None and NUMERIC_ONLY.mask_bytes(encoded) is None:
        return
    assert SCAN is not None
    body = before + encoded + after
    data = _frame(b"d", body) + _frame(b"d", b"clean")
    hits = SCAN.hit_frames(data, _starts(data), len(data))
    value_end = 5 + len(before) + len(encoded)
    assert hits and hits[0][0] == 0 and hits[0][1] < value_end


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.entity)
@pytest.mark.parametrize("length_byte", [b"0", b"5", b"9", b"@", b"\\", b" ", b"A"])
def test_planted_values_right_after_any_length_byte_are_flagged(planted: object, length_byte: bytes) -> None:
    assert SCAN is not None
    text = planted.text.encode()  # type: ignore[attr-defined]
    data = _frame(b"D", b"\x00\x01\x00\x00\x00" + length_byte + text)
    assert SCAN.hit_frames(data, [0], len(data))


def test_clean_frames_are_not_flagged_even_with_anchor_like_length_bytes() -> None:
    assert SCAN is not None
    # Row lengths of 64 ('@'), 58 (':') and 92 ('\\') are followed by the column count's zero byte.
    rows = [_frame(b"D", _datarow_body([b"x" * n])) for n in (54, 48, 82)]
    data = b"".join(rows)
    assert [data[start + 4] for start in _starts(data)] == [ord("@"), ord(":"), ord("\\")]
    assert SCAN.hit_frames(data, _starts(data), len(data)) == []


def test_custom_rules_get_no_frame_scan() -> None:
    assert FrameScan.for_masker(Masker(["email"], custom_rules={"employee": r"EMP-\d{6}"})) is None
    assert FrameScan.for_masker(Masker([])) is None


# --- DataRow runs: the same result as masking every row on its own ---------------------------------------

COLUMN_TYPES = [
    (TEXT, 0),
    (TEXT, 1),
    (INT8, 0),
    (INT4, 0),
    (BYTEA, 0),
    (TIMESTAMPTZ, 0),
    (JSON, 0),
    (JSONB, 1),
]
JSON_VALUES = st.recursive(
    st.none() | st.integers() | TEXTS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXTS, children, max_size=3),
    max_leaves=6,
)


@st.composite
def result_sets(draw: st.DrawFn) -> tuple[list[ColumnInfo], list[list[bytes | None]]]:
    types = draw(st.lists(st.sampled_from(COLUMN_TYPES), min_size=1, max_size=5))
    columns = [ColumnInfo(f"c{i}", None, oid, fmt) for i, (oid, fmt) in enumerate(types)]
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row: list[bytes | None] = []
        for oid, fmt in types:
            if draw(st.integers(0, 5)) == 0:
                row.append(None)
            elif oid in (JSON, JSONB):
                body = json.dumps(draw(JSON_VALUES)).encode()
                row.append(b"\x01" + body if fmt else body)
            elif oid in (INT8, INT4):
                # Digits that spell a card, an SSN or a DNI in a column that cannot carry text.
                row.append(draw(st.sampled_from([b"4111111111111111", b"123456789", b"-7", b"12345678"])))
            else:
                # Bytea and timestamps hold text here too: the scan may flag them, masking must leave them.
                row.append(draw(TEXTS).encode())
        rows.append(row)
    return columns, rows


@settings(max_examples=300, deadline=None)
@given(result=result_sets())
def test_a_run_of_datarows_is_masked_exactly_as_row_by_row(
    result: tuple[list[ColumnInfo], list[list[bytes | None]]],
) -> None:
    columns, rows = result
    row_masker = RowMasker(REDACT, columns, None)
    bodies = [_datarow_body(row) for row in rows]
    data = b"".join(build_datarow(body) for body in bodies)
    expected = []
    for body in bodies:
        masked = row_masker.mask_datarow(body)
        expected.append(build_datarow(body if masked is None else masked[0]))
    through_scan = row_masker.mask_datarow_frames(data, _starts(data), len(data), SCAN)
    assert _apply(data, through_scan[0] if through_scan else None) == b"".join(expected)
    without_scan = row_masker.mask_datarow_frames(data, _starts(data), len(data), None)
    assert _apply(data, without_scan[0] if without_scan else None) == b"".join(expected)


def test_a_row_flagged_only_by_a_column_that_cannot_carry_text_is_left_alone() -> None:
    assert SCAN is not None
    columns = [ColumnInfo("id", None, INT8), ColumnInfo("name", None, TEXT)]
    data = build_datarow(_datarow_body([b"4111111111111111", b"Alice"]))
    assert SCAN.hit_frames(data, [0], len(data))  # sixteen digits: flagged
    assert RowMasker(REDACT, columns, None).mask_datarow_frames(data, [0], len(data), SCAN) is None


def test_an_ssn_at_the_start_of_a_value_whose_length_byte_is_a_digit_is_masked() -> None:
    for length in range(48, 58):  # length bytes '0'..'9'
        value = b"123-45-6789" + b" " * (length - 11)
        columns = [ColumnInfo("note", None, TEXT)]
        data = build_datarow(_datarow_body([value]))
        assert data[10] == length  # the last byte of the value's length, right before it
        result = RowMasker(REDACT, columns, None).mask_datarow_frames(data, [0], len(data), SCAN)
        assert result is not None and b"123-45-6789" not in result[0][0][2]


# --- COPY runs ---------------------------------------------------------------------------------------------

COPY_FIELDS = st.one_of(TEXTS.map(lambda text: text.encode()), st.just(b"\\N"))


def _copy_escape(value: bytes) -> bytes:
    return value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.lists(COPY_FIELDS, min_size=1, max_size=4), min_size=1, max_size=6))
def test_a_run_of_copy_lines_is_masked_exactly_as_line_by_line(lines: list[list[bytes]]) -> None:
    copy_masker = RowMasker(REDACT, (), None)
    payloads = [
        b"\t".join(field if field == b"\\N" else _copy_escape(field) for field in fields) + b"\n"
        for fields in lines
    ]
    data = b"".join(build_copydata(payload) for payload in payloads)
    expected = []
    for payload in payloads:
        masked = copy_masker.mask_copy_line(payload)
        expected.append(build_copydata(payload if masked is None else masked[0]))
    result = copy_masker.mask_copy_frames(data, _starts(data), len(data), SCAN)
    assert _apply(data, result[0] if result else None) == b"".join(expected)


def test_entities_spelled_through_escapes_are_flagged_and_masked() -> None:
    # A COPY field's tabs are written as "\t" and a JSON string may write '@' as "\u0040": the raw bytes then
    # hold no anchor, the value does.
    copy_masker = RowMasker(REDACT, (), None)
    line = b"7\tapi_key\\t\\t= s3cr3tvalue\n"
    data = build_copydata(line)
    result = copy_masker.mask_copy_frames(data, [0], len(data), SCAN)
    assert result is not None and b"s3cr3tvalue" not in result[0][0][2]
    json_column = RowMasker(REDACT, [ColumnInfo("doc", None, JSON)], None)
    data = build_datarow(_datarow_body([b'{"e": "bob\\u0040example.com"}']))
    result = json_column.mask_datarow_frames(data, [0], len(data), SCAN)
    assert result is not None and b"example.com" not in result[0][0][2]
