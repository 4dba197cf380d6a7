"""How one feed entry looks: rich Text lines, one per screen line, cut (never wrapped) by the feed widget.

Width-independent on purpose: an entry's height is its number of lines, so the feed can place 1,000
entries without measuring any of them against the terminal's width.
"""

from __future__ import annotations

from rich.text import Text

from hoop_tui.widgets.code_text import highlighted_lines, shown_line_count
from hoop_tui.widgets.feed_entries import COMMAND, END, ERROR, FeedEntry
from hoop_tui.widgets.formatting import clock_time, position

INDENT = " " * 9  # past the time column, under the badge
MAX_CODE_LINES = 8
MAX_COLUMN_WIDTH = 32

BADGES = {
    "allow": ("allow", "bold green"),
    "deny": ("DENY", "bold white on dark_red"),
    "review": ("REVIEW", "bold black on yellow"),
}
APPROVAL_MARKS = {
    "pending": ("⏸ held for review", "yellow"),
    "approved": ("✔ approved", "green"),
    "denied": ("✘ denied", "red"),
    "expired": ("✘ expired", "red"),
    "cancelled": ("✘ cancelled", "red"),
}


def _badge(decision: str | None) -> Text:
    label, style = BADGES.get(decision or "", (decision or "", "dim"))
    return Text(f"{label:^7}", style=style)


def _prefixed(prefix: Text, line: Text) -> Text:
    return Text.assemble(prefix, line)


def _approval_line(entry: FeedEntry) -> Text:
    label, style = APPROVAL_MARKS.get(entry.approval_state or "", (entry.approval_state or "", "dim"))
    line = Text(INDENT)
    line.append(label, style=f"bold {style}")
    line.append(f" (request {entry.approval_id})", style="dim")
    if entry.approval_state == "pending" and entry.expires_at:
        line.append(f", expires {clock_time(entry.expires_at)}", style="dim")
    if entry.approval_by:
        line.append(f" by {entry.approval_by}")
    if entry.approval_reason:
        line.append(f": {entry.approval_reason}")
    return line


def _row_lines(entry: FeedEntry) -> list[Text]:
    if not entry.columns and not entry.kept_rows:
        return []
    columns = entry.columns or [f"column {n + 1}" for n in range(len(entry.rows[0]))]
    widths = [min(len(name), MAX_COLUMN_WIDTH) for name in columns]
    for row in entry.rows:
        for index, value in enumerate(row[: len(widths)]):
            widths[index] = min(max(widths[index], len(value)), MAX_COLUMN_WIDTH)

    def cells(values: list[str]) -> str:
        shown = []
        for index, width in enumerate(widths):
            value = values[index] if index < len(values) else ""
            if len(value) > width:
                value = value[: width - 1] + "…"
            shown.append(value.ljust(width))
        return " │ ".join(shown).rstrip()

    lines = [Text(INDENT + cells(columns), style="bold underline")]
    lines.extend(Text(INDENT + cells(row)) for row in entry.rows)
    return lines


def _outcome_line(entry: FeedEntry) -> Text | None:
    parts: list[str] = []
    shown = entry.kept_rows
    if entry.total_rows > shown:
        parts.append(f"first {shown} of {entry.total_rows} rows")
    if entry.outcome:
        parts.append(entry.outcome)
    if not parts:
        return None
    return Text(INDENT + " · ".join(parts), style="bold red" if entry.failed else "dim")


def entry_lines(entry: FeedEntry) -> list[Text]:
    """The entry as it should read, top to bottom."""
    time = Text(f"{position(entry.t_us)} ", style="dim")
    if entry.kind == END:
        return [Text.assemble(time, Text(" END   ", style="bold reverse"), f" session ended: {entry.text}")]
    if entry.kind == ERROR:
        return [Text.assemble(time, Text(" ERROR ", style="bold white on dark_red"), " ", entry.text)]
    language = "shell" if entry.kind == COMMAND else "sql"
    code = highlighted_lines(entry.text or " ", language, MAX_CODE_LINES)
    lines = [Text.assemble(time, _badge(entry.decision), " ", code[0])]
    lines.extend(_prefixed(Text(INDENT), line) for line in code[1:])
    if entry.classification or entry.rule:
        detail = f"{entry.classification or '?'}" + (f" · rule: {entry.rule}" if entry.rule else "")
        lines.append(Text(INDENT + detail, style="italic dim"))
    if entry.approval_id:
        lines.append(_approval_line(entry))
    lines.extend(_row_lines(entry))
    outcome = _outcome_line(entry)
    if outcome is not None:
        lines.append(outcome)
    lines.extend(Text(INDENT + note, style="dim") for note in entry.notes)
    return lines


def entry_height(entry: FeedEntry) -> int:
    """`len(entry_lines(entry))` without building them: the feed places entries it has not drawn yet."""
    if entry.kind in (END, ERROR):
        return 1
    height = shown_line_count(entry.text or " ", MAX_CODE_LINES)
    height += 1 if entry.classification or entry.rule else 0
    height += 1 if entry.approval_id else 0
    height += 1 + entry.kept_rows if entry.columns or entry.kept_rows else 0
    height += 1 if entry.total_rows > entry.kept_rows or entry.outcome else 0
    return height + len(entry.notes)


def plain_lines(entry: FeedEntry) -> list[str]:
    """The entry's lines as plain text (what tests and searches read)."""
    return [line.plain for line in entry_lines(entry)]
