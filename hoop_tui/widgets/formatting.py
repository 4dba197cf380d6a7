"""How the console writes times, durations and counts in its tables (pure functions, no textual)."""

from __future__ import annotations

import datetime


def clock_time(epoch_seconds: float | None) -> str:
    if not epoch_seconds:
        return "-"
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC).strftime("%H:%M:%S")


def time_left(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "-"
    remaining = int(expires_at - now)
    if remaining <= 0:
        return "expired"
    minutes, seconds = divmod(remaining, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def position(t_us: int) -> str:
    seconds, micros = divmod(max(t_us, 0), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes:02d}:{seconds:02d}.{micros // 100_000}"


def one_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def byte_count(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{count}B"
