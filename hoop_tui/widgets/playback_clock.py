"""The player's clock: position, speed, play/pause and skip-idle, as plain state (no textual, no timers)."""

from __future__ import annotations

import bisect
import re
from array import array

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
IDLE_LEAD_US = 250_000  # skip-idle lands this long before the activity after a gap, so it is seen arriving

_CLOCK_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_time(text: str) -> int:
    """`mm:ss`, `hh:mm:ss` or seconds (decimals allowed) as microseconds; ValueError says what is accepted."""
    cleaned = text.strip()
    match = _CLOCK_TIME.match(cleaned)
    try:
        if match:
            hours, minutes, seconds = match.groups()
            if (hours is not None and int(minutes) >= 60) or float(seconds) >= 60:
                raise ValueError
            total = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            total = float(cleaned)
    except ValueError:
        raise ValueError(f"not a time: {text.strip()!r} (use mm:ss, hh:mm:ss or seconds)") from None
    if total < 0 or total != total or total == float("inf"):
        raise ValueError(f"not a time: {text.strip()!r} (use mm:ss, hh:mm:ss or seconds)")
    return round(total * 1_000_000)


class PlaybackClock:
    """Where playback is in a recording of `duration_us`, and how it moves with wall time."""

    def __init__(self, duration_us: int) -> None:
        self.duration_us = max(0, duration_us)
        self.position_us = 0
        self.speed = 1.0
        self.playing = False
        self.skip_idle = False
        # Idle gaps as two sorted columns: a gap runs from the last event before it to the first one after.
        self._gap_starts = array("q")
        self._gap_ends = array("q")

    def add_idle_gaps(self, gaps: list[tuple[int, int]]) -> None:
        """Gaps found by the scan, in recording order (appended as the scan progresses)."""
        for start, end in gaps:
            self._gap_starts.append(start)
            self._gap_ends.append(end)

    def seek(self, t_us: int) -> None:
        self.position_us = max(0, min(self.duration_us, int(t_us)))

    def toggle(self) -> None:
        if not self.playing and self.position_us >= self.duration_us:
            self.position_us = 0
        self.playing = not self.playing

    def change_speed(self, steps: int) -> None:
        current = SPEEDS.index(self.speed) if self.speed in SPEEDS else SPEEDS.index(1.0)
        self.speed = SPEEDS[max(0, min(current + steps, len(SPEEDS) - 1))]

    def advance(self, elapsed_seconds: float) -> bool:
        """Move by `elapsed_seconds` of wall time at the current speed; True when the position moved."""
        if not self.playing:
            return False
        before = self.position_us
        target = self.position_us + int(elapsed_seconds * self.speed * 1_000_000)
        if self.skip_idle:
            target = self._past_idle(target)
        self.seek(target)
        if self.position_us >= self.duration_us:
            self.playing = False
        return self.position_us != before

    def _past_idle(self, t_us: int) -> int:
        """Inside an idle gap, jump to just before the activity that ends it."""
        gap = bisect.bisect_right(self._gap_starts, t_us) - 1
        if gap >= 0 and t_us < self._gap_ends[gap] - IDLE_LEAD_US:
            return self._gap_ends[gap] - IDLE_LEAD_US
        return t_us
