"""What the player needs from a recording without holding its events: statements, markers and results.

Pure functions over a `RecordingReader` (no textual): the mark scan walks the chunks in slices and keeps one
small tuple per statement (SQL, `ssh.exec`, or a typed input line) plus the times of holds, denials and idle
gaps; a statement's result is read on demand, capped, from the events after it.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import overload

from recordings import events as kinds
from recordings.pgwire import decode_datarows
from recordings.reader import RecordingReader
from recordings.terminal import DEFAULT_COLS, DEFAULT_ROWS, ScreenFrame, TerminalModel, apply_terminal_event

STATEMENT_KINDS = (kinds.PG_QUERY, kinds.PG_PARSE, kinds.SSH_EXEC)
RESULT_ROW_LIMIT = 500
RESULT_EVENT_LIMIT = 5_000  # a result is read from at most this many events: selecting stays instant
IDLE_GAP_US = 2_000_000  # a pause longer than this is "idle": skip-idle playback jumps over it
INPUT_LINE_LIMIT = 500  # a typed line longer than this is cut (a paste, not a command)
DENIED_STATES = ("denied", "expired")

Mask = Callable[[str], str]


def no_mask(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement or command: where it is in the file and what it said."""

    event_index: int
    t_us: int
    text: str


TEXT_BLOCK = 1024  # statement texts are frozen into tuples of this many


class StatementColumns(Sequence[Statement]):
    """Statements held as columns: two integer arrays, and the texts in tuples of TEXT_BLOCK strings.

    A million-event recording has ~200k statements. As objects, every full garbage collection walked them
    all (100+ ms pauses in the middle of scrubbing); even one list of 200k strings cost ~15 ms per
    collection. Arrays are not tracked by the collector, and it stops tracking a tuple of strings after its
    first look, so these columns cost it nothing. Items are built on access.
    """

    def __init__(self, statements: Iterable[Statement] = ()) -> None:
        self.event_indexes = array("q")
        self.times = array("q")
        self._text_blocks: list[tuple[str, ...]] = []
        self._text_tail: list[str] = []
        self.extend(statements)

    def append(self, event_index: int, t_us: int, text: str) -> None:
        self.event_indexes.append(event_index)
        self.times.append(t_us)
        self._text_tail.append(text)
        if len(self._text_tail) >= TEXT_BLOCK:
            self._text_blocks.append(tuple(self._text_tail))
            self._text_tail = []

    def extend(self, statements: Iterable[Statement]) -> None:
        if isinstance(statements, StatementColumns):
            for index in range(len(statements)):
                self.append(statements.event_indexes[index], statements.times[index], statements.text(index))
            return
        for statement in statements:
            self.append(statement.event_index, statement.t_us, statement.text)

    def text(self, index: int) -> str:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("statement index out of range")
        block, offset = divmod(index, TEXT_BLOCK)
        if block < len(self._text_blocks):
            return self._text_blocks[block][offset]
        return self._text_tail[offset]

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> Statement: ...
    @overload
    def __getitem__(self, index: slice) -> list[Statement]: ...
    def __getitem__(self, index: int | slice) -> Statement | list[Statement]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        text = self.text(index)  # raises IndexError first, which also ends iteration
        return Statement(self.event_indexes[index], self.times[index], text)


@dataclass
class Marks:
    """What one slice of the mark scan found, in recording order."""

    statements: StatementColumns = field(default_factory=StatementColumns)
    holds: list[int] = field(default_factory=list)  # t_us of each approval.requested
    denials: list[int] = field(default_factory=list)  # t_us of each deny decision (policy or approver)
    idle_gaps: list[tuple[int, int]] = field(default_factory=list)  # (last event before, first event after)
    terminal_output: bool = False  # the slice holds ssh.output: the player should show a terminal
    scanned_chunks: int = 0  # chunks scanned so far, this slice included
    total_chunks: int = 0

    def absorb(self, later: Marks) -> None:
        """Append the marks of the slice after this one (so several slices travel as one message)."""
        self.statements.extend(later.statements)
        self.holds.extend(later.holds)
        self.denials.extend(later.denials)
        self.idle_gaps.extend(later.idle_gaps)
        self.terminal_output = self.terminal_output or later.terminal_output
        self.scanned_chunks = later.scanned_chunks
        self.total_chunks = later.total_chunks


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class MarkScanner:
    """Scans a recording's chunks a slice at a time, carrying what spans a chunk boundary (the line being
    typed, the time of the last event) so slices join up exactly as one full pass would."""

    def __init__(self, reader: RecordingReader, mask: Mask = no_mask, idle_gap_us: int = IDLE_GAP_US) -> None:
        self.reader = reader
        self.mask = mask
        self.idle_gap_us = idle_gap_us
        self.next_chunk = 0
        self._event_index = 0
        self._last_t: int | None = None
        self._typed: list[str] = []

    @property
    def done(self) -> bool:
        return self.next_chunk >= len(self.reader.chunks)

    def scan(self, chunk_budget: int) -> Marks:
        """The marks of the next `chunk_budget` chunks (an empty, final slice when done)."""
        marks = Marks(total_chunks=len(self.reader.chunks))
        end = min(self.next_chunk + max(chunk_budget, 1), len(self.reader.chunks))
        for chunk in range(self.next_chunk, end):
            for event in self.reader.chunk_events(chunk):
                self._note(event, marks)
                self._event_index += 1
        self.next_chunk = end
        marks.scanned_chunks = end
        return marks

    def _note(self, event: list, marks: Marks) -> None:
        t_us = int(event[0])
        kind = event[1]
        if kind == kinds.SCREEN_KEYFRAME:
            return  # written by the writer, not by the session: neither activity nor a statement
        if self._last_t is not None and t_us - self._last_t > self.idle_gap_us:
            marks.idle_gaps.append((self._last_t, t_us))
        self._last_t = t_us
        if kind in STATEMENT_KINDS:
            text = kinds.statement_text(event)
            marks.statements.append(self._event_index, t_us, self.mask(_text(text)))
        elif kind == kinds.SSH_INPUT:
            self._typed_input(event, t_us, marks)
        elif kind == kinds.SSH_OUTPUT:
            marks.terminal_output = True
        elif kind == kinds.APPROVAL_REQUESTED:
            marks.holds.append(t_us)
        elif kind == kinds.POLICY_DECISION:
            decision = kinds.event_field(event, 0)
            if isinstance(decision, dict) and decision.get("decision") == "deny":
                marks.denials.append(t_us)
        elif kind == kinds.APPROVAL_DECIDED:
            decided = kinds.event_field(event, 0)
            if isinstance(decided, dict) and decided.get("state") in DENIED_STATES:
                marks.denials.append(t_us)

    def _typed_input(self, event: list, t_us: int, marks: Marks) -> None:
        """Keystrokes become a statement when Enter is pressed (backspace edits the line being typed)."""
        data = kinds.event_field(event, 0, b"")
        for char in _text(data) if isinstance(data, (bytes, str)) else "":
            if char in "\r\n":
                line = "".join(self._typed).strip()
                self._typed.clear()
                if line:
                    marks.statements.append(self._event_index, t_us, self.mask(line))
            elif char in "\x7f\b":
                if self._typed:
                    self._typed.pop()
            elif char.isprintable() and len(self._typed) < INPUT_LINE_LIMIT:
                self._typed.append(char)


def index_statements(reader: RecordingReader, mask: Mask = no_mask) -> list[Statement]:
    """Every statement of the recording in order (text through `mask`); one pass, events are not kept."""
    scanner = MarkScanner(reader, mask)
    statements: list[Statement] = []
    while not scanner.done:
        statements.extend(scanner.scan(64).statements)
    return statements


@dataclass
class StatementResult:
    """The (capped) result of one statement: column names, decoded rows, and how it ended."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    outcome: str = ""


def _cell(value: bytes | None, mask: Mask) -> str:
    return "NULL" if value is None else mask(value.decode("utf-8", "replace"))


def _error_text(fields: dict) -> str:
    code = fields.get("C", "")
    message = fields.get("M", "")
    return f"ERROR {code}: {message}".strip()


def read_result(
    reader: RecordingReader, start_index: int, end_index: int, mask: Mask = no_mask
) -> StatementResult:
    """The result of the statement at event `start_index`, reading events up to `end_index` (exclusive);
    every cell and message goes through `mask`. Reads at most RESULT_EVENT_LIMIT events."""
    result = StatementResult()
    last = min(end_index, reader.event_count, start_index + 1 + RESULT_EVENT_LIMIT)
    for index in range(start_index + 1, last):
        event = reader.event_at(index)
        kind = event[1]
        if kind in STATEMENT_KINDS:
            break  # the next statement starts here (the scan may not have reached it yet)
        if kind == kinds.PG_ROWDESC:
            result.columns = [str(name) for name in event[2]]
        elif kind == kinds.PG_ROWS:
            result.total_rows += int(event[2])
            room = RESULT_ROW_LIMIT - len(result.rows)
            if room > 0:
                decoded = decode_datarows(event[3])[:room]
                result.rows.extend([_cell(value, mask) for value in row] for row in decoded)
        elif kind == kinds.PG_COMPLETE:
            result.outcome = str(event[2])
        elif kind == kinds.PG_ERROR:
            result.outcome = mask(_error_text(event[2]))
        elif kind == kinds.APPROVAL_DECIDED and isinstance(event[2], dict):
            decided = event[2]
            reason = decided.get("reason") or ""
            result.outcome = mask(f"{decided.get('state')} by {decided.get('decider')}: {reason}")
        elif kind == kinds.SSH_EXIT:
            result.outcome = f"exit {event[2]}"
    return result


REPLAY_CHECKPOINT_EVENTS = 5_000  # a replay without keyframes saves its screen this often


class TerminalReplay:
    """The terminal screen at any instant of a recording with terminal output.

    A terminal recording (keyframes in every chunk) asks the reader, O(chunk). A recording without keyframes
    (e.g. an exec session whose output was recorded but not marked terminal) is replayed into one model that
    moves forward with the playhead; on the way it saves a keyframe every REPLAY_CHECKPOINT_EVENTS events,
    so moving back restarts from the nearest one instead of from the beginning.
    """

    def __init__(self, reader: RecordingReader) -> None:
        self.reader = reader
        self._model: TerminalModel | None = None
        self._next_event = 0
        self._model_t = -1
        # (time of the last event applied, index of the next event, keyframe), in replay order.
        self._checkpoints: list[tuple[int, int, dict]] = []

    def screen_at(self, t_us: int) -> ScreenFrame:
        if self.reader.terminal:
            return self.reader.screen_at(t_us)
        if self._model is None or t_us < self._model_t:
            self._restart_before(t_us)
        assert self._model is not None
        total = self.reader.event_count
        while self._next_event < total:
            event = self.reader.event_at(self._next_event)
            if event[0] > t_us:
                break
            apply_terminal_event(self._model, event)
            self._next_event += 1
            if self._next_event % REPLAY_CHECKPOINT_EVENTS == 0 and (
                not self._checkpoints or self._checkpoints[-1][1] < self._next_event
            ):
                self._checkpoints.append((int(event[0]), self._next_event, self._model.keyframe()))
        self._model_t = t_us
        return self._model.frame()

    def _restart_before(self, t_us: int) -> None:
        """Put the model at the last checkpoint at or before `t_us` (or at the start)."""
        usable = [checkpoint for checkpoint in self._checkpoints if checkpoint[0] <= t_us]
        if usable:
            _, next_event, keyframe = usable[-1]
            self._model = TerminalModel.from_keyframe(keyframe)
            self._next_event = next_event
            return
        cols, rows = self.reader.header.get("terminal_size") or (DEFAULT_COLS, DEFAULT_ROWS)
        self._model = TerminalModel(int(cols), int(rows))
        self._next_event = 0
