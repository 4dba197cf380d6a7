"""The DataTable every console table derives from: it redraws when its column widths grow.

Textual 8.2.8's DataTable measures new rows' widths when idle, but keeps lines it drew before that in its
cache, keyed without the widths; a table filled while on screen kept a header cut to the labels' width.
"""

from __future__ import annotations

from textual.widgets import DataTable


class LiveTable(DataTable[str]):
    _drawn_widths: tuple[int, ...] = ()

    def on_idle(self) -> None:
        widths = tuple(column.get_render_width(self) for column in self.columns.values())
        if widths != self._drawn_widths:
            self._drawn_widths = widths
            self._clear_caches()  # private, but the only way to drop lines drawn at the old widths
            self.refresh()
