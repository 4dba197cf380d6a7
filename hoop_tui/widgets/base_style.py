"""A widget's own Rich style kept between paints (Textual recomputes `rich_style` up the tree per call)."""

from __future__ import annotations

from typing import Any

from rich.style import Style


class CachedBaseStyle:
    """Mixin for Line-API widgets: they read `base_style` once per line, recomputed only after a style change.

    Deliberately not a Widget subclass: Textual follows a widget's first DOM base class to collect default
    CSS, and a Widget-derived mixin placed first would hide the real base's (ScrollView's overflow rules).
    """

    _base_style: Style | None = None

    @property
    def base_style(self) -> Style:
        if self._base_style is None:
            self._base_style = self.rich_style  # type: ignore[attr-defined]
        return self._base_style

    def notify_style_update(self) -> None:
        self._base_style = None
        parent: Any = super()
        parent.notify_style_update()
