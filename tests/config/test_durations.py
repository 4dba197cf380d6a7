"""Durations: "5m", "90d", "1h30m" to seconds, one clear error for anything else, and back to text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("90d", 90 * 86400.0),
        ("15m", 900.0),
        ("1h30m", 5400.0),
        ("30s", 30.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("2w", 14 * 86400.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
        ("0s", 0.0),
        ("  10s  ", 10.0),
    ],
)
def test_parses_human_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "5", "m", "5 m", "5min", "-5m", "30m1h", "5m5m", "1h 30m", "5M", "1e3s", "∞s", ".5s", "٣s"],
)
def test_rejects_everything_else_with_one_line(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert "\n" not in message
    assert "e.g." in message  # every error shows what to write instead


def test_rejects_non_strings() -> None:
    with pytest.raises(DurationError):
        parse_duration(300)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (300, "5m"),
        (5400, "1h30m"),
        (90 * 86400, "90d"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (61, "1m1s"),
    ],
)
def test_formats_compactly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_rounds_to_milliseconds_without_carry_artefacts() -> None:
    assert format_duration(119.9999) == "2m"


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_format_rejects_impossible_values(seconds: float) -> None:
    with pytest.raises(DurationError):
        format_duration(seconds)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400 * 86400 * 1000))
def test_format_then_parse_round_trips(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.smhdw -", max_size=12))
def test_arbitrary_text_parses_or_raises_duration_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert value >= 0
