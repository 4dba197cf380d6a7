"""The recordings browser's filter bar: identity, connection, date range, decision, and statement search."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

from hoop_tui.widgets.recording_catalog import RecordingFilter, parse_day

DECISION_CHOICES = (("any decision", "any"), ("has a denial", "deny"), ("has a hold", "hold"))
DATE_TIP = "YYYY-MM-DD: the session started on or after (from) / on or before (to) this day, UTC"


class RecordingFilters(Horizontal):
    """Posts `Changed` with the whole filter on every edit, and `SearchRequested` when search is submitted.

    A date that does not parse marks its field invalid and does not narrow the table (rather than showing
    nothing, which would look like "no recordings").
    """

    class Changed(Message):
        def __init__(self, chosen: RecordingFilter) -> None:
            super().__init__()
            self.chosen = chosen

    class SearchRequested(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chosen = RecordingFilter()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="identity", id="filter-identity", tooltip="Part of the identity")
        yield Input(placeholder="connection", id="filter-connection", tooltip="Part of the connection name")
        yield Input(placeholder="from date", id="filter-since", tooltip=DATE_TIP)
        yield Input(placeholder="to date", id="filter-until", tooltip=DATE_TIP)
        yield Select(DECISION_CHOICES, value="any", allow_blank=False, id="filter-decision")
        yield Input(placeholder="search", id="filter-search", tooltip="Statement text; enter to search")

    def _day(self, field_id: str) -> Any:
        field = self.query_one(f"#{field_id}", Input)
        try:
            day = parse_day(field.value)
        except ValueError as error:
            field.add_class("-invalid")
            field.tooltip = str(error)
            return None
        field.remove_class("-invalid")
        field.tooltip = DATE_TIP
        return day

    def _collect(self) -> RecordingFilter:
        decision = self.query_one("#filter-decision", Select).value
        return RecordingFilter(
            identity=self.query_one("#filter-identity", Input).value.strip(),
            connection=self.query_one("#filter-connection", Input).value.strip(),
            since=self._day("filter-since"),
            until=self._day("filter-until"),
            decision=decision if isinstance(decision, str) else "any",
        )

    @on(Input.Changed)
    @on(Select.Changed)
    def edited(self, event: Input.Changed | Select.Changed) -> None:
        event.stop()
        if event.control.id == "filter-search":
            if not event.control.value:
                self.post_message(self.SearchRequested(""))  # an emptied search shows everything again
            return
        chosen = self._collect()
        if chosen != self.chosen:
            self.chosen = chosen
            self.post_message(self.Changed(chosen))

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.control.id == "filter-search":
            self.post_message(self.SearchRequested(event.value.strip()))
