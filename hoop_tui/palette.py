"""The command palette's console commands: switching screens everywhere, and the current screen's actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Provider

# (palette text, help line, action, the screen sub_title it applies on, or None for everywhere)
CONSOLE_COMMANDS: tuple[tuple[str, str, str, str | None], ...] = (
    ("Show approvals", "The queue of held statements", "app.show('approvals')", None),
    ("Show sessions", "Live agent sessions", "app.show('sessions')", None),
    ("Show recordings", "Browse and replay recorded sessions", "app.show('recordings')", None),
    ("Approve selected request", "Let the held statement run", "screen.approve", "approvals"),
    ("Deny selected request", "Refuse it, with a reason the agent sees", "screen.deny", "approvals"),
    ("Kill selected session", "End it, with a reason the agent sees", "screen.kill", "sessions"),
    ("Open session", "Watch the selected session live", "screen.open_session", "sessions"),
    ("Kill session", "End the session shown, with a reason the agent sees", "screen.kill", "session"),
    ("Keys and screens", "The help screen", "app.help", None),
)


class ConsoleCommands(Provider):
    def _available(self) -> list[tuple[str, str, str]]:
        showing = self.screen.sub_title
        return [
            (text, help_text, action)
            for text, help_text, action, screen in CONSOLE_COMMANDS
            if screen is None or screen == showing
        ]

    async def discover(self) -> AsyncIterator[DiscoveryHit]:
        for text, help_text, action in self._available():
            yield DiscoveryHit(text, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for text, help_text, action in self._available():
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(text), partial(self.screen.run_action, action), help=help_text
                )
