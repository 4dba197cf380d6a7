"""The pending approval requests, oldest first, keyed by request id; time left ticks in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape

from hoop_tui.widgets.code_text import highlighted_one_line
from hoop_tui.widgets.formatting import time_left
from hoop_tui.widgets.live_table import LiveTable

# Time left and kind first: on an 80-column terminal the statement and the rule are what runs off the edge
# (the detail below the queue shows both in full).
COLUMNS = (
    ("left", "Time left"),
    ("requester", "Requester"),
    ("connection", "Connection"),
    ("kind", "Kind"),
    ("statement", "Statement"),
    ("rule", "Rule"),
)


class ApprovalQueue(LiveTable):
    """Pending requests; `request_under_cursor()` is what `a`/`d` act on."""

    def __init__(self, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._clock = clock
        self.requests: dict[str, dict[str, Any]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, request: dict[str, Any]) -> None:
        """Add a pending request. Callers pass requests in creation order (the watch delivers them so and
        the snapshot is sorted first), so appending keeps the oldest on top."""
        request_id = request["id"]
        if request_id in self.requests:
            return
        self.requests[request_id] = request
        self.add_row(
            time_left(request.get("expires_at"), self._clock()),
            # Escaped: a DataTable reads str cells as markup, and these strings come from tokens and config.
            escape(request.get("requester") or "-"),
            escape(request.get("connection") or "-"),
            escape(request.get("kind") or "-"),
            highlighted_one_line(
                request.get("statement") or "", 60, "shell" if request.get("protocol") == "ssh" else "sql"
            ),
            escape(request.get("rule") or "-"),
            key=request_id,
        )

    def forget(self, request_id: str) -> None:
        if self.requests.pop(request_id, None) is not None:
            self.remove_row(request_id)

    def tick(self) -> None:
        """Refresh the time-left cells in place."""
        now = self._clock()
        for request_id, request in self.requests.items():
            self.update_cell(request_id, "left", time_left(request.get("expires_at"), now), update_width=True)

    def request_under_cursor(self) -> dict[str, Any] | None:
        if not self.requests or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return self.requests.get(str(row_key.value))
