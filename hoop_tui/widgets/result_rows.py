"""The result rows of the selected statement, and a line that says how it ended."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from hoop_tui.widgets.live_table import LiveTable
from hoop_tui.widgets.recording_index import StatementResult


class ResultRows(LiveTable):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(zebra_stripes=True, **kwargs)
        self.result = StatementResult()

    def show(self, result: StatementResult) -> None:
        self.result = result
        self.clear(columns=True)
        # Escaped: a DataTable reads str cells as markup, and recorded values are anyone's text ("[/]").
        if result.columns:
            self.add_columns(*(escape(str(column)) for column in result.columns))
        elif result.rows:
            self.add_columns(*(f"column {n + 1}" for n in range(len(result.rows[0]))))
        self.add_rows([[escape(str(cell)) for cell in row] for row in result.rows])
        shown = len(result.rows)
        more = f" (first {shown} of {result.total_rows})" if result.total_rows > shown else ""
        self.border_title = f"{result.outcome or 'no result'}{more}"
