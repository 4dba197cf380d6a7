"""The recordings browser: a table of the recordings in a directory, filters, statement search, the player.

The table comes from the files' headers and seals (a few small reads each). Counting statements, holds and
denials and verifying each file happen afterwards in a background worker, newest first, and fill the table
cell by cell; the statement search runs in its own worker, over the recordings the filters leave, bounded.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from hoop_tui.messages import RecordingCounted, RecordingsListed, StatementSearchFinished
from hoop_tui.widgets.formatting import position
from hoop_tui.widgets.live_table import LiveTable
from hoop_tui.widgets.recording_catalog import (
    STATS_BYTE_LIMIT,
    RecordingFilter,
    RecordingSummary,
    SearchHit,
    count_marks,
    list_recordings,
    matches,
    search_statements,
)
from hoop_tui.widgets.recording_filters import RecordingFilters
from hoop_tui.widgets.recording_index import Mask, no_mask
from recordings.errors import RecordingError

COLUMNS = (
    "identity",
    "connection",
    "protocol",
    "started (UTC)",
    "duration",
    "statements",
    "deny/hold",
    "verify",
)


def _count(value: int | None) -> str:
    return "…" if value is None else str(value)


def row_cells(summary: RecordingSummary) -> tuple[str, ...]:
    """The table row of one recording (counts show "…" until the background pass has them)."""
    started = summary.started_at.strftime("%Y-%m-%d %H:%M:%S") if summary.started_at else "-"
    duration = position(summary.duration_us) if summary.duration_us is not None else "…"
    if summary.problem:
        return (summary.path.name, "", "", "", "", "", "", "unreadable")
    return (
        summary.identity or "-",
        summary.connection or "-",
        summary.protocol or "-",
        started,
        duration,
        _count(summary.statements),
        f"{_count(summary.denials)}/{_count(summary.holds)}",
        summary.verify_status or ("sealed" if summary.sealed else "unsealed"),
    )


class RecordingsScreen(Screen[None]):
    CSS_PATH = "recordings.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open", id="recordings.open", tooltip="Play the selected recording"),
        Binding("slash", "focus_search", "Search", id="recordings.search", tooltip="Search statement text"),
        Binding("f", "focus_filters", "Filter", id="recordings.filter", tooltip="Edit the filters"),
        Binding("ctrl+r", "reload", "Reload", id="recordings.reload", tooltip="Read the directory again"),
        Binding(
            "escape", "back_to_table", "Table", show=False, id="recordings.table", tooltip="Back to the table"
        ),
    ]

    def __init__(self, directory: Path, *, mask: Mask = no_mask) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.mask = mask  # the viewer's render-time masking: the search sees only what the viewer may see
        self.summaries: dict[Path, RecordingSummary] = {}
        self.order: list[Path] = []
        self.chosen = RecordingFilter()
        self.search_needle = ""
        self.search_hits: dict[Path, SearchHit] | None = None  # None: no search narrows the table
        self.search_complete = True
        self.shown: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield RecordingFilters(id="recording-filters")
        yield LiveTable(id="recordings-table", cursor_type="row", zebra_stripes=True)
        yield Static("Reading recordings…", id="recordings-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "recordings"
        table = self.query_one("#recordings-table", LiveTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        table.focus()
        self.load()

    # -- background work ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def load(self) -> None:
        """List the directory from headers and seals, then count and verify each recording, newest first."""
        from recordings.verify import verify

        worker = get_current_worker()
        try:
            summaries = list_recordings(self.directory)
        except OSError as error:
            self.post_message(RecordingsListed([]))
            self.app.call_from_thread(self.notify, f"cannot list {self.directory}: {error}", severity="error")
            return
        self.post_message(RecordingsListed(summaries))
        for summary in summaries:
            if worker.is_cancelled:
                return
            if summary.problem:
                continue
            try:
                stats = count_marks(summary.path)
                status = verify(summary.path).status if stats is not None else "too large"
            except (OSError, RecordingError) as error:
                stats, status = None, f"unreadable: {error}"
            self.post_message(RecordingCounted(summary.path, stats, status))

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def search(self, needle: str, paths: list[Path]) -> None:
        worker = get_current_worker()
        outcome = search_statements(paths, needle, self.mask, cancelled=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(StatementSearchFinished(needle, outcome))

    # -- what the workers found -----------------------------------------------------------------------------

    @on(RecordingsListed)
    def listed(self, message: RecordingsListed) -> None:
        self.summaries = {summary.path: summary for summary in message.summaries}
        self.order = [summary.path for summary in message.summaries]
        self.refill()

    @on(RecordingCounted)
    def counted(self, message: RecordingCounted) -> None:
        summary = self.summaries.get(message.path)
        if summary is None:
            return
        stats = message.stats
        if stats is not None:
            summary.statements, summary.holds, summary.denials = stats.statements, stats.holds, stats.denials
            summary.duration_us = stats.duration_us
        summary.verify_status = message.verify_status
        if self.chosen.decision != "any":
            self.refill()  # this recording may now pass (or fail) the decision filter
            return
        table = self.query_one("#recordings-table", LiveTable)
        key = str(message.path)
        if key in table.rows:
            for column, value in zip(COLUMNS, row_cells(summary), strict=True):
                table.update_cell(key, column, value)
        self._show_status()

    @on(StatementSearchFinished)
    def searched(self, message: StatementSearchFinished) -> None:
        if message.needle != self.search_needle:
            return  # a newer search replaced this one
        hits: dict[Path, SearchHit] = {}
        for hit in message.outcome.hits:
            hits.setdefault(hit.path, hit)  # the first match in each recording is where the player opens
        self.search_hits = hits
        self.search_complete = message.outcome.complete
        self.refill()

    # -- filters --------------------------------------------------------------------------------------------

    @on(RecordingFilters.Changed)
    def filters_changed(self, message: RecordingFilters.Changed) -> None:
        self.chosen = message.chosen
        self.refill()

    @on(RecordingFilters.SearchRequested)
    def search_requested(self, message: RecordingFilters.SearchRequested) -> None:
        self.search_needle = message.text
        if not message.text:
            self.workers.cancel_group(self, "search")
            self.search_hits = None
            self.refill()
            return
        self.search_hits = None
        self.search(message.text, [path for path in self.order if matches(self.summaries[path], self.chosen)])
        self._show_status(searching=True)

    def visible(self) -> list[Path]:
        """The recordings the filters (and a finished search) leave, newest first."""
        shown = [path for path in self.order if matches(self.summaries[path], self.chosen)]
        if self.search_hits is not None:
            shown = [path for path in shown if path in self.search_hits]
        return shown

    def refill(self) -> None:
        table = self.query_one("#recordings-table", LiveTable)
        shown = self.visible()
        if shown != self.shown or table.row_count != len(shown):
            table.clear()
            for path in shown:
                table.add_row(*row_cells(self.summaries[path]), key=str(path))
            self.shown = shown
        else:
            for path in shown:
                for column, value in zip(COLUMNS, row_cells(self.summaries[path]), strict=True):
                    table.update_cell(str(path), column, value)
        self._show_status()

    def _show_status(self, *, searching: bool = False) -> None:
        parts = [f"{len(self.shown)} of {len(self.order)} recordings in {self.directory}"]
        if searching:
            parts.append(f"searching for {self.search_needle!r}…")
        elif self.search_hits is not None:
            found = f"{len(self.search_hits)} with a statement containing {self.search_needle!r}"
            parts.append(found if self.search_complete else f"{found} (search stopped at its match limit)")
        uncounted = sum(1 for summary in self.summaries.values() if summary.verify_status is None)
        if uncounted:
            parts.append(f"counting {uncounted}… (files over {STATS_BYTE_LIMIT >> 20} MB are not counted)")
        self.query_one("#recordings-status", Static).update(" · ".join(parts))

    # -- actions --------------------------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_recording(Path(str(event.row_key.value)))

    def action_open(self) -> None:
        table = self.query_one("#recordings-table", LiveTable)
        if table.row_count:
            self.open_recording(self.shown[table.cursor_row])

    def open_recording(self, path: Path) -> None:
        from hoop_tui.screens.player import PlayerScreen

        hit = self.search_hits.get(path) if self.search_hits is not None else None
        start_us = hit.statement.t_us if hit is not None else None
        self.app.push_screen(PlayerScreen(path, mask=self.mask, closable=True, start_us=start_us))

    def action_focus_search(self) -> None:
        self.query_one("#filter-search", Input).focus()

    def action_focus_filters(self) -> None:
        self.query_one("#filter-identity", Input).focus()

    def action_back_to_table(self) -> None:
        self.query_one("#recordings-table", LiveTable).focus()

    def action_reload(self) -> None:
        self.load()
