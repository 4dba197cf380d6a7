"""A badge that says whether a recording verified as intact, unsealed or tampered."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

BADGE_TEXT = {
    "intact": "✔ intact",
    "unsealed": "… unsealed",
    "tampered": "✘ tampered",
}


class VerifyBadge(Static):
    """Shows `checking…` until `show(status)`; the status is also its CSS class."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("checking…", **kwargs)
        self.status: str | None = None

    def show(self, status: str, detail: str = "") -> None:
        self.status = status
        self.set_classes(status)
        self.update(BADGE_TEXT.get(status, status))
        self.tooltip = detail or None
