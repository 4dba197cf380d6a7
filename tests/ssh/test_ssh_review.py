"""Security review of the SSH data path (issue 8): requests OpenSSH never sends, races, masking, exhaustion.

Each finding was written as a test marked `xfail(strict=True)` that failed on the code it was written
against; all are fixed and plain tests now (a comment names the finding). Every other test is an attack
that held.

Some attacks need requests the asyncssh client API never sends (an empty exec, a pty after exec, a second
exec on one channel, data pipelined with the request): `RawChannel` speaks the channel protocol through
asyncssh's channel internals (`_open`, `_make_request`, `_send_request`, `_start_reading`, the same from
asyncssh 2.17 to 2.24). Should a new asyncssh rename them, these tests error; they cannot pass by accident.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest
from asyncssh.channel import SSHClientChannel
from asyncssh.packet import String, UInt32

from proxy.identity.model import Identity
from proxy.store.base import ApprovalRecord
from recordings.reader import RecordingReader
from tests.ssh.gateway_fixture import SshGateway, start_ssh_gateway
from tests.ssh_targets import SshTarget, start_sshd

# The DESIGN §6 example, with an explicit deny of shells: whatever an exec channel does, it must never end up
# as an interactive shell. `tty` is allowed so a test can ask the upstream whether it got a terminal.
POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]
allow_commands = ["ls", "cat", "echo", "true", "printf", "head", "sleep", "tr", "tty", "wc"]
review_commands = ["touch"]
deny_commands = ["rm", "curl"]
deny = ["opaque", "shell", "sftp"]
mask = ["email", "secret", "us_ssn"]
review_timeout = "20s"
approvers = ["oncall"]
"""
FORWARD_POLICY = POLICY.replace('allow = ["exec"]', 'allow = ["exec", "port_forward"]')

WINDOW = 2 * 1024 * 1024  # asyncssh's default channel window


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTarget]:
    with start_sshd(tmp_path_factory.mktemp("upstream")) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, target: SshTarget) -> Iterator[SshGateway]:
    running = start_ssh_gateway(tmp_path_factory.mktemp("gateway"), target, policies=POLICY)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def forward_gateway(tmp_path: Path, target: SshTarget) -> Iterator[SshGateway]:
    running = start_ssh_gateway(tmp_path / "forward", target, policies=FORWARD_POLICY)
    try:
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------------------------------------- helpers


@asynccontextmanager
async def agent(gateway: SshGateway, token: str | None = None) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """An agent's SSH connection to the gateway, logged in with its token as the password."""
    async with asyncssh.connect(
        gateway.host,
        gateway.port,
        username="web1",
        password=token or gateway.token(),
        known_hosts=None,
        client_keys=None,
        agent_path=None,
        config=[],
        preferred_auth=["password"],
    ) as conn:
        yield conn


class RawSession(asyncssh.SSHClientSession[bytes]):
    """Collects what the gateway sends on one channel."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exit_status: int | None = None
        self.closed = asyncio.Event()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        (self.stderr if datatype == asyncssh.EXTENDED_DATA_STDERR else self.stdout).extend(data)

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


class RawChannel:
    """A session channel whose requests the test sends one by one, in any order, with or without replies."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self.chan: SSHClientChannel[bytes] = SSHClientChannel(
            conn, loop, "strict", None, "strict", WINDOW, 32768
        )
        self.session = RawSession()

    async def open(self) -> RawChannel:
        await self.chan._open(b"session")
        self.chan._session = self.session
        self.session.connection_made(self.chan)
        return self

    async def request(self, name: bytes, *args: bytes) -> bool:
        """Send a channel request and wait for the gateway's yes or no."""
        return bool(await self.chan._make_request(name, *args))

    def send_request(self, name: bytes, *args: bytes) -> None:
        """Send a channel request without waiting (pipelined), as a client may."""
        self.chan._send_request(name, *args, want_reply=False)

    async def exec(self, command: str) -> bool:
        started = await self.request(b"exec", String(command))
        if started:
            await self.chan._start_reading()
        return started

    async def pty(self, width: int = 80, height: int = 24) -> bool:
        return await self.request(b"pty-req", *_pty_request(width, height))

    def write(self, data: bytes) -> None:
        self.chan.write(data)

    def write_eof(self) -> None:
        self.chan.write_eof()

    def close(self) -> None:
        self.chan.close()

    async def finished(self, timeout: float = 20.0) -> RawSession:
        await asyncio.wait_for(self.session.closed.wait(), timeout)
        return self.session


def _pty_request(width: int, height: int) -> tuple[bytes, ...]:
    return (String("xterm"), UInt32(width), UInt32(height), UInt32(0), UInt32(0), String(b"\x00"))


async def raw_channel(conn: asyncssh.SSHClientConnection) -> RawChannel:
    return await RawChannel(conn).open()


def oncall() -> Identity:
    return Identity(
        subject="alice",
        groups=("oncall",),
        issuer="test",
        expires_at=time.time() + 600,
        token_id=None,
        claims={},
    )


async def on_gateway(gateway: SshGateway, coroutine):  # type: ignore[no-untyped-def]
    """Run a coroutine on the gateway's own loop (its thread) and await it from the test's loop."""
    future = asyncio.run_coroutine_threadsafe(coroutine, gateway.thread.loop)  # type: ignore[attr-defined]
    return await asyncio.wrap_future(future)


async def pending_request(gateway: SshGateway, statement: str, timeout: float = 15.0) -> ApprovalRecord:
    """The pending approval request whose (masked) statement is `statement`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = await on_gateway(gateway, gateway.gateway.store.list_approvals(states=["pending"]))
        for request in pending:
            if request.statement == statement:
                return request
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending request for {statement!r}")


async def approval_state(gateway: SshGateway, request_id: str) -> str:
    record = await on_gateway(gateway, gateway.gateway.store.get_approval(request_id))
    return record.state


async def wait_for_state(gateway: SshGateway, request_id: str, state: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    current = await approval_state(gateway, request_id)
    while current != state and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        current = await approval_state(gateway, request_id)
    return current


async def decide(gateway: SshGateway, request_id: str, approve: bool) -> None:
    reason = None if approve else "not in this review"
    await on_gateway(
        gateway, gateway.gateway.approvals.decide(request_id, oncall(), approve=approve, justification=reason)
    )


def recordings_with_exec(gateway: SshGateway, command: str, timeout: float = 10.0) -> list[list]:
    """The events of the (sealed) recording whose ssh.exec event is `command`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in gateway.recordings_dir.rglob("*.hrec"):
            reader = RecordingReader(path)
            if not reader.sealed:
                continue
            events = list(reader.iter_events())
            if ["ssh.exec", command] in [event[1:] for event in events]:
                return events
        time.sleep(0.05)
    raise AssertionError(f"no sealed recording holds the command {command!r}")


async def finish_exec(channel: RawChannel, command: str, stdin: bytes = b"") -> RawSession:
    """Run `command` on a raw channel with `stdin`, then end of input; the channel's result."""
    started = await channel.exec(command)
    if not started:
        channel.close()
        return channel.session
    if stdin:
        channel.write(stdin)
    channel.write_eof()
    return await channel.finished()


async def loop_lag(seconds: float) -> float:
    """The longest the gateway's loop was late to wake a 5 ms sleeper during `seconds` (run on that loop)."""
    worst = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = time.monotonic()
        await asyncio.sleep(0.005)
        worst = max(worst, time.monotonic() - before - 0.005)
    return worst


async def tunnel_answers(reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> bool:
    """True when the upstream sshd behind a tunnel still answers (its key exchange follows our banner)."""
    try:
        writer.write(b"SSH-2.0-review\r\n")
        return bool(await asyncio.wait_for(reader.read(1), 5))
    except (asyncssh.Error, OSError, TimeoutError):
        return False


def apply_erase(typed: bytes) -> bytes:
    """What a terminal's line discipline makes of typed bytes: DEL and backspace remove the previous byte."""
    out = bytearray()
    for byte in typed:
        if byte in (0x7F, 0x08):
            if out:
                out.pop()
        else:
            out.append(byte)
    return bytes(out)


# ================================================================================================ findings


# Review finding F1, fixed (was critical).
async def test_an_empty_exec_command_never_becomes_a_shell_on_the_upstream(
    gateway: SshGateway, target: SshTarget
) -> None:
    victim = target.workdir / "victim-empty-exec"
    victim.write_text("must survive")
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        session = await finish_exec(channel, "", stdin=b"rm -f victim-empty-exec; echo ran-$((6*7))\n")
    assert b"ran-42" not in session.stdout
    assert victim.exists()


# Review finding F2, fixed (was medium).
async def test_input_sent_together_with_the_exec_request_is_recorded(gateway: SshGateway) -> None:
    command = "tr a-z A-Z # review-pipelined-input"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        # Corked, the request and the input leave in one TCP segment, as a pipelining client's often do.
        sock = conn.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        reply = asyncio.ensure_future(channel.request(b"exec", String(command)))
        await asyncio.sleep(0)  # the request is written; the input follows at once
        channel.write(b"typed along with the request\n")
        channel.write_eof()
        await asyncio.sleep(0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        assert await reply
        await channel.chan._start_reading()
        session = await channel.finished()
    assert bytes(session.stdout) == b"TYPED ALONG WITH THE REQUEST\n"  # the upstream did get it
    events = await asyncio.to_thread(recordings_with_exec, gateway, command)
    typed = b"".join(event[2] for event in events if event[1] == "ssh.input")
    assert typed == b"typed along with the request\n"


# Review finding F3, fixed (was low).
async def test_a_pty_asked_for_while_the_command_is_held_does_not_reach_the_upstream(
    gateway: SshGateway,
) -> None:
    command = "touch review-late-pty && tty"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        await channel.pty()  # refused or ignored: either way the command must not get a terminal
        await decide(gateway, request.id, approve=True)
        channel.write_eof()
        session = await channel.finished()
    assert b"not a tty" in session.stdout
    assert b"/dev/pts" not in session.stdout


# Review finding F4, fixed (was medium).
async def test_one_connection_cannot_open_an_unbounded_number_of_held_channels(gateway: SshGateway) -> None:
    attempts = 64
    accepted = 0
    async with agent(gateway) as conn:
        for number in range(attempts):
            try:
                channel = await raw_channel(conn)
            except asyncssh.ChannelOpenError:
                continue
            if await channel.exec(f"touch review-flood-{number}"):
                accepted += 1
        pending = await on_gateway(gateway, gateway.gateway.store.list_approvals(states=["pending"]))
    flood = [request for request in pending if request.statement.startswith("touch review-flood-")]
    assert accepted < attempts
    assert len(flood) < attempts


# Review finding F5, fixed (was medium).
async def test_a_long_command_line_does_not_stall_the_gateway_for_everyone(gateway: SshGateway) -> None:
    line = "ls;" * 5300 + "rm"  # under the 16 KiB cap, so it is parsed; then denied for its `rm`
    probe = asyncio.run_coroutine_threadsafe(loop_lag(4.0), gateway.thread.loop)  # type: ignore[attr-defined]
    async with agent(gateway) as conn:
        channels = [await raw_channel(conn) for _ in range(4)]
        sessions = await asyncio.gather(*(finish_exec(channel, line) for channel in channels))
    worst = await asyncio.wrap_future(probe)
    assert [session.exit_status for session in sessions] == [126] * 4
    assert worst < 0.25, f"the gateway's loop stalled for {worst:.2f} s"


# Review finding F6, fixed (was medium).
async def test_a_tunnel_neither_outlives_the_token_nor_opens_after_it(
    forward_gateway: SshGateway, target: SshTarget
) -> None:
    token = forward_gateway.token(ttl=2)
    async with agent(forward_gateway, token) as conn:
        reader, writer = await conn.open_connection(target.host, target.port)
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"SSH-")  # works while valid
        await asyncio.sleep(3.5)  # the token expires (no grace configured)
        old_tunnel_alive = await tunnel_answers(reader, writer)
        new_banner = b""
        try:
            new_reader, new_writer = await conn.open_connection(target.host, target.port)
            new_banner = await asyncio.wait_for(new_reader.readline(), 10)
            new_writer.close()
        except (asyncssh.Error, OSError):
            pass
    assert not old_tunnel_alive, "a tunnel outlived the token"
    assert not new_banner.startswith(b"SSH-"), "a tunnel opened after the token expired"


# Review finding F7, fixed (was medium).
async def test_a_tunnel_is_a_session_an_operator_can_see(
    forward_gateway: SshGateway, target: SshTarget
) -> None:
    async with agent(forward_gateway) as conn:
        reader, writer = await conn.open_connection(target.host, target.port)
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"SSH-")
        listed = [session.protocol for session in forward_gateway.gateway.sessions.list()]
        writer.close()
    assert "ssh" in listed


# Review finding F8, fixed (was low).
async def test_typed_input_edited_with_backspace_is_masked_in_the_recording(gateway: SshGateway) -> None:
    command = "head -n 1 # review-typed-erase"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.pty()
        assert await channel.exec(command)
        channel.write(b"dave@exaX\x7fmple.net\r")
        session = await channel.finished()
    assert b"dave@" not in session.stdout  # the output side is masked
    events = await asyncio.to_thread(recordings_with_exec, gateway, command)
    typed = b"".join(event[2] for event in events if event[1] == "ssh.input")
    assert b"dave@example.net" not in apply_erase(typed)


async def _drop_upstream_logins(gateway: SshGateway) -> int:
    """Break every live upstream login of the gateway's agent connections, as a network failure would."""
    dropped = 0
    listener = gateway.gateway.ssh
    assert listener is not None
    for connection in list(listener.connections):
        link = connection.link
        task = link._upstream if link is not None else None
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            task.result().abort()
            dropped += 1
    return dropped


# Review finding F9, fixed (was low (availability)).
async def test_a_dropped_upstream_login_is_made_again_for_the_next_channel(gateway: SshGateway) -> None:
    async with agent(gateway) as conn:
        first = await conn.run("echo first-channel", encoding=None, timeout=20)
        assert first.stdout == b"first-channel\n"
        assert await on_gateway(gateway, _drop_upstream_logins(gateway)) >= 1
        await asyncio.sleep(0.2)
        second = await conn.run("echo second-channel", encoding=None, timeout=20)
    assert second.stdout == b"second-channel\n", second.stderr


# Review finding F10, fixed (was low).
def test_connections_that_never_log_in_are_bounded(gateway: SshGateway) -> None:
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection((gateway.host, gateway.port), timeout=5)
            sock.sendall(b"SSH-2.0-slow\r\n")  # then nothing: no key exchange, no login
            idle.append(sock)
        time.sleep(1.5)
        dropped = 0
        for sock in idle:
            sock.settimeout(0.01)
            try:
                while chunk := sock.recv(65536):
                    del chunk
                dropped += 1  # end of stream: the gateway closed it
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                dropped += 1
    finally:
        for sock in idle:
            sock.close()
    assert dropped > 0, "all 200 idle logins were still held open"


# ======================================================================= an upstream that reports what it got


class _ObservedSession(asyncssh.SSHServerSession[bytes]):
    """One upstream channel: notes every request the gateway forwarded, answers, exits 0."""

    def __init__(self, seen: list[dict[str, object]]) -> None:
        self.record: dict[str, object] = {"env": {}, "command": None, "pty": None, "signals": [], "sizes": []}
        seen.append(self.record)
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object) -> bool:
        self.record["pty"] = term_type
        return True

    def shell_requested(self) -> bool:
        self.record["shell"] = True
        return True

    def exec_requested(self, command: str) -> bool:
        self.record["command"] = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.record["subsystem"] = subsystem
        return True

    def signal_received(self, signal: str) -> None:
        self.record["signals"].append(signal)  # type: ignore[attr-defined]

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.record["sizes"].append((width, height))  # type: ignore[attr-defined]

    def session_started(self) -> None:
        assert self._chan is not None
        self.record["env"] = dict(self._chan.get_environment())
        self._chan.write(b"observed\n")
        self._chan.exit(0)


class _ObservedHost(asyncssh.SSHServer):
    def __init__(self, seen: list[dict[str, object]]) -> None:
        self._seen = seen

    def session_requested(self) -> _ObservedSession:
        return _ObservedSession(self._seen)


@pytest.fixture
async def observed(tmp_path: Path) -> AsyncIterator[tuple[SshGateway, list[dict[str, object]]]]:
    """A gateway whose upstream is an asyncssh host that accepts everything (env included) and reports it:
    what it saw is exactly what the gateway forwarded."""
    from hoop_tui.demo.ssh_target import known_hosts_pattern

    seen: list[dict[str, object]] = []
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "gateway_key"
    key_file.write_bytes(client_key.export_private_key())
    key_file.chmod(0o600)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        lambda: _ObservedHost(seen),
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
        encoding=None,
        line_editor=False,
        allow_pty=True,
    )
    port = server.sockets[0].getsockname()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"{known_hosts_pattern('127.0.0.1', port)} {host_key.export_public_key().decode().strip()}\n"
    )
    upstream = SshTarget(
        "127.0.0.1", port, "agent", key_file, known_hosts, tmp_path, "asyncssh", lambda: None
    )
    running = await asyncio.to_thread(start_ssh_gateway, tmp_path / "gw", upstream, POLICY)
    try:
        yield running, seen
    finally:
        await asyncio.to_thread(running.stop)
        server.close()
        await server.wait_closed()


async def test_env_requests_never_reach_the_upstream(
    observed: tuple[SshGateway, list[dict[str, object]]],
) -> None:
    running, seen = observed
    async with agent(running) as conn:
        channel = await raw_channel(conn)
        for name, value in (("LD_PRELOAD", "./evil.so"), ("BASH_ENV", "./evil.sh"), ("PATH", ".")):
            channel.send_request(b"env", String(name), String(value))
        session = await finish_exec(channel, "echo hi")
    assert session.exit_status == 0 and bytes(session.stdout) == b"observed\n"
    assert [record["command"] for record in seen] == ["echo hi"]
    assert seen[0]["env"] == {}


async def test_requests_before_the_start_are_not_replayed_and_x11_or_agent_are_refused(
    observed: tuple[SshGateway, list[dict[str, object]]],
) -> None:
    running, seen = observed
    async with agent(running) as conn:
        channel = await raw_channel(conn)
        assert await channel.request(b"window-change", UInt32(100), UInt32(40), UInt32(0), UInt32(0))
        assert await channel.request(b"signal", String("KILL"))
        assert not await channel.request(b"break", UInt32(100))
        assert not await channel.request(
            b"x11-req", b"\x00", String("MIT-MAGIC-COOKIE-1"), String("00" * 16), UInt32(0)
        )
        assert not await channel.request(b"auth-agent-req@openssh.com")
        session = await finish_exec(channel, "echo after-noise")
    assert session.exit_status == 0
    assert len(seen) == 1
    assert seen[0]["command"] == "echo after-noise"
    assert seen[0]["signals"] == [] and seen[0]["sizes"] == [] and seen[0]["pty"] is None


async def test_the_command_runs_verbatim_while_the_approval_audit_and_recording_see_it_masked(
    observed: tuple[SshGateway, list[dict[str, object]]],
) -> None:
    running, seen = observed
    command = "touch report alice.smith@example.com"
    async with agent(running) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(running, "touch report [EMAIL]")
        await decide(running, request.id, approve=True)
        channel.write_eof()
        session = await channel.finished()
    assert session.exit_status == 0
    assert [record["command"] for record in seen] == [command]  # what runs is exactly what was approved
    events = await asyncio.to_thread(recordings_with_exec, running, "touch report [EMAIL]")
    assert "alice.smith" not in repr(events)
    deadline = time.monotonic() + 5
    audit = ""
    while "touch report [EMAIL]" not in audit and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        audit = "".join(path.read_text() for path in running.state_dir.rglob("audit-*.jsonl"))
    assert "touch report [EMAIL]" in audit
    assert "alice.smith" not in audit


# ======================================================== attacks on the live upstream that held


async def test_a_second_request_on_a_started_channel_is_refused_and_never_runs(
    gateway: SshGateway, target: SshTarget
) -> None:
    victim = target.workdir / "victim-second-request"
    victim.write_text("must survive")
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec("sleep 0.5")
        assert not await channel.request(b"exec", String("rm -f victim-second-request"))
        assert not await channel.request(b"shell")
        assert not await channel.request(b"subsystem", String("sftp"))
        channel.write_eof()
        session = await channel.finished()
    assert session.exit_status == 0
    assert victim.exists()


async def test_an_operator_kill_while_held_cancels_the_request_and_nothing_runs(
    gateway: SshGateway, target: SshTarget
) -> None:
    created = target.workdir / "review-killed-while-held"
    command = "touch review-killed-while-held"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        killed = await on_gateway(gateway, _kill(gateway, request.session_id))
        assert killed
        session = await channel.finished()
        assert await wait_for_state(gateway, request.id, "cancelled") == "cancelled"
        with pytest.raises(Exception, match="already cancelled"):
            await decide(gateway, request.id, approve=True)
    assert session.exit_status == 255 and b"hoop: killed by review" in session.stderr
    await asyncio.sleep(0.3)
    assert not created.exists()


async def _kill(gateway: SshGateway, session_id: str) -> bool:
    return gateway.gateway.kill_local(session_id, "hoop: killed by review")


async def test_closing_the_channel_while_held_cancels_and_a_late_approval_runs_nothing(
    gateway: SshGateway, target: SshTarget
) -> None:
    created = target.workdir / "review-closed-while-held"
    command = "touch review-closed-while-held"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        channel.close()  # the channel only: the connection stays up
        assert await wait_for_state(gateway, request.id, "cancelled") == "cancelled"
        with pytest.raises(Exception, match="already cancelled"):
            await decide(gateway, request.id, approve=True)
        await asyncio.sleep(0.3)
        assert not created.exists()
        # ... and the connection still serves the agent
        result = await conn.run("echo still-here", encoding=None, timeout=20)
    assert result.stdout == b"still-here\n"


async def test_eof_and_signals_while_held_neither_run_nor_lose_the_command(gateway: SshGateway) -> None:
    command = "touch review-eof-while-held && wc -c"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        channel.write(b"12345")
        channel.write_eof()
        channel.send_request(b"signal", String("KILL"))
        await asyncio.sleep(0.3)
        assert await approval_state(gateway, request.id) == "pending"
        await decide(gateway, request.id, approve=True)
        session = await channel.finished()
    assert session.exit_status == 0, bytes(session.stderr)
    assert bytes(session.stdout).strip() == b"5"  # the input typed while held, once, then end of input


async def test_a_command_denied_by_the_approver_after_signals_and_input_never_runs(
    gateway: SshGateway, target: SshTarget
) -> None:
    created = target.workdir / "review-denied-after-noise"
    command = "touch review-denied-after-noise"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        channel.send_request(b"signal", String("INT"))
        channel.write(b"y\n")
        await decide(gateway, request.id, approve=False)
        session = await channel.finished()
    assert session.exit_status == 126
    await asyncio.sleep(0.3)
    assert not created.exists()


async def test_input_while_held_is_bounded_by_flow_control(gateway: SshGateway) -> None:
    command = "touch review-flood-input && wc -c"
    flood = 16 * 1024 * 1024
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        channel.write(b"x" * flood)
        await asyncio.sleep(1.0)
        still_queued = channel.chan.get_write_buffer_size()
        await decide(gateway, request.id, approve=False)
        channel.close()
    # The gateway took at most its 1 MiB buffer, the channel window and a packet: the rest waits at the agent.
    assert flood - still_queued < 1024 * 1024 + 2 * WINDOW


async def test_output_the_agent_does_not_read_is_bounded_by_flow_control(gateway: SshGateway) -> None:
    command = "head -c 300000000 /dev/zero # review-unread-output"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.request(b"exec", String(command))  # and never start reading
        await asyncio.sleep(1.5)
        moved = [
            session.summary()["bytes"]
            for session in gateway.gateway.sessions.list()
            if session.protocol == "ssh" and session.counters is not None
        ]
        channel.close()
    assert moved, "the session was not listed"
    assert max(moved) < 16 * 1024 * 1024, f"{max(moved)} bytes left the upstream for an agent that reads none"


async def test_channels_on_one_connection_are_decided_independently(
    gateway: SshGateway, target: SshTarget
) -> None:
    victim = target.workdir / "victim-independent"
    victim.write_text("must survive")
    held_command = "touch review-independent"
    async with agent(gateway) as conn:
        held = await raw_channel(conn)
        assert await held.exec(held_command)
        request = await pending_request(gateway, held_command)
        allowed, denied = await raw_channel(conn), await raw_channel(conn)
        allowed_result, denied_result = await asyncio.gather(
            finish_exec(allowed, "echo while-another-is-held"),
            finish_exec(denied, "rm -f victim-independent"),
        )
        assert await approval_state(gateway, request.id) == "pending"
        await decide(gateway, request.id, approve=False)
        held_result = await held.finished()
    assert bytes(allowed_result.stdout) == b"while-another-is-held\n" and allowed_result.exit_status == 0
    assert denied_result.exit_status == 126 and victim.exists()
    assert held_result.exit_status == 126
    assert not (target.workdir / "review-independent").exists()


@pytest.mark.parametrize("subsystem", ["sftp", "netconf", "shell", "exec"])
async def test_subsystems_no_list_allows_by_name_are_refused(gateway: SshGateway, subsystem: str) -> None:
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert not await channel.request(b"subsystem", String(subsystem))
        # the refused channel cannot be reused for anything else either
        assert not await channel.exec("echo reused")
        channel.close()


async def test_forwarding_variants_no_list_allows_are_refused(gateway: SshGateway, target: SshTarget) -> None:
    # The policy does not name port_forward: it would be reviewed, and review is a refusal for a tunnel.
    async with agent(gateway) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection(target.host, target.port)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_unix_connection("/run/sshd.sock")
        with pytest.raises((asyncssh.Error, asyncssh.ChannelListenError)):
            await conn.start_server(lambda: None, "127.0.0.1", 0)
        with pytest.raises((asyncssh.Error, asyncssh.ChannelListenError)):
            await conn.start_unix_server(lambda: None, str(target.workdir / "review.sock"))
        result = await conn.run("echo after-forwards", encoding=None, timeout=20)
    assert result.stdout == b"after-forwards\n"
    assert not (target.workdir / "review.sock").exists()


async def test_a_denied_line_is_answered_without_echoing_it(gateway: SshGateway) -> None:
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        session = await finish_exec(channel, "rm -f carol.jones@example.org 078-05-1120")
    assert session.exit_status == 126
    assert bytes(session.stderr).startswith(b"hoop: command denied by policy")
    assert b"carol" not in session.stderr and b"078-05" not in session.stderr


async def test_the_token_never_reaches_the_logs(
    gateway: SshGateway, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy.identity.local_issuer import LocalIssuer

    token = gateway.token()
    # Signed by the trusted issuer, but for another audience: refused after the signature was checked.
    foreign = LocalIssuer.load_or_create(gateway.state_dir).mint(
        "ci-bot", ["ci-agents"], audience="other", ttl_seconds=600
    )
    with caplog.at_level(logging.DEBUG):
        async with asyncssh.connect(
            gateway.host, gateway.port, username="no-such-connection", password=token, known_hosts=None,
            client_keys=None, agent_path=None, config=[], preferred_auth=["password"],
        ) as conn:  # fmt: skip
            refused = await conn.run("echo x", encoding=None, timeout=20)
        with pytest.raises(asyncssh.PermissionDenied):
            async with agent(gateway, foreign):
                pass
        with pytest.raises(asyncssh.PermissionDenied):
            async with agent(gateway, token[:-4] + "AAAA"):
                pass
        await asyncio.sleep(0.3)
    assert refused.exit_status == 255
    assert b'"no-such-connection" is not configured' in refused.stderr
    logged = caplog.text
    assert "ssh login refused" in logged  # the refusals were logged, and so this test saw them
    for secret in (token, foreign, token.split(".")[2], foreign.split(".")[2]):
        assert secret not in logged


async def test_a_protocol_error_on_one_connection_leaves_anothers_held_command_alone(
    gateway: SshGateway, target: SshTarget
) -> None:
    command = "touch review-survives-neighbour"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        async with agent(gateway) as neighbour:
            broken = await raw_channel(neighbour)
            # pty modes cut mid-value: asyncssh ends that connection with a protocol error
            broken.send_request(
                b"pty-req", String("xterm"), UInt32(80), UInt32(24), UInt32(0), UInt32(0), String(b"\x01\x00")
            )
            await asyncio.wait_for(neighbour.wait_closed(), 10)
        assert await approval_state(gateway, request.id) == "pending"
        await decide(gateway, request.id, approve=True)
        channel.write_eof()
        session = await channel.finished()
    assert session.exit_status == 0
    assert (target.workdir / "review-survives-neighbour").exists()


async def _kill_as_soon_as_listed(gateway: SshGateway, marker: str) -> str:
    """On the gateway's loop: kill the SSH session the instant it is listed (before its hold is stored)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for session in gateway.gateway.sessions.list():
            if session.protocol == "ssh" and session.held == 0 and session.counters is not None:
                gateway.gateway.kill_local(session.id, f"hoop: killed by review ({marker})")
                return session.id
        await asyncio.sleep(0)
    raise AssertionError("the session was never listed")


# Review finding F11, fixed (was low).
async def test_a_kill_before_the_request_is_stored_leaves_no_pending_request(gateway: SshGateway) -> None:
    # The kill races the store's writer thread: repeated, so the window is hit on almost every run.
    stranded: list[ApprovalRecord] = []
    for attempt in range(12):
        async with agent(gateway) as conn:
            killer = asyncio.run_coroutine_threadsafe(
                _kill_as_soon_as_listed(gateway, f"early {attempt}"),
                gateway.thread.loop,  # type: ignore[attr-defined]
            )
            channel = await raw_channel(conn)
            await channel.exec(f"touch review-killed-early-{attempt}")
            session_id = await asyncio.wrap_future(killer)
            await channel.finished()
        await asyncio.sleep(0.2)
        everything = await on_gateway(gateway, gateway.gateway.store.list_approvals(states=["pending"]))
        stranded += [request for request in everything if request.session_id == session_id]
        if stranded:
            break
    assert not stranded, "a request of a killed session is still pending"


# Review finding F12, fixed (was medium).
async def test_escape_sequences_in_a_held_command_never_reach_the_approvers_terminal(
    gateway: SshGateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import click.utils

    from hoop_tui.commands.control_cli import print_table

    # click strips ANSI styles only when stdout is not a terminal; the approver's is one.
    monkeypatch.setattr(click.utils, "should_strip_ansi", lambda stream=None, color=None: False)

    # Runs `touch`; a terminal shows only "ls -l" (erase the line, back to column 1).
    command = "touch review-escape # \x1b[2K\x1b[1Gls -l"
    async with agent(gateway) as conn:
        channel = await raw_channel(conn)
        assert await channel.exec(command)
        request = await pending_request(gateway, command)
        channel.close()
    capsys.readouterr()
    print_table([{"statement": request.statement}], [("STATEMENT", lambda row: row["statement"])])
    shown = capsys.readouterr().out
    assert "review-escape" in shown
    assert "\x1b" not in shown


async def test_a_shell_the_policy_denies_never_reaches_the_upstream_with_or_without_a_pty(
    observed: tuple[SshGateway, list[dict[str, object]]],
) -> None:
    running, seen = observed
    async with agent(running) as conn:
        for with_pty in (False, True):
            channel = await raw_channel(conn)
            if with_pty:
                assert await channel.pty()
            assert await channel.request(b"shell")
            await channel.chan._start_reading()
            channel.write(b"echo typed-into-a-denied-shell\n")
            session = await channel.finished()
            assert session.exit_status == 126
            assert b"interactive shell denied by policy" in session.stderr
    assert seen == []


async def test_oversized_and_undecodable_command_lines_are_refused_before_the_upstream(
    observed: tuple[SshGateway, list[dict[str, object]]],
) -> None:
    running, seen = observed
    async with agent(running) as conn:
        huge = await finish_exec(await raw_channel(conn), "echo " + "a" * 200_000)
        undecodable = await raw_channel(conn)
        assert not await undecodable.request(b"exec", String(b"echo \xff\xfe"))
        undecodable.close()
    assert huge.exit_status == 126
    assert len(huge.stderr) < 200  # the refusal does not echo the line back
    assert seen == []
