"""The player on SSH recordings: the terminal screen at the playhead, and stepping between commands."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from hoop_tui.widgets.recording_index import REPLAY_CHECKPOINT_EVENTS, TerminalReplay
from hoop_tui.widgets.statement_list import StatementList
from hoop_tui.widgets.terminal_frame import TerminalFrame
from hoop_tui.widgets.timeline import MARK_DENIAL, Timeline
from recordings.reader import RecordingReader
from tests.tui.conftest import SIZE
from tests.tui.test_player_timeline import PlayerHarness, deny, opened, write

SECOND = 1_000_000
SSH_HEADER = {
    "session_id": "sess-ssh",
    "protocol": "ssh",
    "connection": "web1",
    "identity": "ci-bot",
    "terminal_size": [60, 10],
}


def shell_session() -> list[list]:
    """A shell: `ls` typed at 1 s (a typo fixed by backspace), `cat notes` at 6 s, a denied `rm` at 12 s."""
    return [
        [0, "ssh.output", "stdout", b"web1$ "],
        [1 * SECOND, "ssh.input", b"lz\x7fs"],
        [1 * SECOND + 10, "ssh.input", b"\r"],
        [1 * SECOND + 20, "ssh.output", "stdout", b"ls\r\nfile1  file2\r\nweb1$ "],
        [6 * SECOND, "ssh.input", b"cat notes\r"],
        [6 * SECOND + 20, "ssh.output", "stdout", b"cat notes\r\nthe secret plan\r\nweb1$ "],
        deny(12 * SECOND, "rm -rf /"),
        [12 * SECOND, "ssh.exec", "rm -rf /"],
        [12 * SECOND + 10, "ssh.output", "stderr", b"\r\nhoop: denied\r\nweb1$ "],
    ]


def terminal_of(app: App) -> TerminalFrame:
    return app.screen.query_one(TerminalFrame)


async def check_screens_follow_the_playhead(app: PlayerHarness) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 3)
        assert screen.terminal and terminal_of(app).display
        assert [s.text for s in screen.statements] == ["ls", "cat notes", "rm -rf /"]
        assert terminal_of(app).text == "web1$" and screen.selected == 0
        screen.seek_to(2 * SECOND)
        assert "file1  file2" in terminal_of(app).text and "secret" not in terminal_of(app).text
        await pilot.press("right")
        await pilot.pause()
        assert screen.position_us == 7 * SECOND and screen.selected == 1
        assert "the secret plan" in terminal_of(app).text
        await pilot.press("left")
        await pilot.pause()
        assert "secret" not in terminal_of(app).text, "moving back shows the earlier screen"
        await pilot.press("p")
        assert screen.selected == 0 and screen.position_us == 1 * SECOND + 10
        await pilot.press("n", "n")
        await pilot.pause()
        assert screen.selected == 2 and screen.query_one(StatementList).cursor_row == 2
        assert "hoop: denied" not in terminal_of(app).text, "at the command, its output has not come yet"
        screen.seek_to(12 * SECOND + 10)
        assert "hoop: denied" in terminal_of(app).text
        timeline = screen.query_one(Timeline)
        width = timeline.size.width
        assert timeline.marker_kinds(width)[timeline.column_of(12 * SECOND, width)] == MARK_DENIAL


async def test_terminal_recording_shows_the_screen_at_the_playhead(tmp_path: Path) -> None:
    path = write(tmp_path / "shell.hrec", shell_session(), SSH_HEADER, terminal=True, chunk_max_bytes=64)
    await check_screens_follow_the_playhead(PlayerHarness(path))


async def test_output_without_keyframes_is_replayed_from_the_start(tmp_path: Path) -> None:
    path = write(tmp_path / "exec.hrec", shell_session(), SSH_HEADER, terminal=False)
    await check_screens_follow_the_playhead(PlayerHarness(path))


async def test_the_viewer_mask_applies_to_the_terminal(tmp_path: Path) -> None:
    path = write(tmp_path / "shell.hrec", shell_session(), SSH_HEADER, terminal=True)
    app = PlayerHarness(path, mask=lambda text: text.replace("secret", "[X]"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 3)
        screen.seek_to(7 * SECOND)
        assert "the [X] plan" in terminal_of(app).text and "secret" not in terminal_of(app).text


def test_replay_without_keyframes_moves_back_from_checkpoints_to_the_same_screen(tmp_path: Path) -> None:
    events = [
        [n * 1_000, "ssh.output", "stdout", f"line {n} \x1b[1mbold\x1b[0m\r\n".encode()]
        for n in range(2 * REPLAY_CHECKPOINT_EVENTS + 500)
    ]
    path = write(tmp_path / "long.hrec", events, SSH_HEADER, terminal=False)
    with RecordingReader(path) as reader:
        replay = TerminalReplay(reader)
        late = replay.screen_at(10_400 * 1_000)
        assert len(replay._checkpoints) == 2 and "line 10400" in late.text
        # Backward moves restore a checkpoint; at 5.004 s the line just after the first one is on screen.
        for t_us in (7_000 * 1_000, 5_000 * 1_000 - 1, 10_499 * 1_000, 5_004 * 1_000, 12 * 1_000):
            moved = replay.screen_at(t_us)
            fresh = TerminalReplay(reader).screen_at(t_us)
            assert moved.lines == fresh.lines and (moved.cursor_x, moved.cursor_y) == (
                fresh.cursor_x,
                fresh.cursor_y,
            )
            assert f"line {t_us // 1_000}" in moved.text


async def test_the_terminal_keeps_its_colours_unless_the_mask_changes_the_line(tmp_path: Path) -> None:
    events = [
        [0, "ssh.exec", "deploy"],
        [10, "ssh.output", "stdout", b"\x1b[1;31mFAILED\x1b[0m step 2\r\n"],
        [20, "ssh.output", "stdout", b"\x1b[32mmail ops@example.com\x1b[0m\r\n"],
    ]
    path = write(tmp_path / "colours.hrec", events, SSH_HEADER, terminal=True)
    app = PlayerHarness(path, mask=lambda text: text.replace("ops@example.com", "[EMAIL]"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot, app, 1)
        screen.seek_to(20)
        await pilot.pause()
        frame = terminal_of(app)
        failed = frame.render_line(0)
        red = [segment for segment in failed if segment.text == "FAILED"]
        assert red and red[0].style is not None and red[0].style.bold
        assert red[0].style.color is not None and red[0].style.color.name == "red"
        plain = [segment for segment in failed if segment.text.startswith(" step 2")]
        assert plain and (plain[0].style is None or plain[0].style.color != red[0].style.color)
        masked = frame.render_line(1)
        assert "[EMAIL]" in masked.text and "ops@example.com" not in masked.text
        assert all(
            segment.style is None or segment.style.color is None or segment.style.color.name != "green"
            for segment in masked
        ), "a masked line is drawn plain"
