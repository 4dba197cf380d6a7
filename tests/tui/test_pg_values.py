"""Result values as the console shows them: text as it is, binary results of common types read back."""

from __future__ import annotations

import struct
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from hoop_tui.widgets.pg_values import MAX_CELL, NUMERIC, binary_value, cell_text


def numeric(weight: int, sign: int, scale: int, *groups: int) -> bytes:
    return struct.pack(">hhHh", len(groups), weight, sign, scale) + struct.pack(f">{len(groups)}H", *groups)


def test_text_values_show_as_they_are_on_one_line() -> None:
    assert cell_text(None) == "NULL"
    assert cell_text(b"alice", 25) == "alice"
    assert cell_text(b"two\nlines", 25) == "two lines"
    assert cell_text(b"x" * 500).endswith("…") and len(cell_text(b"x" * 500)) == MAX_CELL


def test_binary_numbers_dates_and_ids_read_as_postgresql_prints_them() -> None:
    assert cell_text(struct.pack(">i", 1), 23) == "1"
    assert cell_text(struct.pack(">q", -7), 20) == "-7"
    assert cell_text(b"\x01", 16) == "true"
    assert binary_value(numeric(1, 0, 2, 6, 9138, 1800), NUMERIC) == "69138.18"
    assert binary_value(numeric(-1, 0x4000, 4, 5000), NUMERIC) == "-0.5000"
    assert binary_value(numeric(6, 0, 2, 12, 3456, 7890, 1234, 5678, 9012, 3456, 7800), NUMERIC) == (
        "12345678901234567890123456.78"
    )
    assert binary_value(numeric(0, 0xC000, 0), NUMERIC) == "NaN"
    day = 24 * 3600 * 1_000_000
    assert binary_value(struct.pack(">q", day), 1184) == "2000-01-02 00:00:00+00:00"
    assert binary_value(struct.pack(">q", day), 1114) == "2000-01-02 00:00:00"
    assert binary_value(struct.pack(">i", -1), 1082) == "1999-12-31"
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert cell_text(ident.bytes, 2950) == str(ident)


def test_what_cannot_be_read_shows_as_hex_never_as_control_characters() -> None:
    assert cell_text(b"\x00\x01\x1b[31m", 25) == "\\x00011b5b33316d"
    assert cell_text(b"\x00\x01", 23) == "\\x0001", "a value too short for its type is not guessed at"


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40), st.sampled_from([0, 16, 20, 21, 23, 26, 700, 701, 1082, 1114, 1184, 1700, 2950])
)
def test_any_bytes_of_any_type_give_one_printable_line(value: bytes, type_oid: int) -> None:
    shown = cell_text(value, type_oid)
    assert shown.isprintable() and len(shown) <= MAX_CELL
