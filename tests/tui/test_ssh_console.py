"""The console with real SSH sessions: a held shell command approved from the keyboard, and a live pty
session followed in the terminal view. Real OpenSSH server upstream, asyncssh agent, the gateway between."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from hoop_tui.app import HoopApp, make_app
from hoop_tui.screens.session_view import SessionViewScreen
from hoop_tui.widgets.approval_queue import ApprovalQueue
from hoop_tui.widgets.terminal_view import TerminalView
from proxy.control.local import LocalControl
from tests.ssh.gateway_fixture import SSH_POLICY, SshGateway, start_ssh_gateway
from tests.ssh_targets import SshTarget, start_sshd
from tests.tui.conftest import SIZE, FrozenClock
from tests.tui.test_approvals_screen import until
from tests.tui.test_session_view import open_first_session

POLICY = SSH_POLICY.replace('allow = ["exec"]', 'allow = ["exec", "shell"]')


@pytest.fixture
def ssh_gateway(tmp_path: Path) -> Iterator[tuple[SshTarget, SshGateway]]:
    with start_sshd(tmp_path / "upstream") as target:
        running = start_ssh_gateway(
            tmp_path / "gateway", target, policies=POLICY, extra='admin_groups = ["sre"]'
        )
        try:
            yield target, running
        finally:
            running.stop()


def console(running: SshGateway, start_on: str) -> HoopApp:
    token = running.token(subject="alice", groups=("oncall", "sre"))
    return make_app(
        lambda: LocalControl.sign_in(running.gateway, token),
        clock=FrozenClock(),
        start_on=start_on,
        sessions_interval=0.2,
    )


def agent(running: SshGateway) -> asyncssh.connection._ConnectionContext:  # type: ignore[name-defined]
    return asyncssh.connect(
        running.host, running.port, username="web1", password=running.token(), known_hosts=None,
        client_keys=None, agent_path=None, config=[], preferred_auth=["password"],
    )  # fmt: skip


async def test_a_held_shell_command_is_approved_from_the_keyboard(ssh_gateway: tuple[SshTarget, SshGateway]):
    target, running = ssh_gateway
    created = target.workdir / "approved-from-the-console"
    app = console(running, "approvals")
    async with app.run_test(size=SIZE) as pilot, agent(running) as conn:
        held = asyncio.create_task(conn.run(f"touch {created} && echo done", check=False))
        queue = lambda: app.screen.query_one(ApprovalQueue)  # noqa: E731
        await until(pilot, lambda: len(queue().requests) == 1)
        (request,) = queue().requests.values()
        assert request["protocol"] == "ssh" and request["statement"] == f"touch {created} && echo done"
        assert not held.done() and not created.exists()
        await pilot.press("a")
        result = await asyncio.wait_for(held, 15)
    assert result.exit_status == 0
    assert result.stdout == "done\n"
    assert created.exists()


async def test_a_live_pty_session_is_followed_in_the_terminal_view(ssh_gateway: tuple[SshTarget, SshGateway]):
    _target, running = ssh_gateway
    app = console(running, "sessions")
    async with app.run_test(size=SIZE) as pilot, agent(running) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(60, 12), encoding=None)
        process.stdin.write(b"echo before-$((40+2))\r")
        await open_first_session(pilot, app)
        terminal = app.screen.query_one(TerminalView)
        await until(pilot, lambda: any("before-42" in line for line in terminal.screen_text))
        process.stdin.write(b"echo live-$((50+5)) erin@example.org\r")
        await until(pilot, lambda: any("live-55 [EMAIL]" in line for line in terminal.screen_text))
        assert not any("erin@" in line for line in terminal.screen_text)
        assert isinstance(app.screen, SessionViewScreen)
        process.stdin.write(b"exit\r")
        await asyncio.wait_for(process.wait(), 10)
