"""The selected approval request in full: its statement highlighted, classification, rule, and time left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from hoop_tui.widgets.code_text import highlighted_lines
from hoop_tui.widgets.formatting import time_left

MAX_STATEMENT_LINES = 4


def detail_lines(request: dict[str, Any] | None, now: float) -> list[Text]:
    if request is None:
        return [Text("No request selected.", style="dim")]
    language = "shell" if request.get("protocol") == "ssh" else "sql"
    statement = highlighted_lines(request.get("statement") or "", language, MAX_STATEMENT_LINES)
    left = time_left(request.get("expires_at"), now)
    facts = Text()
    facts.append("Time left ", style="dim")
    facts.append(left, style="bold red" if left == "expired" else "bold yellow")
    facts.append("  Kind ", style="dim")
    facts.append(str(request.get("kind") or "-"), style="bold")
    if request.get("reason"):
        facts.append(f" ({request['reason']})")
    rule = Text.assemble(("Rule ", "dim"), str(request.get("rule") or "-"))
    who = Text(
        f"{request.get('requester') or '-'} on {request.get('connection') or '-'}"
        f" · request {request.get('id')} · session {request.get('session') or '-'}",
        style="dim",
    )
    lines = [*statement, facts, rule, who]
    for line in lines:
        line.end = "\n"
        line.no_wrap = True  # one fact per line; what does not fit is cut, not wrapped over the next
        line.overflow = "ellipsis"
    return lines


class ApprovalDetail(Static):
    """`show(request)` when the selection moves; `tick()` recounts the time left with the app's clock."""

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self._clock = clock
        self.request: dict[str, Any] | None = None
        self.plain_text = ""  # what the widget shows, as plain text

    def show(self, request: dict[str, Any] | None) -> None:
        self.request = request
        self.tick()

    def tick(self) -> None:
        lines = detail_lines(self.request, self._clock())
        self.plain_text = "\n".join(line.plain for line in lines)
        self.update(Group(*lines))
