"""The recordings browser on a real directory of recordings: the table, filters, search, and the player."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Select

from hoop_tui.app import make_app, make_replay_app
from hoop_tui.screens.player import PlayerScreen
from hoop_tui.screens.recordings import RecordingsScreen
from hoop_tui.widgets.live_table import LiveTable
from hoop_tui.widgets.recording_catalog import list_recordings, search_statements, summarize
from proxy.control.api import ControlCalls
from tests.tui.conftest import SIZE, FrozenClock
from tests.tui.fake_control import FakeControl
from tests.tui.test_approvals_screen import until
from tests.tui.test_player_timeline import deny, hold, write

SECOND = 1_000_000


def base_header(session: str, identity: object, connection: str, protocol: str, started: str) -> dict:
    return {
        "session_id": session,
        "protocol": protocol,
        "connection": connection,
        "identity": identity,
        "started_at": started,
    }


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """Three sessions: alice-bot's with a denied DROP (January), ci-bot's with a held UPDATE (February), and
    ci-bot's shell on web1 (March); plus a file that is not a recording."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    write(
        folder / "sess-a.hrec",
        [
            [0, "pg.query", "SELECT name FROM customers WHERE email = 'bob@example.com'"],
            [1_000, "pg.complete", "SELECT 1"],
            deny(3 * SECOND, "DROP TABLE customers"),
            [3 * SECOND, "pg.query", "DROP TABLE customers"],
            [3 * SECOND + 10, "pg.error", {"S": "ERROR", "C": "42501", "M": "denied"}],
        ],
        base_header("sess-a", {"subject": "alice-bot"}, "appdb", "postgres", "2026-01-10T09:00:00Z"),
    )
    write(
        folder / "sess-b.hrec",
        [
            [0, "pg.query", "UPDATE orders SET status = 'paid'"],
            hold(10, "UPDATE orders SET status = 'paid'"),
            [4 * SECOND, "pg.complete", "UPDATE 1"],
            [5 * SECOND, "pg.query", "SELECT 2"],
        ],
        base_header("sess-b", "ci-bot", "reporting", "postgres", "2026-02-01T12:30:00Z"),
    )
    write(
        folder / "sess-c.hrec",
        [
            [0, "ssh.exec", "uptime"],
            [10, "ssh.output", "stdout", b"up 3 days\r\n"],
            [20, "ssh.exit", 0],
        ],
        base_header("sess-c", "ci-bot", "web1", "ssh", "2026-03-05T08:15:00Z"),
    )
    (folder / "notes.txt").write_text("not a recording")
    return folder


def browser(app: App) -> RecordingsScreen:
    screen = app.screen
    assert isinstance(screen, RecordingsScreen)
    return screen


def table_of(app: App) -> LiveTable:
    return browser(app).query_one("#recordings-table", LiveTable)


def column(app: App, name: str) -> list[str]:
    table = table_of(app)
    return [str(table.get_cell(row_key, name)) for row_key in table.rows]


async def opened(pilot: Pilot, app: App) -> RecordingsScreen:
    await until(pilot, lambda: isinstance(app.screen, RecordingsScreen))
    screen = browser(app)
    await until(pilot, lambda: len(screen.order) == 3)
    await until(pilot, lambda: all(s.verify_status for s in screen.summaries.values()))
    await pilot.pause()
    return screen


async def type_into(pilot: Pilot, app: App, field_id: str, text: str) -> None:
    field = browser(app).query_one(f"#{field_id}", Input)
    field.focus()
    field.value = ""
    if text:
        await pilot.press(*text)
    await pilot.pause()


def test_summaries_come_from_headers_and_seals_newest_first(directory: Path) -> None:
    summaries = list_recordings(directory)
    assert [summary.session_id for summary in summaries] == ["sess-c", "sess-b", "sess-a"]
    assert summaries[2].identity == "alice-bot" and summaries[2].sealed
    assert summaries[2].duration_us == 3 * SECOND + 10
    assert summaries[2].started_at == datetime.datetime(2026, 1, 10, 9, 0, tzinfo=datetime.UTC)
    assert summaries[2].statements is None, "counting is the background pass's job, not the listing's"


def test_an_unsealed_file_is_listed_from_its_header_alone(directory: Path) -> None:
    sealed = directory / "sess-b.hrec"
    cut = directory / "sess-cut.hrec"
    cut.write_bytes(sealed.read_bytes()[:-40])
    summary = summarize(cut)
    assert summary.connection == "reporting" and not summary.sealed and summary.duration_us is None
    broken = directory / "junk.hrec"
    broken.write_bytes(b"nonsense")
    assert summarize(broken).problem


async def test_table_lists_every_recording_with_counts_and_verification(directory: Path) -> None:
    app = make_replay_app(directory)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, app)
        assert column(app, "identity") == ["ci-bot", "ci-bot", "alice-bot"]
        assert column(app, "connection") == ["web1", "reporting", "appdb"]
        assert column(app, "protocol") == ["ssh", "postgres", "postgres"]
        assert column(app, "started (UTC)")[2] == "2026-01-10 09:00:00"
        assert column(app, "duration")[2] == "00:03.0"
        assert column(app, "statements") == ["1", "2", "2"]
        assert column(app, "deny/hold") == ["0/0", "0/1", "1/0"]
        assert column(app, "verify") == ["intact", "intact", "intact"]


async def test_filters_narrow_the_table(directory: Path) -> None:
    app = make_replay_app(directory)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, app)
        await type_into(pilot, app, "filter-identity", "ALICE")
        assert column(app, "identity") == ["alice-bot"]
        await type_into(pilot, app, "filter-identity", "")
        await type_into(pilot, app, "filter-connection", "web")
        assert column(app, "connection") == ["web1"]
        await type_into(pilot, app, "filter-connection", "")
        await type_into(pilot, app, "filter-since", "2026-02-01")
        assert column(app, "connection") == ["web1", "reporting"]
        await type_into(pilot, app, "filter-until", "2026-02-28")
        assert column(app, "connection") == ["reporting"]
        await type_into(pilot, app, "filter-until", "2026-13-01")
        until_field = browser(app).query_one("#filter-until", Input)
        assert until_field.has_class("-invalid"), "a bad date is flagged..."
        assert column(app, "connection") == ["web1", "reporting"], "...and does not narrow the table"
        await type_into(pilot, app, "filter-since", "")
        await type_into(pilot, app, "filter-until", "")
        decision = browser(app).query_one("#filter-decision", Select)
        decision.value = "deny"
        await pilot.pause()
        assert column(app, "connection") == ["appdb"]
        decision.value = "hold"
        await pilot.pause()
        assert column(app, "connection") == ["reporting"]
        decision.value = "any"
        await pilot.pause()
        assert len(column(app, "connection")) == 3


async def test_search_finds_a_statement_and_enter_opens_the_player_there(directory: Path) -> None:
    app = make_replay_app(directory)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        await pilot.press("slash")
        await pilot.press(*"drop table", "enter")
        await until(pilot, lambda: screen.search_hits is not None)
        await pilot.pause()
        assert column(app, "connection") == ["appdb"]
        assert "1 with a statement containing 'drop table'" in str(
            screen.query_one("#recordings-status").render()
        )
        table_of(app).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
        player = app.screen
        assert isinstance(player, PlayerScreen)
        await until(pilot, lambda: len(player.statements) == 2)
        assert player.position_us == 3 * SECOND and player.selected == 1
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RecordingsScreen))
        await type_into(pilot, app, "filter-search", "")
        await until(pilot, lambda: screen.search_hits is None)
        assert len(column(app, "connection")) == 3


async def test_search_sees_only_what_the_viewer_may_see(directory: Path) -> None:
    app = make_replay_app(directory, frozenset({"email"}))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        await pilot.press("slash", *"bob@example", "enter")
        await until(pilot, lambda: screen.search_hits is not None)
        assert screen.search_hits == {}, "a masked value cannot be found by searching for it"
        await type_into(pilot, app, "filter-search", "customers")
        await pilot.press("enter")
        await until(pilot, lambda: bool(screen.search_hits))
        assert column(app, "connection") == ["appdb"]


async def test_the_console_shows_recordings_on_3_when_it_knows_the_directory(directory: Path) -> None:
    async def signed_in() -> ControlCalls:
        return FakeControl()

    app = make_app(signed_in, clock=FrozenClock(), sessions_interval=60.0, recordings_dir=directory)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.is_screen_installed("recordings"))
        await pilot.press("3")
        await opened(pilot, app)
        assert len(column(app, "identity")) == 3
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RecordingsScreen))


def test_search_is_bounded_by_matches_and_bytes(directory: Path) -> None:
    paths = [summary.path for summary in list_recordings(directory)]
    everything = search_statements(paths, "select")
    assert everything.complete
    assert {hit.path.name for hit in everything.hits} == {"sess-a.hrec", "sess-b.hrec"}
    first_only = search_statements(paths, "select", limit=1)
    assert len(first_only.hits) == 1 and not first_only.complete
    smallest = min(path.stat().st_size for path in paths)
    cut_short = search_statements(paths, "select", byte_limit=smallest)
    assert not cut_short.complete and len(cut_short.hits) <= 1
