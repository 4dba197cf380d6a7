"""`hoop-tui demo` in a real terminal (tmux): the held UPDATE shows in the queue, `a` approves it, and the
demo agent's update completes. The whole product, as a person would first meet it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)

REPO = Path(__file__).resolve().parents[2]
HELD_UPDATE = "UPDATE customers SET balance"
UPDATE_DONE = "agent: credit a balance: ok"


class Tmux:
    """One tmux server of the test's own (its own socket, no user config), so nothing else shares it."""

    def __init__(self) -> None:
        self.socket = f"hoop-test-{uuid.uuid4().hex[:8]}"
        self.session = "demo"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["tmux", "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        """The session closes by itself once the demo has exited."""
        return self.run("has-session", "-t", self.session).returncode == 0


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def stop_leftover_postgres(state_dir: Path) -> None:
    """The demo stops its PostgreSQL on the way out; if the test had to kill the demo, stop it here."""
    pid_file = state_dir / "postgres" / "data" / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def demo_in_tmux(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    terminal = Tmux()
    state_dir = tmp_path / "demo"
    command = shlex.join(
        [sys.executable, "-m", "hoop_tui.cli", "demo", "--state-dir", str(state_dir), "--port", "0"]
    )
    started = terminal.run(
        "new-session", "-d", "-s", terminal.session, "-x", "120", "-y", "40", "-c", str(REPO), command
    )
    assert started.returncode == 0, f"tmux could not start: {started.stderr.strip()}"
    try:
        yield terminal, state_dir
    finally:
        terminal.keys("q")  # the demo's own shutdown stops PostgreSQL and the gateway
        try:
            wait_for("the demo to exit", lambda: not terminal.alive(), 15)
        except AssertionError:
            pass
        terminal.run("kill-server")
        stop_leftover_postgres(state_dir)


def test_the_demo_holds_the_update_until_it_is_approved_with_a_key(demo_in_tmux: tuple[Tmux, Path]) -> None:
    terminal, state_dir = demo_in_tmux
    log = state_dir / "demo.log"
    wait_for(
        "the held UPDATE in the approvals queue",
        lambda: HELD_UPDATE in terminal.screen() or not terminal.alive(),
        60,
    )
    assert terminal.alive(), "the demo exited early:\n" + (log.read_text()[-2000:] if log.exists() else "")
    assert UPDATE_DONE not in (log.read_text() if log.exists() else ""), "the update ran before approval"
    assert "Time left" in terminal.screen() and "write" in terminal.screen()
    terminal.keys("a")
    wait_for("the agent's update to complete", lambda: log.exists() and UPDATE_DONE in log.read_text(), 20)
    wait_for("the decision in the history", lambda: "approved" in terminal.screen(), 10)
    assert "held for review" in log.read_text(), "the agent was told its statement was held"
