"""Colours and styles of terminal cells: pyte's attribute values as rich Styles, cached."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.color import Color, ColorParseError
from rich.style import Style

# pyte's attributes of a run of cells: fg, bg, bold, italics, underscore, strikethrough, reverse.
Attributes = tuple[str, str, bool, bool, bool, bool, bool]

# pyte's names that rich spells differently.
_PYTE_NAMES = {"brown": "yellow", "brightbrown": "bright_yellow"}


@lru_cache(maxsize=512)
def pyte_color(name: str) -> Color | None:
    """pyte names a colour ("red", "brightred", "brown") or gives 6 hex digits (256- and true-colour)."""
    if name == "default":
        return None
    name = _PYTE_NAMES.get(name, name)
    if len(name) == 6 and all(char in "0123456789abcdefABCDEF" for char in name):
        name = f"#{name}"
    elif name.startswith("bright") and not name.startswith("bright_"):
        name = f"bright_{name[6:]}"
    try:
        return Color.parse(name)
    except ColorParseError:
        return None


def cell_attributes(char: Any) -> Attributes:
    """A pyte cell's attributes, in `Attributes` order."""
    return (char.fg, char.bg, char.bold, char.italics, char.underscore, char.strikethrough, char.reverse)


@lru_cache(maxsize=1024)
def attributes_style(attributes: Attributes) -> Style:
    fg, bg, bold, italics, underscore, strikethrough, reverse = attributes
    return Style(
        color=pyte_color(fg),
        bgcolor=pyte_color(bg),
        bold=bold or None,
        italic=italics or None,
        underline=underscore or None,
        strike=strikethrough or None,
        reverse=reverse or None,
    )
