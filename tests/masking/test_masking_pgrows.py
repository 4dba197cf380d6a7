"""RowMasker on hand-built DataRow bodies, COPY text lines and Error/Notice fields."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.masking.columns import ColumnRules
from proxy.masking.copytext import escape_field, unescape_field
from proxy.masking.masker import Masker
from proxy.masking.pgrows import (
    ColumnInfo,
    MalformedMessage,
    RowMasker,
    build_datarow,
    mask_notice_fields,
)
from proxy.masking.strategies import Strategy

TEXT, VARCHAR, INT4, INT8, TIMESTAMPTZ, JSON, JSONB, BYTEA, UUID = 25, 1043, 23, 20, 1184, 114, 3802, 17, 2950
TEXT_ARRAY, CITEXT_LIKE = 1009, 16500
T, B = 0, 1  # wire formats


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(["email", "phone", "credit_card", "us_ssn", "secret"])


def datarow(values: Sequence[bytes | None]) -> bytes:
    parts = [struct.pack(">h", len(values))]
    for value in values:
        parts.append(struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value)
    return b"".join(parts)


def parse(body: bytes) -> list[bytes | None]:
    """The values of a DataRow body, checking that every length adds up exactly."""
    (count,) = struct.unpack_from(">h", body, 0)
    position, values = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", body, position)
        position += 4
        if length == -1:
            values.append(None)
            continue
        values.append(body[position : position + length])
        position += length
    assert position == len(body)
    return values


def binary_text_array(items: Sequence[bytes | None], element_oid: int = TEXT) -> bytes:
    has_null = int(any(item is None for item in items))
    out = struct.pack(">iiiii", 1, has_null, element_oid, len(items), 1)
    for item in items:
        out += struct.pack(">i", -1) if item is None else struct.pack(">i", len(item)) + item
    return out


def columns(*specs: tuple[str, int, int], table: str | None = "users") -> list[ColumnInfo]:
    return [ColumnInfo(name, table, oid, fmt) for name, oid, fmt in specs]


def test_text_row_masks_text_and_jsonb_and_keeps_everything_else(masker: Masker) -> None:
    cols = columns(
        ("id", INT4, T), ("name", TEXT, T), ("email", TEXT, T), ("at", TIMESTAMPTZ, T), ("doc", JSONB, T)
    )
    doc = b'{"phone": "+1 415 555 2671", "n": 2}'
    body = datarow([b"42", b"Alice", b"alice@example.com", b"2024-01-01 10:30:00+00", doc])
    new, counts = RowMasker(masker, cols, None).mask_datarow(body)
    values = parse(new)
    assert values[:4] == [b"42", b"Alice", b"[EMAIL]", b"2024-01-01 10:30:00+00"]
    assert json.loads(values[4]) == {"phone": "[PHONE]", "n": 2}
    assert counts == {"email": 1, "phone": 1}


def test_a_clean_row_is_reported_unchanged(masker: Masker) -> None:
    cols = columns(("id", INT4, T), ("name", TEXT, T), ("doc", JSONB, T))
    body = datarow([b"7", b"Bob Stone, 42 Elm Street", b'{"plan": "pro", "seats": 12345678}'])
    assert RowMasker(masker, cols, None).mask_datarow(body) is None
    assert RowMasker(masker, cols, None).mask_datarow(memoryview(body)) is None


def test_nulls_are_preserved_and_lengths_are_rewritten(masker: Masker) -> None:
    cols = columns(("a", TEXT, T), ("b", TEXT, T), ("c", TEXT, T), ("d", TEXT, B))
    body = datarow([None, b"x 123-45-6789 y", None, b"card 4242 4242 4242 4242"])
    new, counts = RowMasker(masker, cols, None).mask_datarow(body)
    assert parse(new) == [None, b"x [US_SSN] y", None, b"card [CREDIT_CARD]"]
    assert counts == {"us_ssn": 1, "credit_card": 1}


def test_non_text_columns_pass_byte_identical_whatever_they_hold(masker: Masker) -> None:
    # Values a scan would flag, in columns whose types cannot carry text: proof that they are not looked at.
    looks_like_pii = b"alice@example.com"
    undecodable = b"\xff\xfe@\x00\x80"
    cols = columns(
        ("id", INT8, T), ("blob", BYTEA, B), ("uid", UUID, B), ("at", TIMESTAMPTZ, B), ("name", TEXT, T)
    )
    body = datarow([looks_like_pii, undecodable, looks_like_pii[:16], undecodable, b"mail bob@example.org"])
    new, counts = RowMasker(masker, cols, None).mask_datarow(body)
    untouched = len(body) - len(b"mail bob@example.org") - 4  # everything before the last column's length
    assert new[:untouched] == body[:untouched]
    assert parse(new) == [looks_like_pii, undecodable, looks_like_pii[:16], undecodable, b"mail [EMAIL]"]
    assert counts == {"email": 1}


def test_a_row_of_only_skipped_types_needs_no_masker_at_all(masker: Masker) -> None:
    row_masker = RowMasker(masker, columns(("id", INT8, B), ("at", TIMESTAMPTZ, T)), None)
    assert not row_masker.active
    assert row_masker.mask_datarow(datarow([b"\x00" * 8, b"2024-01-01"])) is None


def test_binary_jsonb_keeps_its_version_byte_and_stays_json(masker: Masker) -> None:
    doc = {"contact": {"email": "alice@example.com", "phones": ["(415) 555-2671"]}, "password": "x", "n": 1.5}
    value = b"\x01" + json.dumps(doc).encode()
    new, counts = RowMasker(masker, columns(("doc", JSONB, B)), None).mask_datarow(datarow([value]))
    (masked,) = parse(new)
    assert masked[:1] == b"\x01"
    expected = {"contact": {"email": "[EMAIL]", "phones": ["[PHONE]"]}, "password": "[SECRET]", "n": 1.5}
    assert json.loads(masked[1:]) == expected
    assert counts == {"email": 1, "phone": 1, "secret": 1}


def test_binary_text_arrays_are_masked_element_by_element(masker: Masker) -> None:
    value = binary_text_array([b"alice@example.com", None, b"plain", b"ssn 123-45-6789"])
    new, counts = RowMasker(masker, columns(("tags", TEXT_ARRAY, B)), None).mask_datarow(datarow([value]))
    (masked,) = parse(new)
    assert masked == binary_text_array([b"[EMAIL]", None, b"plain", b"ssn [US_SSN]"])
    assert counts == {"email": 1, "us_ssn": 1}


def test_text_format_arrays_and_user_types_are_scanned_as_text(masker: Masker) -> None:
    cols = columns(("tags", TEXT_ARRAY, T), ("ci_email", CITEXT_LIKE, T), ("opaque", CITEXT_LIKE, B))
    body = datarow([b'{alice@example.com,"b c",NULL}', b"Bob@Example.COM", b"carol@example.com"])
    new, _ = RowMasker(masker, cols, None).mask_datarow(body)
    assert parse(new) == [b'{[EMAIL],"b c",NULL}', b"[EMAIL]", b"carol@example.com"]


def test_masked_text_stays_valid_utf8_around_multibyte_characters(masker: Masker) -> None:
    value = "Zoë — écrire à zoë@exämple.fr ou appeler le +33 1 42 68 53 00 ✓".encode()
    new, counts = RowMasker(masker, columns(("note", TEXT, B)), None).mask_datarow(datarow([value]))
    assert parse(new)[0].decode("utf-8") == "Zoë — écrire à [EMAIL] ou appeler le [PHONE] ✓"
    assert counts == {"email": 1, "phone": 1}


def test_invalid_utf8_in_a_text_column_survives_byte_for_byte(masker: Masker) -> None:
    value = b"\xffbroken\xc3 alice@example.com \xe2\x82"
    new, _ = RowMasker(masker, columns(("note", TEXT, T)), None).mask_datarow(datarow([value]))
    assert parse(new) == [b"\xffbroken\xc3 [EMAIL] \xe2\x82"]


def test_column_rules_replace_whole_values_by_type_and_format(masker: Masker) -> None:
    rules = ColumnRules(["users.ssn=us_ssn", "*.secret_code", "users.doc=secret", "users.bin_doc=secret"])
    cols = columns(
        ("ssn", TEXT, T), ("secret_code", INT8, B), ("doc", JSON, T), ("bin_doc", JSONB, B), ("name", TEXT, T)
    )
    body = datarow([b"123456789", b"\x00" * 8, b'{"a": 1}', b'\x01{"a": 1}', b"Dana"])
    row_masker = RowMasker(masker, cols, rules)
    new, counts = row_masker.mask_datarow(body)
    assert parse(new) == [b"[US_SSN]", None, b'"[SECRET]"', b'\x01"[SECRET]"', b"Dana"]
    assert counts == {"us_ssn": 1, "masked": 1, "secret": 2}
    # a NULL stays NULL: there is nothing to mask
    assert row_masker.mask_datarow(datarow([None, None, None, None, b"Dana"])) is None


def test_column_rule_in_text_format_writes_the_token_even_for_a_non_text_type(masker: Masker) -> None:
    row_masker = RowMasker(masker, columns(("ssn", INT8, T)), ColumnRules(["*.ssn=us_ssn"]))
    assert row_masker.mask_datarow(datarow([b"123456789"])) == (datarow([b"[US_SSN]"]), {"us_ssn": 1})


def test_column_rule_uses_the_entity_strategy() -> None:
    masker = Masker(["email"], strategies={"us_ssn": Strategy("partial")})
    row_masker = RowMasker(masker, columns(("ssn", TEXT, B)), ColumnRules(["users.ssn=us_ssn"]))
    assert row_masker.mask_datarow(datarow([b"123-45-6789"])) == (datarow([b"***-**-6789"]), {"us_ssn": 1})


def test_column_rules_apply_even_when_no_entity_is_enabled() -> None:
    row_masker = RowMasker(
        Masker([]), columns(("email", TEXT, T), ("bio", TEXT, T)), ColumnRules(["*.email"])
    )
    assert row_masker.active
    body = datarow([b"alice@example.com", b"bob@example.com"])
    assert row_masker.mask_datarow(body) == (datarow([b"[MASKED]", b"bob@example.com"]), {"masked": 1})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00",
        struct.pack(">h", 2) + struct.pack(">i", 3) + b"abc",  # one column short
        struct.pack(">h", 1) + struct.pack(">i", 10) + b"abc",  # value runs past the message
        struct.pack(">h", 1) + struct.pack(">i", -2),  # negative length other than -1
        struct.pack(">h", 1) + struct.pack(">i", 3) + b"abcdef",  # trailing bytes
        struct.pack(">h", 1) + b"\x00\x00",  # ends inside a length
    ],
)
def test_malformed_rows_are_a_protocol_error(masker: Masker, body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        RowMasker(masker, columns(("a", TEXT, T)), None).mask_datarow(body)


def test_a_row_whose_column_count_differs_from_the_description_is_refused(masker: Masker) -> None:
    with pytest.raises(MalformedMessage, match="2 columns"):
        RowMasker(masker, columns(("a", TEXT, T)), None).mask_datarow(datarow([b"x", b"y"]))


def test_build_datarow_prefixes_type_and_length() -> None:
    body = datarow([b"x"])
    message = build_datarow(body)
    assert message[:1] == b"D"
    assert struct.unpack(">i", message[1:5])[0] == len(body) + 4
    assert message[5:] == body


# --- COPY text format -------------------------------------------------------------------------------------


def test_copy_line_masks_fields_and_keeps_tabs_nulls_and_escapes(masker: Masker) -> None:
    cols = columns(("id", INT4, T), ("email", TEXT, T), ("note", TEXT, T), ("gone", TEXT, T))
    line = b"42\talice@example.com\tline one\\nssn 123-45-6789\\tend\t\\N\n"
    new, counts = RowMasker(masker, cols, None).mask_copy_line(line)
    assert new == b"42\t[EMAIL]\tline one\\nssn [US_SSN]\\tend\t\\N\n"
    assert counts == {"email": 1, "us_ssn": 1}
    assert RowMasker(masker, cols, None).mask_copy_line(b"1\tnone\there\t\\N\n") is None


def test_copy_line_with_unknown_columns_scans_every_field(masker: Masker) -> None:
    line = b"x\t4242424242424242\t2024-01-01"
    new, counts = RowMasker(masker, [], None).mask_copy_line(line)
    assert new == b"x\t[CREDIT_CARD]\t2024-01-01"
    assert counts == {"credit_card": 1}


def test_copy_line_applies_column_rules(masker: Masker) -> None:
    row_masker = RowMasker(masker, columns(("id", INT4, B), ("ssn", INT8, B)), ColumnRules(["*.ssn=us_ssn"]))
    assert row_masker.mask_copy_line(b"1\t123456789\n") == (b"1\t[US_SSN]\n", {"us_ssn": 1})
    assert row_masker.mask_copy_line(b"1\t\\N\n") is None


# --- ErrorResponse / NoticeResponse -------------------------------------------------------------------------


def test_notice_fields_quoting_data_are_masked(masker: Masker) -> None:
    body = (
        b"SERROR\x00VERROR\x00C23505\x00Mduplicate key value violates unique constraint\x00"
        b"DKey (email)=(alice@example.com) already exists.\x00tusers\x00ncolumn_email\x00\x00"
    )
    new, counts = mask_notice_fields(masker, body)
    assert new == body.replace(b"alice@example.com", b"[EMAIL]")
    assert counts == {"email": 1}
    assert mask_notice_fields(masker, b"SERROR\x00C42601\x00Msyntax error at or near 2024\x00\x00") is None


def test_a_notice_without_its_terminator_is_refused(masker: Masker) -> None:
    with pytest.raises(MalformedMessage):
        mask_notice_fields(masker, b"SERROR\x00Dkey alice@example.com")


@given(value=st.binary(max_size=40))
def test_copy_field_escaping_round_trips(value: bytes) -> None:
    escaped = escape_field(value)
    assert b"\t" not in escaped and b"\n" not in escaped
    assert unescape_field(escaped) == value


def test_copy_field_unescapes_octal_and_hex_forms() -> None:
    assert unescape_field(b"a\\101\\x42\\\\c\\.") == b"aAB\\c."
