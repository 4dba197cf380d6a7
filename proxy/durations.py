"""Human-written durations ("5m", "90d", "1h30m") parsed to seconds and formatted back."""

from __future__ import annotations

import math
import re

__all__ = ["DurationError", "format_duration", "parse_duration"]

# Largest unit first: a duration lists its parts in this order, each at most once ("1h30m", never "30m1h").
_UNIT_SECONDS: dict[str, float] = {
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_UNIT_ORDER: dict[str, int] = {unit: rank for rank, unit in enumerate(_UNIT_SECONDS)}
# "ms" must be tried before "m" or "5ms" would read as five minutes followed by garbage.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|w|d|h|m|s)")
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|w|d|h|m|s))+")
_EXAMPLES = 'e.g. "30s", "5m", "1h30m", "90d"'


class DurationError(ValueError):
    """A duration string that cannot be read; str() is one line saying what to write instead."""


def parse_duration(text: str) -> float:
    """Return the number of seconds `text` ("5m", "1h30m", "1.5h", "250ms", "90d") stands for."""
    if not isinstance(text, str):
        raise DurationError(f"a duration must be a string ({_EXAMPLES})")
    compact = text.strip()
    if not compact:
        raise DurationError(f"empty duration; write a number with a unit ({_EXAMPLES})")
    if _WHOLE.fullmatch(compact) is None:
        raise DurationError(
            f"cannot read duration {compact!r}; write numbers with units w/d/h/m/s/ms ({_EXAMPLES})"
        )
    total = 0.0
    previous_rank = -1
    for match in _PART.finditer(compact):
        unit = match.group(2)
        rank = _UNIT_ORDER[unit]
        if rank <= previous_rank:
            raise DurationError(
                f"cannot read duration {compact!r}: list each unit once, largest first ({_EXAMPLES})"
            )
        previous_rank = rank
        total += float(match.group(1)) * _UNIT_SECONDS[unit]
    if not math.isfinite(total):
        raise DurationError(f"duration {compact!r} is too large")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people ("5m", "1h30m", "1.5s", "250ms"); inverse of parse_duration."""
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError("a duration to format must be a finite number of seconds, zero or more")
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{_trim(seconds * 1000)}ms"
    milliseconds = round(seconds * 1000)  # rounding first keeps "1m60s" from appearing for 119.9999
    whole, fraction_ms = divmod(milliseconds, 1000)
    fraction = fraction_ms / 1000
    parts: list[str] = []
    remaining = whole
    for unit in ("d", "h", "m"):
        size = int(_UNIT_SECONDS[unit])
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    if remaining or fraction:
        parts.append(f"{_trim(remaining + fraction)}s")
    return "".join(parts)


def _trim(value: float) -> str:
    """Up to three decimals, without trailing zeros ("1.5", "2", "0.25")."""
    return f"{value:.3f}".rstrip("0").rstrip(".")
