"""The recordings browser's model: one summary per file, the filters over them, and the statement search.

Pure functions (no textual). A summary is read from the header and, for a sealed file, the seal the trailer
points at -- two or three small reads, never the events. Counting statements, holds and denials, verifying
and searching do read the events; the browser runs them in workers, each bounded (file size, match count).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hoop_tui.widgets.recording_index import MarkScanner, Mask, Statement, no_mask
from recordings.errors import RecordingError
from recordings.layout import BLOCK_TRAILER, FRAMING_SIZE, TRAILER_BLOCK_SIZE, decode_framing
from recordings.reader import RecordingReader, read_header

RECORDING_SUFFIX = ".hrec"
STATS_BYTE_LIMIT = 256 << 20  # files larger than this are not counted or verified by the browser
SEARCH_MATCH_LIMIT = 200  # the search stops after this many matching statements...
SEARCH_BYTE_LIMIT = 2 << 30  # ...or after reading this many bytes of recordings
DECISIONS = ("any", "deny", "hold")


@dataclass
class RecordingSummary:
    """What the browser shows of one recording; the counts and the status arrive later (None until then)."""

    path: Path
    session_id: str = ""
    identity: str = ""
    connection: str = ""
    protocol: str = ""
    started_at: datetime.datetime | None = None
    duration_us: int | None = None
    sealed: bool = False
    statements: int | None = None
    holds: int | None = None
    denials: int | None = None
    verify_status: str | None = None
    problem: str = ""  # why the file could not be read, when it could not


@dataclass(frozen=True)
class RecordingStats:
    """The result of one full pass over a recording's events."""

    statements: int
    holds: int
    denials: int
    duration_us: int


@dataclass(frozen=True)
class RecordingFilter:
    """What the table shows: substring filters, an inclusive date range (UTC) and a decision filter."""

    identity: str = ""
    connection: str = ""
    since: datetime.date | None = None
    until: datetime.date | None = None
    decision: str = "any"  # one of DECISIONS: recordings with a denial / a hold only


@dataclass
class SearchHit:
    """A statement that matched the search, and where."""

    path: Path
    statement: Statement


@dataclass
class SearchOutcome:
    hits: list[SearchHit] = field(default_factory=list)
    complete: bool = True  # False when the match limit cut the search short


def identity_name(identity: object) -> str:
    """The header's identity as one string (it is a subject, or a map holding one)."""
    if isinstance(identity, dict):
        return str(identity.get("subject") or identity.get("sub") or "")
    return "" if identity is None else str(identity)


def parse_started(text: object) -> datetime.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        started = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return started if started.tzinfo else started.replace(tzinfo=datetime.UTC)


def has_trailer(path: Path) -> bool:
    """Whether the file ends in a trailer block (it was sealed), by reading its last few bytes."""
    with open(path, "rb") as stream:
        stream.seek(0, 2)
        if stream.tell() < TRAILER_BLOCK_SIZE:
            return False
        stream.seek(-TRAILER_BLOCK_SIZE, 2)
        try:
            return decode_framing(stream.read(FRAMING_SIZE))[0] == BLOCK_TRAILER
        except RecordingError:
            return False


def summarize(path: Path) -> RecordingSummary:
    """The summary of one file from its header (and its seal when sealed); a bad file gets a `problem`."""
    summary = RecordingSummary(path=path, session_id=path.stem)
    try:
        if has_trailer(path):
            with RecordingReader(path) as reader:
                header = reader.header
                summary.sealed = reader.sealed
                summary.duration_us = reader.duration_us if reader.sealed else None
        else:
            header = read_header(path)
    except (OSError, RecordingError) as error:
        summary.problem = str(error)
        summary.verify_status = "unreadable"
        return summary
    summary.session_id = str(header.get("session_id") or path.stem)
    summary.identity = identity_name(header.get("identity"))
    summary.connection = str(header.get("connection") or "")
    summary.protocol = str(header.get("protocol") or "")
    summary.started_at = parse_started(header.get("started_at"))
    return summary


def list_recordings(directory: Path) -> list[RecordingSummary]:
    """Every recording in `directory` (not its subdirectories), newest first."""
    paths = sorted(path for path in directory.glob(f"*{RECORDING_SUFFIX}") if path.is_file())
    summaries = [summarize(path) for path in paths]
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    summaries.sort(key=lambda summary: summary.started_at or oldest, reverse=True)
    return summaries


def count_marks(path: Path) -> RecordingStats | None:
    """Statements, holds and denials of one recording (None when it is over STATS_BYTE_LIMIT)."""
    if path.stat().st_size > STATS_BYTE_LIMIT:
        return None
    statements = holds = denials = 0
    with RecordingReader(path) as reader:
        scanner = MarkScanner(reader)
        while not scanner.done:
            marks = scanner.scan(64)
            statements += len(marks.statements)
            holds += len(marks.holds)
            denials += len(marks.denials)
        return RecordingStats(statements, holds, denials, reader.duration_us)


def matches(summary: RecordingSummary, chosen: RecordingFilter) -> bool:
    """Whether the table shows `summary` under `chosen` (a count not known yet does not match a decision)."""
    if chosen.identity and chosen.identity.casefold() not in summary.identity.casefold():
        return False
    if chosen.connection and chosen.connection.casefold() not in summary.connection.casefold():
        return False
    if chosen.since is not None or chosen.until is not None:
        if summary.started_at is None:
            return False
        day = summary.started_at.astimezone(datetime.UTC).date()
        if chosen.since is not None and day < chosen.since:
            return False
        if chosen.until is not None and day > chosen.until:
            return False
    if chosen.decision == "deny":
        return bool(summary.denials)
    if chosen.decision == "hold":
        return bool(summary.holds)
    return True


def parse_day(text: str) -> datetime.date | None:
    """`YYYY-MM-DD`, or None for an empty field; ValueError says what is accepted."""
    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        return datetime.date.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not a date: {cleaned!r} (use YYYY-MM-DD)") from None


def search_statements(
    paths: list[Path],
    needle: str,
    mask: Mask = no_mask,
    *,
    limit: int = SEARCH_MATCH_LIMIT,
    byte_limit: int = SEARCH_BYTE_LIMIT,
    cancelled: Callable[[], bool] = lambda: False,
) -> SearchOutcome:
    """Statements whose text (as this viewer sees it, after `mask`) contains `needle`, case-insensitively.

    Searching the masked text means a viewer cannot find a value they may not see. Stops after `limit`
    matches or `byte_limit` bytes of files, skips files over STATS_BYTE_LIMIT and unreadable ones, and
    checks `cancelled` between chunks.
    """
    outcome = SearchOutcome()
    folded = needle.casefold()
    if not folded:
        return outcome
    searched_bytes = 0
    for path in paths:
        try:
            searched_bytes += path.stat().st_size
        except OSError:
            continue
        if searched_bytes > byte_limit:
            outcome.complete = False
            return outcome
        for statement in _statements_of(path, mask, cancelled):
            if folded in statement.text.casefold():
                outcome.hits.append(SearchHit(path, statement))
                if len(outcome.hits) >= limit:
                    outcome.complete = False
                    return outcome
        if cancelled():
            outcome.complete = False
            return outcome
    return outcome


def _statements_of(path: Path, mask: Mask, cancelled: Callable[[], bool]) -> Iterator[Statement]:
    try:
        if path.stat().st_size > STATS_BYTE_LIMIT:
            return
        with RecordingReader(path) as reader:
            scanner = MarkScanner(reader, mask)
            while not scanner.done and not cancelled():
                yield from scanner.scan(16).statements
    except (OSError, RecordingError):
        return
