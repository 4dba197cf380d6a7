"""Review of render-time masking (EventMasker): the gaps found and what held. The split-stream, colour-escape,
cell-row and wrapped-row tests failed on 1adabfe..4b2dd04 and pass with the stream/keyframe masking since."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.control.viewer_masking import EventMasker, viewer_entities
from recordings.pgwire import decode_datarows, encode_datarow

EMAIL = "dana@example.com"
PHONE = "+1 415 555 2671"
MASKER = EventMasker.for_entities(frozenset({"email", "phone"}))


def _texts(value: Any) -> str:
    """Every string and byte string inside `value`, joined in order (what a viewer can put on screen)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return "".join(_texts(item) for item in value)
    if isinstance(value, dict):
        return "".join(_texts(item) for item in value.values())
    return ""


def test_an_admin_gets_no_render_masker_and_an_auditor_gets_one() -> None:
    assert EventMasker.for_entities(viewer_entities({"admin", "auditor"}, ["phone"])) is None
    assert viewer_entities({"auditor"}, ["phone"]) == frozenset({"phone"})


def test_nested_texts_of_any_event_kind_are_masked() -> None:
    # Approval reasons, error fields, statement lists: strings at any depth of lists and maps.
    assert MASKER is not None
    event = [
        5,
        "approval.requested",
        {"reason": f"call {PHONE}", "detail": [{"note": f"mail {EMAIL}"}], "count": 3},
        (f"{EMAIL}",),
    ]
    masked = MASKER.event(event)
    seen = _texts(masked)
    assert EMAIL not in seen and PHONE not in seen
    assert masked[2]["count"] == 3 and "call " in seen


def test_error_fields_and_statements_are_masked() -> None:
    assert MASKER is not None
    error = MASKER.event([1, "pg.error", {"S": "ERROR", "M": f"duplicate key {EMAIL}", "D": PHONE}])
    statement = MASKER.event([2, "pg.query", f"SELECT * FROM t WHERE phone = '{PHONE}'"])
    assert EMAIL not in _texts(error) and PHONE not in _texts(error)
    assert PHONE not in _texts(statement) and "SELECT * FROM t" in _texts(statement)


def test_rows_are_masked_value_by_value_and_unreadable_rows_are_not_shown() -> None:
    assert MASKER is not None
    raw = encode_datarow([b"1", EMAIL.encode(), None, f"x {PHONE} y".encode()])
    masked = MASKER.event([3, "pg.rows", 1, raw])
    (row,) = decode_datarows(masked[3])
    assert row[0] == b"1" and row[2] is None
    assert EMAIL.encode() not in masked[3] and PHONE.encode() not in masked[3]
    truncated = MASKER.event([4, "pg.rows", 1, raw[:-3]])
    assert truncated[3] == b""


def test_a_value_split_across_two_output_events_is_masked() -> None:
    assert MASKER is not None
    first = MASKER.event([10, "ssh.output", "stdout", b"phone: +1 415 5"])
    second = MASKER.event([11, "ssh.output", "stdout", b"55 2671\r\n"])
    assert PHONE not in _texts(first[3]) + _texts(second[3])


def test_a_value_with_a_colour_escape_inside_is_masked() -> None:
    assert MASKER is not None
    masked = MASKER.event([12, "ssh.output", "stdout", b"dana@\x1b[01;31mexample\x1b[0m.com\r\n"])
    shown = _texts(masked[3]).replace("\x1b[01;31m", "").replace("\x1b[0m", "")
    assert EMAIL not in shown


def _keyframe(lines: list[Any]) -> list[Any]:
    return [20, "screen.keyframe", {"lines": lines, "styles": [], "cursor": [0, 0]}]


def test_a_keyframe_line_held_as_one_string_is_masked() -> None:
    assert MASKER is not None
    masked = MASKER.event(_keyframe([f"$ cat users  {EMAIL}", "ok"]))
    assert EMAIL not in _texts(masked[2]["lines"])


def test_a_keyframe_row_of_cells_is_masked() -> None:
    assert MASKER is not None
    cells = ["名", "", " ", *EMAIL]
    masked = MASKER.event(_keyframe([cells]))
    assert EMAIL not in "".join(masked[2]["lines"][0])


def test_a_value_wrapped_onto_the_next_keyframe_row_is_masked() -> None:
    assert MASKER is not None
    first = "x" * 71 + "dana@exa"  # 79 columns, the address continues on the next row
    masked = MASKER.event(_keyframe([first, "mple.com"]))
    rows = masked[2]["lines"]
    assert EMAIL not in rows[0] + rows[1]


# A review finding, fixed.
@pytest.mark.parametrize("next_row", ["42 rows", "5 times"])
def test_a_value_at_the_end_of_a_row_is_masked_whatever_the_next_row_starts_with(next_row: str) -> None:
    assert MASKER is not None
    masked = MASKER.event(_keyframe([f"ssn 123-45-6789 call {PHONE}", next_row]))
    row = masked[2]["lines"][0]
    assert PHONE not in row


def test_a_value_at_the_end_of_a_row_before_an_empty_row_is_masked() -> None:
    assert MASKER is not None
    masked = MASKER.event(_keyframe([f"call {PHONE}", ""]))
    assert PHONE not in masked[2]["lines"][0]
