"""The help screen: what each screen is for and the keys that act on it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP_TEXT = """\
# hoop-tui console

**Screens** — `1` approvals, `2` sessions, `?` this help, `q` quit.

## Approvals
Statements agents sent that a policy holds for review, oldest first, with the time left before they expire.
- `a` approve the selected request
- `d` deny it (a justification is required; the agent sees it)

Decided requests move to the history below, with who decided and why.

## Sessions
Live agent sessions, updated in place.
- `k` kill the selected session (asks for a reason; the agent sees it)

## Player (`hoop-tui replay FILE`)
- `space` play / pause, `+` / `-` speed, `left` / `right` seek 5 s
- `n` / `p` next / previous statement; the result rows of the selected statement show below
- The badge says whether the recording is intact, unsealed (not finished) or tampered.
- `--mask email,phone` masks more as it is shown (never less than was recorded).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close", tooltip="Back to the console"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP_TEXT)

    def action_close(self) -> None:
        self.dismiss(None)
