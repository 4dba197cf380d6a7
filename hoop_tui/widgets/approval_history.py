"""Decided approval requests in the order they were decided: what was decided, by whom, and why."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from hoop_tui.widgets.formatting import clock_time, one_line
from hoop_tui.widgets.live_table import LiveTable

COLUMNS = (
    ("state", "Decision"),
    ("decider", "Decider"),
    ("reason", "Reason"),
    ("requester", "Requester"),
    ("statement", "Statement"),
    ("decided", "At"),
)


class ApprovalHistory(LiveTable):
    """Decided requests keyed by id; a request is shown once, with its final state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.decided: dict[str, dict[str, Any]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def record(self, request: dict[str, Any]) -> None:
        request_id = request["id"]
        if request_id in self.decided:
            return
        self.decided[request_id] = request
        # Escaped: a DataTable reads str cells as markup, and these strings come from agents and operators.
        self.add_row(
            escape(request.get("state") or "-"),
            escape(request.get("decider") or "-"),
            escape(one_line(request.get("justification") or "", 40)),
            escape(request.get("requester") or "-"),
            escape(one_line(request.get("statement") or "", 40)),
            clock_time(request.get("decided_at")),
            key=request_id,
        )
        self.move_cursor(row=self.row_count - 1)  # keep the latest decision in view
