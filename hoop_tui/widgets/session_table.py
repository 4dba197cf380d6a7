"""Live sessions, one row per session keyed by its id, updated in place as counters move."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.markup import escape
from textual.binding import Binding, BindingType

from hoop_tui.widgets.formatting import byte_count, clock_time
from hoop_tui.widgets.live_table import LiveTable

# What an on-call engineer scans first comes first: at 80 columns the tail (groups, client) is cut off.
COLUMNS = (
    ("identity", "Identity"),
    ("connection", "Connection"),
    ("protocol", "Proto"),
    ("state", "State"),
    ("held", "Held"),
    ("statements", "Stmts"),
    ("rows", "Rows"),
    ("bytes", "Bytes"),
    ("started", "Started"),
    ("groups", "Groups"),
    ("client", "Client"),
)


def session_cells(session: dict[str, Any]) -> dict[str, str]:
    """What each column shows for one session map (see proxy/control/views.py)."""
    if session.get("ended_at") or not session.get("live", True):
        state = "ended" if session.get("ended_at") else "remote"
    else:
        state = "held" if session.get("held") else "active"
    # Escaped: a DataTable reads str cells as markup, and names and groups come from tokens.
    return {
        "identity": escape(session.get("identity") or "-"),
        "groups": escape(",".join(session.get("groups") or ()) or "-"),
        "connection": escape(session.get("connection") or "-"),
        "protocol": escape(session.get("protocol") or "-"),
        "client": escape(session.get("client_address") or "-"),
        "started": clock_time(session.get("started_at")),
        "statements": str(session.get("statements", "-")),
        "rows": str(session.get("rows", "-")),
        "bytes": byte_count(session["bytes"]) if "bytes" in session else "-",
        "held": str(session.get("held", "-")),
        "state": state,
    }


class SessionTable(LiveTable):
    """Rows keyed by session id; `apply()` changes only the cells whose text changed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # The table's own enter (select the row) opens the session; shown so the footer says so.
        Binding(
            "enter", "select_cursor", "Open", id="sessions.open", tooltip="Watch the selected session live"
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.shown: dict[str, dict[str, str]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}  # the latest map of each row, for the session view

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def apply(self, sessions: list[dict[str, Any]]) -> None:
        with self.app.batch_update():
            for session in sessions:
                self._apply_one(session)

    def replace_all(self, sessions: list[dict[str, Any]]) -> None:
        """A snapshot: rows for sessions no longer listed go away, the rest update in place."""
        listed = {session["id"] for session in sessions}
        with self.app.batch_update():
            for gone in [key for key in self.shown if key not in listed]:
                self.remove_row(gone)
                del self.shown[gone]
                self.sessions.pop(gone, None)
            for session in sessions:
                self._apply_one(session)

    def _apply_one(self, session: dict[str, Any]) -> None:
        session_id = session["id"]
        cells = session_cells(session)
        before = self.shown.get(session_id)
        if before is None:
            self.add_row(*(cells[key] for key, _ in COLUMNS), key=session_id)
        else:
            for key, text in cells.items():
                if before.get(key) != text:
                    self.update_cell(session_id, key, text, update_width=True)
        self.shown[session_id] = cells
        self.sessions[session_id] = {**self.sessions.get(session_id, {}), **session}

    def session_map_under_cursor(self) -> dict[str, Any] | None:
        session_id = self.session_under_cursor()
        return None if session_id is None else self.sessions.get(session_id, {"id": session_id})

    def session_under_cursor(self) -> str | None:
        if not self.shown or not 0 <= self.cursor_row < self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return str(row_key.value)
