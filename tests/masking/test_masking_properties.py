"""Properties: masking never raises, stays bounded, is idempotent, and agrees between text, bytes and JSON."""

from __future__ import annotations

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.masking.masker import Masker
from proxy.masking.pgrows import ColumnInfo, MalformedMessage, RowMasker
from proxy.masking.strategies import Strategy
from tests.masking.masking_corpus import LOOK_ALIKES, PLANTED

ALL = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
REDACT = Masker(ALL)
HASH = Masker(ALL, default_strategy=Strategy("hash"), secret=b"k")
PARTIAL = Masker(ALL, default_strategy=Strategy("partial"))
LONGEST_TOKEN = len("[IT_FISCAL_CODE:0123456789ab]")

# Text built from planted values, look-alikes and noise rich in the characters the scan anchors on.
ANCHOR_RICH = st.text(
    alphabet=st.sampled_from(list("@%-_:=AJBbey+()0123456789 .\n\t\"'[]{}xkéß€")), max_size=30
)
PIECES = st.one_of(
    st.sampled_from([p.text for p in PLANTED]),
    st.sampled_from(LOOK_ALIKES),
    ANCHOR_RICH,
    st.text(max_size=20),
)
TEXTS = st.lists(PIECES, max_size=8).flatmap(
    lambda pieces: st.sampled_from([" ", "\n", ", ", "", "\t"]).map(lambda sep: sep.join(pieces))
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_mask_text_never_raises_and_never_grows_unboundedly(text: str) -> None:
    for masker in (REDACT, HASH, PARTIAL):
        masked, counts = masker.mask_text(text)
        replaced = sum(counts.values())
        assert replaced <= len(text) // 2 + 1
        assert len(masked) <= len(text) + LONGEST_TOKEN * replaced


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_masking_a_masked_text_changes_nothing(text: str) -> None:
    for masker in (REDACT, HASH):
        once = masker.mask_text(text)[0]
        assert masker.mask_text(once)[0] == once


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.sampled_from([p.text for p in PLANTED]), max_size=6))
def test_partial_masking_of_planted_values_is_idempotent(pieces: list[str]) -> None:
    once = PARTIAL.mask_text(" | ".join(pieces))[0]
    assert PARTIAL.mask_text(once)[0] == once


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_bytes_and_text_masking_agree(text: str) -> None:
    data = text.encode("utf-8")
    result = REDACT.mask_bytes(data)
    masked, counts = REDACT.mask_text(text)
    if result is None:
        assert counts == {}
    else:
        assert result == (masked.encode("utf-8"), counts)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), text=TEXTS)
def test_arbitrary_bytes_never_raise_and_keep_what_is_not_masked(data: bytes, text: str) -> None:
    raw = data + text.encode() + data
    result = REDACT.mask_bytes(raw)
    if result is not None:
        masked = result[0]
        # nothing but tokens was added, and undecodable input bytes survive
        assert masked.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape") == masked
        if _is_utf8(raw):
            masked.decode("utf-8")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXTS,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(TEXTS, st.sampled_from(["password", "api_key", "note"])), children, max_size=4
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, indent=st.sampled_from([None, 2]))
def test_masked_json_stays_json_with_the_same_shape(value: object, indent: int | None) -> None:
    document = json.dumps(value, indent=indent, ensure_ascii=bool(indent))
    masked, counts = REDACT.mask_json_text(document)
    # Masked keys may coincide ("[EMAIL]" twice): compare member lists, not dicts.
    assert _shape(json.loads(masked, object_pairs_hook=_members)) == _shape(
        json.loads(document, object_pairs_hook=_members)
    )
    if not counts:
        assert masked == document


class _Members(list):  # type: ignore[type-arg]
    """An object's values in order, whatever its keys."""


def _members(pairs: list[tuple[str, object]]) -> _Members:
    return _Members(value for _, value in pairs)


def _shape(value: object) -> object:
    """The structure without scalars (a masked scalar may become a string)."""
    if isinstance(value, _Members):
        return ("object", [_shape(item) for item in value])
    if isinstance(value, list):
        return ("array", [_shape(item) for item in value])
    return "scalar"


COLUMN_TYPES = [
    (25, 0),
    (25, 1),
    (1043, 0),
    (23, 0),
    (20, 1),
    (1184, 0),
    (3802, 0),
    (3802, 1),
    (114, 0),
    (17, 1),
]


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[ColumnInfo], list[bytes | None]]:
    types = draw(st.lists(st.sampled_from(COLUMN_TYPES), min_size=1, max_size=6))
    columns = [ColumnInfo(f"c{i}", "t", oid, fmt) for i, (oid, fmt) in enumerate(types)]
    values: list[bytes | None] = []
    for oid, fmt in types:
        if draw(st.booleans()) and draw(st.booleans()):
            values.append(None)
        elif oid == 3802:
            body = json.dumps(draw(JSON_VALUES)).encode()
            values.append(b"\x01" + body if fmt else body)
        elif oid == 114:
            values.append(json.dumps(draw(JSON_VALUES)).encode())
        else:
            values.append(draw(TEXTS).encode() if oid in (25, 1043) else draw(st.binary(max_size=12)))
    return columns, values


def _body(values: list[bytes | None]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        out += struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value
    return out


def _split(body: bytes) -> list[bytes | None]:
    (count,) = struct.unpack_from(">h", body)
    position, values = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", body, position)
        position += 4
        values.append(None if length < 0 else body[position : position + length])
        position += max(length, 0)
    assert position == len(body)
    return values


@settings(max_examples=300, deadline=None)
@given(row=rows())
def test_datarow_masking_keeps_framing_nulls_and_untouched_columns(
    row: tuple[list[ColumnInfo], list[bytes | None]],
) -> None:
    columns, values = row
    result = RowMasker(REDACT, columns, None).mask_datarow(_body(values))
    masked = values if result is None else _split(result[0])
    for column, before, after in zip(columns, values, masked, strict=True):
        if before is None or column.type_oid not in (25, 1043, 3802, 114):
            assert after == before  # NULLs and types that cannot carry text are untouched
        elif column.type_oid in (114, 3802):
            json.loads(after[1:] if column.type_oid == 3802 and column.format else after)
            if column.type_oid == 3802 and column.format:
                assert after[:1] == b"\x01"


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=60))
def test_garbage_datarows_raise_one_error_type_or_parse(garbage: bytes) -> None:
    row_masker = RowMasker(REDACT, [ColumnInfo("a", None, 25, 0), ColumnInfo("b", None, 3802, 1)], None)
    try:
        result = row_masker.mask_datarow(garbage)
    except MalformedMessage:
        return
    assert result is None or len(_split(result[0])) == 2


def _expected_value(column: ColumnInfo, value: bytes | None) -> bytes | None:
    """What masking one value on its own gives."""
    if value is None or column.type_oid not in (25, 1043, 114, 3802):
        return value
    if column.type_oid == 3802 and column.format:
        result = REDACT.mask_json_bytes(value[1:])
        return value if result is None else value[:1] + result[0]
    result = REDACT.mask_json_bytes(value) if column.type_oid in (114, 3802) else REDACT.mask_bytes(value)
    return value if result is None else result[0]


@settings(max_examples=300, deadline=None)
@given(row=rows())
def test_a_row_is_masked_exactly_as_its_values_one_by_one(
    row: tuple[list[ColumnInfo], list[bytes | None]],
) -> None:
    # The row path prefilters all values at once and skips those before the next anchor: it must not change
    # what comes out.
    columns, values = row
    result = RowMasker(REDACT, columns, None).mask_datarow(_body(values))
    masked = values if result is None else _split(result[0])
    assert masked == [_expected_value(column, value) for column, value in zip(columns, values, strict=True)]
