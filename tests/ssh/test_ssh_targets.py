"""The SSH test hosts and clients, proved by connecting to them directly (no gateway in between)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from hoop_tui.demo.ssh_target import DemoSshTarget, seed_demo_workdir, start_demo_ssh_target
from tests.ssh_targets import (
    SshTarget,
    openssh_key_login,
    ssh_client,
    ssh_popen,
    start_asyncssh_target,
)

pytestmark = pytest.mark.timeout(60)


def run(argv: list[str], input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv, input=input, stdin=None if input else subprocess.DEVNULL, capture_output=True, timeout=30
    )


# -- OpenSSH sshd, reached by OpenSSH ssh with the gateway-held key ----------------------------------------


def test_key_login_runs_a_command_in_the_workdir(ssh_target: SshTarget) -> None:
    result = run(openssh_key_login(ssh_target, ["echo hello; pwd; echo oops >&2; touch ran; exit 7"]))

    assert result.returncode == 7, result.stderr
    assert result.stdout.decode().splitlines() == ["hello", str(ssh_target.workdir)]
    assert result.stderr == b"oops\n"
    assert (ssh_target.workdir / "ran").exists()
    assert ssh_target.upstream == f"{ssh_target.user}@127.0.0.1:{ssh_target.port}"


def test_key_login_passes_stdin_through(ssh_target: SshTarget) -> None:
    payload = secrets.token_bytes(300_000)

    result = run(openssh_key_login(ssh_target, ["cat"]), input=payload)

    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_a_changed_host_key_is_refused_before_anything_runs(ssh_target: SshTarget, tmp_path: Path) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    wrong_known_hosts = tmp_path / "wrong_known_hosts"
    wrong_known_hosts.write_text(f"[127.0.0.1]:{ssh_target.port} {impostor[0]} {impostor[1]}\n")

    result = run(openssh_key_login(ssh_target, ["touch ran"], known_hosts=wrong_known_hosts))

    assert result.returncode == 255
    assert b"Host key verification failed" in result.stderr
    assert not (ssh_target.workdir / "ran").exists()


def test_the_upstream_takes_no_passwords(ssh_target: SshTarget) -> None:
    result = ssh_client(["touch ran"], token="guess", port=ssh_target.port, user=ssh_target.user)

    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert not (ssh_target.workdir / "ran").exists()


def test_fallback_target_has_the_same_shape_and_speaks_to_openssh(tmp_path: Path) -> None:
    with start_asyncssh_target(tmp_path) as target:
        assert target.kind == "asyncssh"
        result = run(openssh_key_login(target, ["read line; echo got $line; touch ran; exit 4"]), b"it\n")

        assert result.returncode == 4, result.stderr
        assert result.stdout == b"got it\n"
        assert (target.workdir / "ran").exists()
    stopped = run(openssh_key_login(target, ["true"]))
    assert stopped.returncode == 255


# -- the demo's asyncssh target, reached by the asyncssh client ----------------------------------------------


@dataclass
class DemoHost:
    target: DemoSshTarget
    key: asyncssh.SSHKey
    known_hosts: Path

    def connect(self, **options: object) -> asyncssh.SSHClientConnection:
        settings: dict[str, object] = {
            "username": "deploy",
            "client_keys": [self.key],
            "known_hosts": str(self.known_hosts),
            "agent_path": None,
            "config": None,
        }
        settings.update(options)
        return asyncssh.connect(self.target.host, self.target.port, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def demo_host(tmp_path: Path) -> AsyncIterator[DemoHost]:
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    key = asyncssh.generate_private_key("ssh-ed25519")
    target = await start_demo_ssh_target(workdir, authorized_key=key)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(target.host_key_line + "\n")
    try:
        yield DemoHost(target, key, known_hosts)
    finally:
        target.close()
        await target.wait_closed()


async def test_exec_streams_stdin_stdout_stderr_and_the_exit_status(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        result = await conn.run(
            "cat && echo warning >&2 && sh -c 'exit 3'", input=b"line one\n", encoding=None
        )

    assert result.stdout == b"line one\n"
    assert result.stderr == b"warning\n"
    assert result.exit_status == 3


async def test_exec_runs_in_the_workdir_with_a_minimal_environment(
    demo_host: DemoHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOP_DEMO_CANARY", "must-not-leak")
    async with demo_host.connect() as conn:
        result = await conn.run("pwd; env")

    lines = str(result.stdout).splitlines()
    assert lines[0] == str(demo_host.target.workdir)
    assert "must-not-leak" not in str(result.stdout)
    assert f"HOME={demo_host.target.workdir}" in lines


async def test_bulk_data_both_ways_and_a_command_that_stops_reading(demo_host: DemoHost) -> None:
    payload = secrets.token_bytes(3 * 1024 * 1024)
    async with demo_host.connect() as conn:
        echoed = await conn.run("cat", input=payload, encoding=None)
        first_byte = await conn.run("head -c 1", input=payload, encoding=None)

    assert echoed.exit_status == 0
    assert echoed.stdout == payload
    assert first_byte.exit_status == 0
    assert first_byte.stdout == payload[:1]


async def test_a_command_killed_by_a_signal_reports_the_signal(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        result = await conn.run("kill -TERM $$")

    assert result.exit_signal is not None
    assert result.exit_signal[0] == "TERM"


async def read_until(stream: asyncssh.SSHReader[str], wanted: str, timeout: float = 10) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while wanted not in seen:
            chunk = await stream.read(4096)
            if not chunk:
                break
            seen += chunk
    return seen


async def test_pty_shell_follows_window_changes(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        shell = await conn.create_process(term_type="xterm", term_size=(80, 24))
        shell.stdin.write("stty size; tty\n")
        before = await read_until(shell.stdout, "/dev/pts/")
        shell.change_terminal_size(132, 40)
        shell.stdin.write("stty size\n")
        after = await read_until(shell.stdout, "40 132")
        shell.stdin.write("exit 5\n")
        completed = await shell.wait(timeout=10)

    assert "24 80" in before
    assert "/dev/pts/" in before
    assert "40 132" in after
    assert completed.exit_status == 5


async def test_exec_with_a_pty_gets_a_terminal(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        with_pty = await conn.run("tty", term_type="xterm")
        without = await conn.run("tty")

    assert str(with_pty.stdout).startswith("/dev/pts/")
    assert with_pty.exit_status == 0
    assert without.exit_status == 1  # `tty` says "not a tty" on plain pipes


async def test_forwarding_and_sftp_are_refused(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", demo_host.target.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", demo_host.target.port)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.start_sftp_client()
        still_usable = await conn.run("echo ok")

    assert still_usable.stdout == "ok\n"


async def test_only_the_authorized_key_logs_in(demo_host: DemoHost) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await demo_host.connect(client_keys=[stranger])
    with pytest.raises(asyncssh.PermissionDenied):
        await demo_host.connect(client_keys=None, password="hunter2")


async def test_a_dropped_connection_ends_the_running_command(demo_host: DemoHost) -> None:
    async with demo_host.connect() as conn:
        process = await conn.create_process("echo $$; exec sleep 30")
        pid = int(await process.stdout.readline())
        assert process_alive(pid)

    async with asyncio.timeout(5):
        while process_alive(pid):
            await asyncio.sleep(0.05)


async def test_closing_the_target_drops_its_clients_and_their_commands(demo_host: DemoHost) -> None:
    conn = await demo_host.connect()
    process = await conn.create_process("echo $$; exec sleep 30")
    pid = int(await process.stdout.readline())

    demo_host.target.close()
    async with asyncio.timeout(5):
        await conn.wait_closed()
        await demo_host.target.wait_closed()
        while process_alive(pid):
            await asyncio.sleep(0.05)
    with pytest.raises(OSError):
        await demo_host.connect()


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_seeded_workdir_holds_what_the_demo_masks(demo_host: DemoHost) -> None:
    written = seed_demo_workdir(demo_host.target.workdir)
    async with demo_host.connect() as conn:
        emails = await conn.run("grep -c '@example' logs/app.log")
        config = await conn.run("cat config/app.env")
        releases = await conn.run("ls releases")

    assert all(path.is_file() for path in written)
    assert int(str(emails.stdout)) >= 3
    assert "AKIA" in str(config.stdout)
    assert str(releases.stdout).split() == ["current", "v1.4.1", "v1.4.2"]


# -- ssh_client / ssh_popen: the real OpenSSH client logging in with a token ------------------------------


@dataclass
class TokenServer:
    """A tiny asyncssh server that takes the token as password (or keyboard-interactive answer)."""

    token: str
    keyboard_interactive: bool = False
    answers: list[str] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    terminal_types: list[str | None] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        self.terminal_types.append(process.get_terminal_type())
        self.started.set()
        await self.release.wait()
        received = await process.stdin.read()
        process.stdout.write(f"ran {process.command}; read {received}")
        process.exit(2)


class _TokenAuth(asyncssh.SSHServer):
    def __init__(self, log: TokenServer) -> None:
        self._log = log

    def connection_lost(self, exc: Exception | None) -> None:
        self._log.disconnected.set()

    def begin_auth(self, username: str) -> bool:
        self._log.usernames.append(username)
        return True

    def password_auth_supported(self) -> bool:
        return not self._log.keyboard_interactive

    def validate_password(self, username: str, password: str) -> bool:
        self._log.answers.append(password)
        return password == self._log.token

    def kbdint_auth_supported(self) -> bool:
        return self._log.keyboard_interactive

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> tuple:
        return "", "", "", [("Token: ", False)]

    def validate_kbdint_response(self, username: str, responses: list[str]) -> bool:
        self._log.answers.extend(responses)
        return list(responses) == [self._log.token]


async def start_token_server(log: TokenServer) -> asyncssh.SSHAcceptor:
    acceptor = await asyncssh.create_server(
        lambda: _TokenAuth(log),
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        process_factory=log.handle,
    )
    log.port = acceptor.get_port()
    return acceptor


@pytest.mark.parametrize("keyboard_interactive", [False, True], ids=["password", "keyboard-interactive"])
async def test_ssh_client_logs_in_with_the_token(keyboard_interactive: bool) -> None:
    log = TokenServer(token=secrets.token_urlsafe(24), keyboard_interactive=keyboard_interactive)
    log.release.set()
    acceptor = await start_token_server(log)
    try:
        result = await asyncio.to_thread(
            ssh_client, ["uptime", "-p"], token=log.token, port=log.port, user="web1", input=b"payload"
        )
    finally:
        acceptor.close()

    assert result.returncode == 2, result.stderr
    assert result.stdout == b"ran uptime -p; read payload"
    assert log.answers == [log.token]
    assert log.usernames == ["web1"]
    assert log.terminal_types == [None]


async def test_ssh_client_with_a_wrong_token_fails_after_one_try() -> None:
    log = TokenServer(token=secrets.token_urlsafe(24))
    acceptor = await start_token_server(log)
    try:
        result = await asyncio.to_thread(ssh_client, ["true"], token="wrong", port=log.port, user="web1")
    finally:
        acceptor.close()

    assert result.returncode == 255
    assert log.answers == ["wrong"]
    assert not log.started.is_set()


async def test_ssh_client_can_ask_for_a_pty() -> None:
    log = TokenServer(token=secrets.token_urlsafe(24))
    log.release.set()
    acceptor = await start_token_server(log)
    try:
        result = await asyncio.to_thread(
            ssh_client, ["top"], token=log.token, port=log.port, user="web1", input=b"q\x04", pty=True
        )
    finally:
        acceptor.close()

    assert log.terminal_types and log.terminal_types[0] is not None
    assert b"ran top" in result.stdout


def command_lines() -> list[bytes]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes())
            except OSError:
                continue  # the process ended while we looked
    return lines


async def test_the_token_never_appears_in_any_argv_while_the_session_is_open() -> None:
    log = TokenServer(token=secrets.token_urlsafe(24))
    acceptor = await start_token_server(log)
    client = ssh_popen(["hold"], token=log.token, port=log.port, user="web1-argv-probe")
    try:
        await asyncio.wait_for(log.started.wait(), 15)
        argvs = command_lines()
        log.release.set()
        stdout, _ = await asyncio.to_thread(client.communicate, b"", 15)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        acceptor.close()

    assert any(b"web1-argv-probe@127.0.0.1" in argv for argv in argvs)  # the scan did see the client
    assert not any(log.token.encode() in argv for argv in argvs)
    assert log.answers == [log.token]
    assert stdout == b"ran hold; read "


async def test_killing_a_popen_client_drops_its_connection() -> None:
    log = TokenServer(token=secrets.token_urlsafe(24))
    acceptor = await start_token_server(log)
    client = ssh_popen(["hold"], token=log.token, port=log.port, user="web1")
    try:
        await asyncio.wait_for(log.started.wait(), 15)
        client.kill()
        await asyncio.to_thread(client.wait, 5)
        await asyncio.wait_for(log.disconnected.wait(), 5)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        acceptor.close()

    assert log.disconnected.is_set()
    assert client.returncode == -signal.SIGKILL
