"""A wall clock for tests that only moves when the test moves it."""

from __future__ import annotations


class ManualClock:
    """Callable like ``time.time``; ``advance`` moves it (backwards too, to test clock steps)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
