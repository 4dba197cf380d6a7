"""The player's timeline: markers, scrubbing with keys and clicks, go-to-time, skip idle, statement steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from hoop_tui.screens.player import PlayerScreen
from hoop_tui.widgets.go_to_time import GoToTime
from hoop_tui.widgets.playback_clock import IDLE_LEAD_US, parse_time
from hoop_tui.widgets.recording_index import MarkScanner, Mask, index_statements, no_mask
from hoop_tui.widgets.result_rows import ResultRows
from hoop_tui.widgets.statement_list import StatementList
from hoop_tui.widgets.timeline import MARK_DENIAL, MARK_HOLD, MARK_NONE, MARK_STATEMENT, Timeline
from recordings.reader import RecordingReader
from recordings.writer import RecordingWriter
from tests.tui.conftest import SIZE
from tests.tui.test_approvals_screen import until

SECOND = 1_000_000
HEADER = {"session_id": "sess-t", "protocol": "postgres", "connection": "appdb", "identity": "ci-bot"}


def deny(t_us: int, sql: str) -> list:
    decision = {"statement": sql, "kind": "drop", "decision": "deny", "rule": "r", "flags": []}
    return [t_us, "policy.decision", decision]


def hold(t_us: int, sql: str) -> list:
    request = {"id": "req-1", "statement": sql, "kind": "write", "rule": "r", "requester": "ci-bot"}
    return [t_us, "approval.requested", request]


def timeline_events() -> list[list]:
    """Statements at 0, 2, 8 (held), 20 (denied) and 50 s; nothing happens between 20 s and 50 s."""
    return [
        [0, "pg.query", "SELECT 1"],
        [100, "pg.complete", "SELECT 1"],
        [2 * SECOND, "pg.query", "SELECT 2"],
        [2 * SECOND + 100, "pg.complete", "SELECT 1"],
        [8 * SECOND, "pg.query", "UPDATE t SET x = 1"],
        hold(8 * SECOND + 10, "UPDATE t SET x = 1"),
        [9 * SECOND, "pg.complete", "UPDATE 1"],
        deny(20 * SECOND, "DROP TABLE t"),
        [20 * SECOND, "pg.query", "DROP TABLE t"],
        [20 * SECOND + 10, "pg.error", {"S": "ERROR", "C": "42501", "M": "denied by policy"}],
        [50 * SECOND, "pg.query", "SELECT 3"],
        [50 * SECOND + 100, "pg.complete", "SELECT 1"],
    ]


def write(path: Path, events: list[list], header: dict | None = None, **options: object) -> Path:
    writer = RecordingWriter(
        path, header or HEADER, Ed25519PrivateKey.generate(), durability="none", **options
    )
    writer.start()
    for event in events:
        writer.append(list(event))
    writer.close()
    assert writer.error is None, writer.error
    return path


class PlayerHarness(App[None]):
    """The player alone, with no playback timer: the tests move the clock themselves."""

    def __init__(self, recording: Path, mask: Mask = no_mask) -> None:
        super().__init__()
        self.recording = recording
        self.mask = mask

    def compose(self) -> ComposeResult:
        yield Static("under the player")

    def on_mount(self) -> None:
        self.push_screen(PlayerScreen(self.recording, autoplay_timer=False, mask=self.mask))


async def opened(pilot: Pilot, app: App, statements: int) -> PlayerScreen:
    await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
    screen = app.screen
    assert isinstance(screen, PlayerScreen)
    await until(pilot, lambda: len(screen.statements) == statements and screen.scan_progress == 1.0)
    await pilot.pause()
    return screen


def status(screen: PlayerScreen) -> str:
    return str(screen.query_one("#player-status", Static).render())


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write(tmp_path / "timeline.hrec", timeline_events())


async def test_timeline_marks_statements_holds_and_denials_where_they_happen(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        timeline = screen.query_one(Timeline)
        width = timeline.size.width
        kinds = timeline.marker_kinds(width)
        assert kinds[timeline.column_of(0, width)] == MARK_STATEMENT
        assert kinds[timeline.column_of(8 * SECOND, width)] == MARK_HOLD
        assert kinds[timeline.column_of(20 * SECOND, width)] == MARK_DENIAL
        assert kinds[timeline.column_of(35 * SECOND, width)] == MARK_NONE
        drawn = timeline.render_line(0).text
        assert drawn.count("◆") == 1 and drawn.count("▼") == 1 and drawn.count("╷") == 3


async def test_scrubbing_with_keys_moves_the_playhead_the_label_and_the_selection(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        timeline = screen.query_one(Timeline)
        assert timeline.painted_position_us == 0 and "00:00.0 / 00:50.0" in status(screen)
        await pilot.press("right", "right")
        await pilot.pause()
        assert screen.position_us == 10 * SECOND and timeline.painted_position_us == 10 * SECOND
        assert "00:10.0 / 00:50.0" in status(screen)
        assert screen.selected == 2, "the statement at 8 s is the one playing at 10 s"
        assert screen.query_one(ResultRows).result.outcome == "UPDATE 1"
        track = timeline.render_line(1).text
        assert track.index("●") == timeline.column_of(10 * SECOND, timeline.size.width)
        await pilot.press("left")
        await pilot.pause()
        assert screen.position_us == 5 * SECOND and screen.selected == 1


async def test_a_click_on_the_timeline_seeks_there(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        timeline = screen.query_one(Timeline)
        column = timeline.column_of(20 * SECOND, timeline.size.width) + 1  # the column just after the denial
        await pilot.click(Timeline, offset=(column, 1))
        await pilot.pause()
        assert timeline.column_of(screen.position_us, timeline.size.width) == column
        assert 20 * SECOND < screen.position_us < 22 * SECOND
        assert screen.selected == 3 and screen.query_one(ResultRows).result.outcome.startswith("ERROR 42501")


async def test_go_to_time_jumps_and_bad_input_is_refused(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        await pilot.press("g")
        field = screen.query_one(GoToTime)
        assert field.display and field.has_focus
        await pilot.press(*"0:21", "enter")
        await pilot.pause()
        assert screen.position_us == 21 * SECOND and screen.selected == 3 and not field.display
        await pilot.press("g", *"soon", "enter")
        await pilot.pause()
        assert field.display and field.has_class("-invalid") and screen.position_us == 21 * SECOND
        await pilot.press("escape")
        assert not field.display
        await pilot.press("g", *"2.5", "enter")
        await pilot.pause()
        assert screen.position_us == 2_500_000 and screen.selected == 1


async def test_next_and_previous_statement_move_selection_and_playhead(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        await pilot.press("n", "n")
        assert screen.selected == 2 and screen.position_us == 8 * SECOND
        assert screen.query_one(StatementList).cursor_row == 2
        assert screen.query_one(Timeline).position_us == 8 * SECOND
        await pilot.press("p")
        assert screen.selected == 1 and screen.position_us == 2 * SECOND


async def test_skip_idle_jumps_over_long_pauses_while_playing(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        screen.seek_to(21 * SECOND)
        await pilot.press("space")
        screen.advance(0.5)
        assert screen.position_us == 21 * SECOND + 500_000, "without skip idle the pause plays out"
        await pilot.press("i")
        assert "skip idle" in status(screen)
        screen.advance(0.5)
        assert screen.position_us == 50 * SECOND - IDLE_LEAD_US
        screen.advance(0.5)
        assert screen.position_us == screen.duration_us and screen.selected == 4 and not screen.playing


async def test_speed_runs_from_half_to_sixteen(recording: Path) -> None:
    app = PlayerHarness(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 5)
        await pilot.press(*["plus"] * 6)
        assert screen.speed == 16.0
        await pilot.press(*["minus"] * 8)
        assert screen.speed == 0.5 and "speed 0.5x" in status(screen)
        await pilot.press("space")
        screen.advance(2.0)
        assert screen.position_us == SECOND


async def test_left_and_right_seek_even_when_a_long_statement_list_has_the_focus(tmp_path: Path) -> None:
    events = [
        [n * 100_000, "pg.query", f"SELECT {n}, 'a rather long statement text to fill the line'"]
        for n in range(300)
    ]
    app = PlayerHarness(write(tmp_path / "long.hrec", events))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 300)
        statements = screen.query_one(StatementList)
        statements.focus()
        await pilot.press("down", "right")
        assert screen.position_us == 100_000 + 5 * SECOND and statements.scroll_offset.x == 0
        await pilot.press("left")
        assert screen.position_us == 100_000


def test_slices_of_the_mark_scan_join_up_to_one_full_pass(tmp_path: Path) -> None:
    events: list[list] = []
    for number in range(300):
        t_us = number * 300_000 + (5 * SECOND if number == 150 else 0)
        events.append([t_us, "pg.query", f"SELECT {number}"])
        if number % 50 == 7:
            events.append(hold(t_us + 1, f"SELECT {number}"))
        if number % 60 == 11:
            events.append(deny(t_us + 2, f"SELECT {number}"))
    path = write(tmp_path / "many.hrec", events, chunk_max_bytes=256)
    with RecordingReader(path) as reader:
        assert len(reader.chunks) > 20, "small chunks, so slices cut between them"
        scanner = MarkScanner(reader)
        slices = []
        while not scanner.done:
            slices.append(scanner.scan(3))
        statements = [statement for part in slices for statement in part.statements]
        assert statements == index_statements(reader)
        assert [s.text for s in statements] == [f"SELECT {n}" for n in range(300)]
        assert sum(len(part.holds) for part in slices) == 6
        assert sum(len(part.denials) for part in slices) == 5
        gaps = [gap for part in slices for gap in part.idle_gaps]
        assert gaps == [(149 * 300_000, 150 * 300_000 + 5 * SECOND)]
        assert slices[-1].scanned_chunks == slices[-1].total_chunks == len(reader.chunks)


async def test_markers_and_statements_arrive_in_slices_on_a_many_chunk_recording(tmp_path: Path) -> None:
    events = [[n * 10_000, "pg.query", f"SELECT {n}"] for n in range(2_000)]
    path = write(tmp_path / "big.hrec", events, chunk_max_bytes=512)
    app = PlayerHarness(path)
    messages: list[int] = []

    def count_slices(message: object) -> None:
        if type(message).__name__ == "RecordingMarksFound":
            messages.append(1)

    async with app.run_test(size=SIZE, message_hook=count_slices) as pilot:
        screen = await opened(pilot, app, 2_000)
        assert len(messages) > 1, "the scan reports in slices, not once at the end"
        assert len(screen.query_one(Timeline).statement_times) == 2_000
        assert screen.query_one(StatementList).row_count == 2_000
        assert "indexing" not in status(screen)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:05", 65 * SECOND),
        ("01:02:03", 3723 * SECOND),
        ("90", 90 * SECOND),
        ("0.25", 250_000),
        ("75:00", 4500 * SECOND),
    ],
)
def test_parse_time_accepts_clock_times_and_seconds(text: str, expected: int) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-3", "1:60", "1:2:3:4", "nan", "inf"])
def test_parse_time_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text)
