"""A one-line input that asks for an instant (`mm:ss`, `hh:mm:ss` or seconds) and posts it when valid."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from hoop_tui.widgets.playback_clock import parse_time


class GoToTime(Input):
    """Hidden until `ask()`; enter posts `GoToTime.Chosen` (or flags the input), escape hides it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Cancel", id="go_to_time.cancel", tooltip="Close without moving"),
    ]

    class Chosen(Message):
        """The user asked for the instant `t_us`."""

        def __init__(self, t_us: int) -> None:
            super().__init__()
            self.t_us = t_us

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            placeholder="go to time: mm:ss, hh:mm:ss or seconds — enter to go, escape to cancel", **kwargs
        )
        self.display = False

    def ask(self) -> None:
        self.value = ""
        self.remove_class("-invalid")
        self.display = True
        self.focus()

    def action_dismiss(self) -> None:
        self.display = False
        self.screen.set_focus(None)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            t_us = parse_time(event.value)
        except ValueError as error:
            self.add_class("-invalid")
            self.notify(str(error), severity="warning", timeout=4)
            return
        self.action_dismiss()
        self.post_message(self.Chosen(t_us))
