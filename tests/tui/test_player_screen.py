"""The player on real recording files: statements, result rows, seek, speed, play, and the verify badge."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual.app import App
from textual.pilot import Pilot

from hoop_tui.app import make_replay_app
from hoop_tui.screens.player import PlayerScreen
from hoop_tui.widgets.result_rows import ResultRows
from hoop_tui.widgets.statement_list import StatementList
from hoop_tui.widgets.verify_badge import VerifyBadge
from recordings.pgwire import encode_datarow
from recordings.writer import RecordingWriter
from tests.tui.conftest import SIZE
from tests.tui.test_approvals_screen import until

SECOND = 1_000_000


def session_events() -> list[list]:
    """Four statements at 0 s, 2 s, 8 s and 20 s: two with rows, one write, one error."""
    names = encode_datarow([b"1", b"alice"]) + encode_datarow([b"2", None])
    return [
        [0, "pg.query", "SELECT id, name FROM victims"],
        [1_000, "pg.rowdesc", ["id", "name"], [23, 25]],
        [2_000, "pg.rows", 2, names],
        [3_000, "pg.complete", "SELECT 2"],
        [2 * SECOND, "pg.query", "UPDATE victims SET name = 'x'"],
        [2 * SECOND + 500, "pg.complete", "UPDATE 2"],
        [8 * SECOND, "pg.query", "SELECT count(*) FROM victims"],
        [8 * SECOND + 10, "pg.rowdesc", ["count"], [20]],
        [8 * SECOND + 20, "pg.rows", 1, encode_datarow([b"2"])],
        [8 * SECOND + 30, "pg.complete", "SELECT 1"],
        [20 * SECOND, "pg.query", "SELECT nope"],
        [20 * SECOND + 10, "pg.error", {"S": "ERROR", "C": "42703", "M": 'column "nope" does not exist'}],
    ]


HEADER = {"session_id": "sess-1", "protocol": "postgres", "connection": "appdb", "identity": "ci-bot"}


def write(path: Path) -> Path:
    writer = RecordingWriter(path, HEADER, Ed25519PrivateKey.generate(), durability="none")
    writer.start()
    for event in session_events():
        writer.append(event)
    writer.close()
    assert writer.error is None, writer.error
    return path


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write(tmp_path / "session.hoop")


def player(app: App) -> PlayerScreen:
    screen = app.screen
    assert isinstance(screen, PlayerScreen)
    return screen


async def opened(pilot: Pilot, app: App) -> PlayerScreen:
    await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
    await until(pilot, lambda: bool(player(app).statements) and player(app).query_one(VerifyBadge).status)
    return player(app)


async def test_statements_listed_with_rows_of_the_selected_one_and_intact_badge(recording: Path) -> None:
    app = make_replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        statements = screen.query_one(StatementList)
        assert statements.row_count == 4
        assert statements.statements[0].text == "SELECT id, name FROM victims"
        assert screen.query_one(VerifyBadge).status == "intact"
        await pilot.pause()
        drawn = [statements.render_line(y).text for y in range(5)]
        assert "00:00.0" in drawn[0] and "SELECT id, name FROM victims" in drawn[0]
        assert "00:20.0" in drawn[3] and drawn[4].strip() == ""
        rows = screen.query_one(ResultRows)
        assert rows.result.rows == [["1", "alice"], ["2", "NULL"]] and rows.result.outcome == "SELECT 2"
        assert "alice" in rows.render_line(1).text, "columns widen to their content once drawn"
        await pilot.press("n")
        assert screen.selected == 1 and rows.result.rows == [] and rows.result.outcome == "UPDATE 2"
        await pilot.press("n", "n")
        assert screen.selected == 3 and rows.result.outcome.startswith("ERROR 42703")
        await pilot.press("n")
        assert screen.selected == 3, "next stops at the last statement"
        await pilot.press("p")
        assert screen.selected == 2 and rows.result.rows == [["2"]]
        assert screen.position_us == 8 * SECOND


async def test_seek_moves_the_clock_five_seconds_and_selects_the_statement_there(recording: Path) -> None:
    app = make_replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        await pilot.press("right")
        assert screen.position_us == 5 * SECOND and screen.selected == 1
        await pilot.press("right")
        assert screen.position_us == 10 * SECOND and screen.selected == 2
        await pilot.press("left", "left", "left")
        assert screen.position_us == 0 and screen.selected == 0


async def test_playback_advances_at_the_chosen_speed_and_follows_statements(recording: Path) -> None:
    app = make_replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        await pilot.press("plus", "plus")
        assert screen.speed == 4.0
        await pilot.press("minus")
        assert screen.speed == 2.0
        await pilot.press("space")
        assert screen.playing
        screen.position_us = 0  # the real timer runs too; drive the clock by hand for exact figures
        screen.advance(1.5)  # 1.5 s of wall time at 2x: 3 s into the recording
        assert screen.position_us >= 3 * SECOND and screen.selected == 1
        screen.advance(60)
        assert screen.position_us == screen.duration_us and not screen.playing
        assert screen.selected == 3


async def test_unsealed_recording_gets_the_unsealed_badge(tmp_path: Path) -> None:
    sealed = write(tmp_path / "whole.hoop")
    data = sealed.read_bytes()
    cut = tmp_path / "cut.hoop"
    cut.write_bytes(data[: len(data) - 40])  # drop the seal and trailer: a crash before the close
    app = make_replay_app(cut)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
        await until(pilot, lambda: player(app).query_one(VerifyBadge).status is not None)
        assert player(app).query_one(VerifyBadge).status == "unsealed"


async def test_tampered_recording_gets_the_tampered_badge(tmp_path: Path) -> None:
    path = write(tmp_path / "session.hoop")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    app = make_replay_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
        await until(pilot, lambda: player(app).query_one(VerifyBadge).status is not None)
        assert player(app).query_one(VerifyBadge).status == "tampered"


async def test_render_time_masking_hides_what_this_viewer_may_not_see(tmp_path: Path) -> None:
    path = tmp_path / "emails.hoop"
    writer = RecordingWriter(path, HEADER, Ed25519PrivateKey.generate(), durability="none")
    writer.start()
    writer.append([0, "pg.query", "SELECT email FROM customers WHERE email = 'bob@example.com'"])
    writer.append([10, "pg.rowdesc", ["email"], [25]])
    writer.append([20, "pg.rows", 1, encode_datarow([b"carol@example.org"])])
    writer.append([30, "pg.complete", "SELECT 1"])
    writer.close()
    app = make_replay_app(path, frozenset({"email"}))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        assert "bob@example.com" not in screen.statements[0].text
        assert screen.query_one(ResultRows).result.rows == [["[EMAIL]"]]


async def test_arrow_keys_on_the_statement_list_select_statements(recording: Path) -> None:
    app = make_replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app)
        screen.query_one(StatementList).focus()
        await pilot.press("down")
        assert screen.selected == 1 and screen.position_us == 2 * SECOND
        await pilot.press("end")
        assert screen.selected == 3
        await pilot.press("home")
        assert screen.selected == 0 and screen.query_one(ResultRows).result.outcome == "SELECT 2"
