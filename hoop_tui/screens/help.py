"""The help screen: what each screen is for and the keys that act on it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP_TEXT = """\
# hoop-tui console

**Screens** — `1` approvals, `2` sessions, `3` recordings (when the console knows a recordings directory),
`?` this help, `q` quit. `ctrl+p` opens the command palette.

## Approvals
Statements agents sent that a policy holds for review, oldest first, with the time left before they expire.
The selected request is shown in full below the queue: its statement, classification, rule and time left.
- `a` approve the selected request
- `d` deny it (a justification is required; the agent sees it)

Decided requests move to the history below, with who decided and why.

## Sessions
Live agent sessions, updated in place.
- `enter` open the selected session's live view
- `k` kill the selected session (asks for a reason; the agent sees it)

## Session view
One session as it happens: each statement (or SSH command) with its decision and the rule that matched,
approvals asked and decided, the (masked) result rows (first 50 per statement), errors, and the end.
SSH sessions also show their terminal. The newest 1,000 entries are kept.
- `k` kill this session (asks for a reason), `escape` back to the sessions
- `up` / `down` / `page up` / `page down` scroll, `home` the oldest entry kept, `end` follow the newest

## Recordings (`hoop-tui replay DIR`, or `3`)
Every recording in the directory, newest first: identity, connection, protocol, start, duration,
statements, holds and denials, and whether the file verifies.
- `f` filters (identity, connection, dates, has a hold / a denial), `/` search statement text
- `enter` play the selected recording, `ctrl+r` reload the list

## Player (`hoop-tui replay FILE`)
The timeline marks statements and commands (╷), holds (◆) and denials (▼); the statement list, the
result rows and, for SSH sessions, the terminal follow the playhead.
- `space` play / pause, `+` / `-` speed (0.5x to 16x), `left` / `right` seek 5 s, click the timeline to seek
- `n` / `p` next / previous statement or command, `g` go to a time (`mm:ss`), `i` skip idle gaps
- `escape` back to the recordings list
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
