"""SSH sessions as the gateway sees them: pty resizes, kills, token expiry, sftp by name, session list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.ssh.gateway_fixture import SSH_POLICY, SshGateway, start_ssh_gateway
from tests.ssh_targets import SshTarget, ssh_popen, start_sshd

POLICY = SSH_POLICY.replace('allow = ["exec"]', 'allow = ["exec", "shell", "sftp"]')


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTarget]:
    with start_sshd(tmp_path_factory.mktemp("upstream")) as started:
        yield started


@pytest.fixture
def gateway(tmp_path: Path, target: SshTarget) -> Iterator[SshGateway]:
    running = start_ssh_gateway(tmp_path, target, policies=POLICY)
    try:
        yield running
    finally:
        running.stop()


def connect(gateway: SshGateway, token: str) -> asyncssh.connection._ConnectionContext:  # type: ignore[name-defined]
    return asyncssh.connect(
        gateway.host,
        gateway.port,
        username="web1",
        password=token,
        known_hosts=None,
        client_keys=None,
        agent_path=None,
        config=[],
        preferred_auth=["password"],
    )


async def read_until(process: asyncssh.SSHClientProcess, marker: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            chunk = await process.stdout.read(4096)
            if not chunk:
                break
            seen += chunk
    return seen


async def test_a_pty_resize_reaches_the_upstream_terminal(gateway: SshGateway) -> None:
    async with connect(gateway, gateway.token()) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
        # The markers are computed by the shell: the echo of the typed line must not count as the answer.
        process.stdin.write(b"stty size; echo first-$((1+1))\r")
        first = await read_until(process, b"first-2\r\n")
        assert b"24 80" in first
        process.change_terminal_size(132, 43)
        await asyncio.sleep(0.2)
        process.stdin.write(b"stty size; echo second-$((1+1))\r")
        second = await read_until(process, b"second-2\r\n")
        assert b"43 132" in second
        process.stdin.write(b"exit\r")
        await asyncio.wait_for(process.wait(), 10)
    events = await asyncio.to_thread(_recorded_events, gateway)
    assert ["ssh.resize", 132, 43] in [event[1:] for event in events]


def _recorded_events(gateway: SshGateway) -> list[list]:
    from recordings.reader import RecordingReader

    deadline = time.monotonic() + 10
    while gateway.gateway.sessions.list() and time.monotonic() < deadline:
        time.sleep(0.05)
    events: list[list] = []
    for path in gateway.recordings_dir.rglob("*.hrec"):
        while not RecordingReader(path).sealed and time.monotonic() < deadline:  # sealed on a thread
            time.sleep(0.05)
        events += list(RecordingReader(path).iter_events())
    return events


def test_an_operator_kill_ends_the_session_with_a_message(gateway: SshGateway) -> None:
    client = ssh_popen(["sleep 30"], token=gateway.token(), port=gateway.port, user="web1")
    try:
        deadline = time.monotonic() + 10
        while not gateway.gateway.sessions.list() and time.monotonic() < deadline:
            time.sleep(0.05)
        (session,) = gateway.gateway.sessions.list()
        assert session.protocol == "ssh"
        summary = session.summary()
        assert summary["identity"] == "ci-bot" and summary["statements"] == 1
        killed = gateway.thread.call(_kill(gateway, session.id))  # type: ignore[attr-defined]
        assert killed
        _stdout, stderr = client.communicate(timeout=10)
    finally:
        client.kill()
    assert client.returncode == 255
    assert b"hoop: killed by test" in stderr


async def _kill(gateway: SshGateway, session_id: str) -> bool:
    return gateway.gateway.kill_local(session_id, "hoop: killed by test")


def test_a_session_ends_when_its_token_expires(gateway: SshGateway) -> None:
    token = gateway.token(ttl=2)
    started = time.monotonic()
    client = ssh_popen(["sleep 30"], token=token, port=gateway.port, user="web1")
    try:
        _stdout, stderr = client.communicate(timeout=20)
    finally:
        client.kill()
    assert client.returncode == 255
    assert b"token expired" in stderr
    assert time.monotonic() - started < 15


async def test_sftp_runs_when_the_policy_allows_it_by_name(gateway: SshGateway, target: SshTarget) -> None:
    if target.kind == "openssh" and not Path("/usr/lib/openssh/sftp-server").exists():
        pytest.skip("this OpenSSH server has no sftp-server program")
    (target.workdir / "report.txt").write_text("quarterly numbers\n")
    async with connect(gateway, gateway.token()) as conn, conn.start_sftp_client() as sftp:
        names = await sftp.listdir(str(target.workdir))
        assert "report.txt" in names


async def test_sftp_is_refused_when_no_list_allows_it(tmp_path: Path, target: SshTarget) -> None:
    running = await asyncio.to_thread(start_ssh_gateway, tmp_path, target)
    try:
        async with connect(running, running.token()) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                async with conn.start_sftp_client():
                    pass
    finally:
        await asyncio.to_thread(running.stop)


FORWARD_POLICY = SSH_POLICY.replace('allow = ["exec"]', 'allow = ["exec", "port_forward"]')


async def test_a_tunnel_is_a_session_an_operator_can_kill_and_it_is_recorded(
    tmp_path: Path, target: SshTarget
):
    running = await asyncio.to_thread(start_ssh_gateway, tmp_path, target, FORWARD_POLICY)
    try:
        async with connect(running, running.token()) as conn:
            reader, writer = await conn.open_connection(target.host, target.port)
            banner = await asyncio.wait_for(reader.readline(), 10)
            assert banner.startswith(b"SSH-2.0-OpenSSH") or banner.startswith(b"SSH-2.0-")
            (session,) = running.gateway.sessions.list()
            assert session.protocol == "ssh" and session.summary()["bytes"] >= len(banner)
            assert await asyncio.to_thread(running.thread.call, _kill(running, session.id))  # type: ignore[attr-defined]
            assert await asyncio.wait_for(reader.read(), 10) == b"", "the kill closed the tunnel"
            writer.close()
        events = await asyncio.to_thread(_recorded_events, running)
        kinds = {event[1]: event for event in events}
        assert kinds["ssh.forward"][2] == {"destination": f"{target.host}:{target.port}"}
        assert kinds["ssh.transfer"][2]["received"] >= len(banner)
        assert "ssh.output" not in kinds, "a tunnel's payload is not recorded"
    finally:
        await asyncio.to_thread(running.stop)
