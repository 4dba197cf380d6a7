"""A modal that asks for one line of text (a denial's justification, a kill's reason); empty is refused."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class JustificationModal(ModalScreen[str | None]):
    """Dismisses with the typed text (stripped), or None when cancelled with Escape."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="justification.cancel", tooltip="Close without acting"),
    ]

    def __init__(self, title: str, prompt: str) -> None:
        super().__init__()
        self._title = title
        self._prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="justification-box"):
            yield Label(self._title, id="justification-title")
            yield Label(self._prompt)
            yield Input(placeholder="required; Enter to confirm, Escape to cancel", id="justification-input")
            yield Label("", id="justification-error")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            self.query_one("#justification-error", Label).update("A reason is required.")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
