"""The SSH data path end to end: the real OpenSSH client, the gateway, a real upstream sshd."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from proxy.identity.model import Identity
from recordings.reader import RecordingReader
from tests.ssh.gateway_fixture import SSH_POLICY, SshGateway, start_ssh_gateway
from tests.ssh_targets import SshTarget, ssh_client, ssh_popen, start_sshd

HELD = re.compile(
    rb"hoop: command held for review \(request (r[0-9a-f]+)\); waiting up to 20s for an approver"
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTarget]:
    with start_sshd(tmp_path_factory.mktemp("upstream")) as started:
        yield started


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, target: SshTarget) -> Iterator[SshGateway]:
    running = start_ssh_gateway(tmp_path_factory.mktemp("gateway"), target)
    try:
        yield running
    finally:
        running.stop()


def oncall() -> Identity:
    return Identity(
        subject="alice",
        groups=("oncall",),
        issuer="test",
        expires_at=time.time() + 600,
        token_id=None,
        claims={},
    )


def run(gateway: SshGateway, *command: str, **kwargs: object):
    kwargs.setdefault("token", gateway.token())
    return ssh_client(list(command), port=gateway.port, user="web1", **kwargs)  # type: ignore[arg-type]


def wait_for_pending(gateway: SshGateway, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = gateway.thread.call(gateway.gateway.store.list_approvals(states=["pending"]))  # type: ignore[attr-defined]
        if pending:
            return pending[0]
        time.sleep(0.05)
    raise AssertionError("no command was held for review")


def decide(gateway: SshGateway, request_id: str, approve: bool, reason: str | None = None):
    coroutine = gateway.gateway.approvals.decide(request_id, oncall(), approve=approve, justification=reason)
    return gateway.thread.call(coroutine)  # type: ignore[attr-defined]


def raw_recordings(gateway: SshGateway) -> bytes:
    """Every recording, raw and with each zstd frame decompressed: what a reader of the disk would see."""
    out = bytearray()
    for path in gateway.recordings_dir.rglob("*.hrec"):
        data = path.read_bytes()
        out += data
        for frame in re.finditer(rb"\x28\xb5\x2f\xfd", data):  # every zstd frame start
            try:
                out += zstandard.ZstdDecompressor().decompressobj().decompress(data[frame.start() :])
            except zstandard.ZstdError:
                continue
    return bytes(out)


def wait_until_ended(gateway: SshGateway, timeout: float = 10.0) -> None:
    """Until no session is live and every recording is sealed (sealing runs on a thread after the end)."""
    deadline = time.monotonic() + timeout
    while gateway.gateway.sessions.list() and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in gateway.recordings_dir.rglob("*.hrec"):
        while not RecordingReader(path).sealed and time.monotonic() < deadline:
            time.sleep(0.05)


def test_an_allowed_command_runs_on_the_upstream_and_its_output_is_masked(
    gateway: SshGateway, target: SshTarget
):
    result = run(gateway, "echo hello alice@example.com; echo ssn 078-05-1120 >&2; sh -c 'exit 3'")
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"hello [EMAIL]\n"
    assert b"ssn [US_SSN]" in result.stderr
    assert b"alice@example.com" not in result.stdout + result.stderr


def test_the_output_of_an_upstream_file_is_masked_even_split_across_writes(
    gateway: SshGateway, target: SshTarget
):
    (target.workdir / "app.log").write_text(
        "user bob.smith@corp.example logged in\n" * 3 + "key AKIAIOSFODNN7EXAMPLE used\n"
    )
    result = run(gateway, "cat app.log; printf 'carol.jones@exa'; sleep 0.05; printf 'mple.org done\\n'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"[EMAIL]") == 4
    assert b"@corp.example" not in result.stdout
    assert b"AKIAIOSFODNN7EXAMPLE" not in result.stdout
    assert b"carol.jones" not in result.stdout and b"mple.org" not in result.stdout
    wait_until_ended(gateway)
    recorded = raw_recordings(gateway)
    assert b"[EMAIL]" in recorded  # the recording is readable, and holds the masked output
    for planted in (b"bob.smith@corp.example", b"AKIAIOSFODNN7EXAMPLE", b"carol.jones@example.org"):
        assert planted not in recorded
    # The command line itself holds the two halves (neither is an address alone); the output never does.
    outputs = b"".join(
        event[3]
        for recording in gateway.recordings_dir.rglob("*.hrec")
        for event in RecordingReader(recording).iter_events()
        if event[1] == "ssh.output"
    )
    assert b"carol.jones" not in outputs and b"mple.org" not in outputs


def test_a_denied_command_never_runs_and_exits_126(gateway: SshGateway, target: SshTarget):
    victim = target.workdir / "victim-denied"
    victim.write_text("still here")
    result = run(gateway, f"rm -f {victim}")
    assert result.returncode == 126
    assert b"hoop: command denied by policy" in result.stderr
    assert b"deny_commands: rm" in result.stderr
    assert victim.exists()


def test_a_held_command_runs_once_approved(gateway: SshGateway, target: SshTarget):
    created = target.workdir / "approved-file"
    client = ssh_popen([f"touch {created}"], token=gateway.token(), port=gateway.port, user="web1")
    try:
        request = wait_for_pending(gateway)
        assert request.statement == f"touch {created}"
        assert request.protocol == "ssh"
        time.sleep(0.2)
        assert not created.exists()  # nothing runs before the decision
        decide(gateway, request.id, approve=True)
        _stdout, stderr = client.communicate(timeout=20)
    finally:
        client.kill()
    assert client.returncode == 0, stderr
    assert HELD.search(stderr).group(1).decode() == request.id  # type: ignore[union-attr]
    assert created.exists()


def test_a_held_command_denied_by_an_approver_never_runs(gateway: SshGateway, target: SshTarget):
    created = target.workdir / "denied-file"
    client = ssh_popen([f"touch {created}"], token=gateway.token(), port=gateway.port, user="web1")
    try:
        request = wait_for_pending(gateway)
        decide(gateway, request.id, approve=False, reason="not during the freeze")
        _stdout, stderr = client.communicate(timeout=20)
    finally:
        client.kill()
    assert client.returncode == 126
    assert b"not during the freeze" in stderr
    assert b"alice" in stderr
    time.sleep(0.3)
    assert not created.exists()


def test_a_disconnect_while_held_cancels_the_request_and_nothing_runs(gateway: SshGateway, target: SshTarget):
    created = target.workdir / "abandoned-file"
    client = ssh_popen([f"touch {created}"], token=gateway.token(), port=gateway.port, user="web1")
    request = wait_for_pending(gateway)
    client.kill()
    client.wait(timeout=10)
    deadline = time.monotonic() + 10
    state = "pending"
    while state == "pending" and time.monotonic() < deadline:
        record = gateway.thread.call(gateway.gateway.store.get_approval(request.id))  # type: ignore[attr-defined]
        state = record.state
        time.sleep(0.05)
    assert state == "cancelled"
    with pytest.raises(Exception, match="already cancelled"):
        decide(gateway, request.id, approve=True)
    time.sleep(0.3)
    assert not created.exists()


def test_a_bad_token_is_refused_without_detail(gateway: SshGateway):
    result = run(gateway, "ls", token="not-a-token")
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert b"token" not in result.stderr.lower()


def test_an_unknown_connection_is_named_in_one_clear_message(gateway: SshGateway):
    result = ssh_client(["ls"], token=gateway.token(), port=gateway.port, user="nosuchhost")
    assert result.returncode == 255
    assert result.stderr.strip() == b'hoop: connection "nosuchhost" is not configured on this gateway'


def test_an_identity_no_policy_admits_is_told_so(gateway: SshGateway):
    token = gateway.token(subject="intruder", groups=("visitors",))
    result = run(gateway, "ls", token=token)
    assert result.returncode == 255
    assert b'no policy allows "intruder" (groups: visitors) to use connection "web1"' in result.stderr


def test_port_forwarding_is_refused(gateway: SshGateway, target: SshTarget):
    result = ssh_client(
        [], token=gateway.token(), port=gateway.port, user="web1", options=["-W", f"127.0.0.1:{target.port}"]
    )
    assert result.returncode == 255
    assert b"stdio forwarding failed" in result.stderr
    assert b"SSH-2.0" not in result.stdout  # the upstream's sshd banner never came through


def test_a_shell_is_a_session_level_decision(gateway: SshGateway):
    # This policy names no "shell": the session would be held; a client with no pty gets the hold message.
    client = ssh_popen([], token=gateway.token(), port=gateway.port, user="web1", pty=True)
    try:
        request = wait_for_pending(gateway)
        assert request.kind == "shell"
        decide(gateway, request.id, approve=False, reason="no shells")
        _stdout, stderr = client.communicate(timeout=20)
    finally:
        client.kill()
    assert client.returncode == 126
    assert b"no shells" in _stdout + stderr


def test_an_upstream_host_key_mismatch_is_refused(tmp_path: Path, target: SshTarget):
    wrong = tmp_path / "wrong_known_hosts"
    other = start_sshd(tmp_path / "other")
    try:
        wrong.write_text(
            other.known_hosts.read_text().replace(f"[127.0.0.1]:{other.port}", f"[127.0.0.1]:{target.port}")
        )
    finally:
        other.stop()
    impostor = SshTarget(
        target.host,
        target.port,
        target.user,
        target.key_file,
        wrong,
        target.workdir,
        target.kind,
        lambda: None,
    )
    running = start_ssh_gateway(tmp_path / "gw", impostor)
    try:
        result = ssh_client(["ls"], token=running.token(), port=running.port, user="web1")
    finally:
        running.stop()
    assert result.returncode == 255
    assert b"does not match its known_hosts entry" in result.stderr


def test_an_unreachable_upstream_is_one_clear_message(tmp_path: Path, target: SshTarget):
    down = SshTarget(
        target.host,
        1,
        target.user,
        target.key_file,
        target.known_hosts,
        target.workdir,
        target.kind,
        lambda: None,
    )
    running = start_ssh_gateway(tmp_path / "gw", down)
    try:
        result = ssh_client(["ls"], token=running.token(), port=running.port, user="web1")
        assert result.returncode == 255
        assert result.stderr.strip() == b'hoop: the upstream of connection "web1" is unavailable'
        # ... and the gateway carries on for everyone else
        assert running.gateway.ssh_address is not None
    finally:
        running.stop()


SHELL_POLICY = SSH_POLICY.replace('allow = ["exec"]', 'allow = ["exec", "shell"]')


def test_an_interactive_pty_session_driven_with_keystrokes(tmp_path: Path, target: SshTarget):
    running = start_ssh_gateway(tmp_path / "gw", target, policies=SHELL_POLICY)
    try:
        client = ssh_popen([], token=running.token(), port=running.port, user="web1", pty=True)
        try:
            assert client.stdin is not None
            client.stdin.write(b"echo pty-$((6*7)) dave@example.net\r")
            client.stdin.flush()
            time.sleep(0.5)
            client.stdin.write(b"exit\r")
            client.stdin.flush()
            stdout, _stderr = client.communicate(timeout=20)
        finally:
            client.kill()
        assert b"pty-42 [EMAIL]" in stdout
        # Not even in the echo of the typed line, which readline redraws across the right margin.
        assert b"dave@" not in stdout
        wait_until_ended(running)
        recordings = list(running.recordings_dir.rglob("*.hrec"))
        assert len(recordings) == 1
        reader = RecordingReader(recordings[0])
        assert reader.header["pty"] is True
        assert reader.terminal
        screen = reader.screen_at(reader.duration_us).text
        assert "pty-42 [EMAIL]" in screen
        assert "dave" not in screen
        assert b"dave@example.net" not in raw_recordings(running)  # typed input is masked when recorded
        exported = subprocess.run(
            [sys.executable, "-m", "hoop_tui.cli", "export", str(recordings[0]), "--format", "asciicast"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        cast = tmp_path / "session.cast"
        cast.write_bytes(exported.stdout)
        played = subprocess.run(
            [sys.executable, "-m", "asciinema", "cat", str(cast)],
            capture_output=True, timeout=60, check=True, start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert b"pty-42 [EMAIL]" in played.stdout
    finally:
        running.stop()


def test_the_recording_holds_the_command_its_decision_and_exit(gateway: SshGateway):
    before = set(gateway.recordings_dir.rglob("*.hrec"))
    result = run(gateway, "echo recorded-line")
    assert result.returncode == 0
    wait_until_ended(gateway)
    (path,) = set(gateway.recordings_dir.rglob("*.hrec")) - before
    events = [event for event in RecordingReader(path).iter_events() if event[1] != "screen.keyframe"]
    kinds = [event[1] for event in events]
    assert kinds[:2] == ["ssh.exec", "policy.decision"]
    assert events[0][2] == "echo recorded-line"
    assert events[1][2]["decision"] == "allow"
    assert ["ssh.output", "stdout", b"recorded-line\n"] in [event[1:] for event in events]
    assert ["ssh.exit", 0] in [event[1:] for event in events]
    assert os.path.getsize(path) > 0


def test_stdin_reaches_the_command_and_a_large_output_comes_back_whole(gateway: SshGateway):
    lines = b"".join(b"line %d of the input, nothing personal\n" % number for number in range(20_000))
    result = run(gateway, "tr a-z A-Z", input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stdout == lines.upper()


def test_input_typed_while_held_is_delivered_once_approved(gateway: SshGateway, target: SshTarget):
    created = target.workdir / "typed-while-held"
    client = ssh_popen(
        [f"touch {created} && tr a-z A-Z"], token=gateway.token(), port=gateway.port, user="web1"
    )
    try:
        request = wait_for_pending(gateway)
        assert client.stdin is not None
        client.stdin.write(b"typed before the decision\n")
        client.stdin.flush()
        decide(gateway, request.id, approve=True)
        stdout, stderr = client.communicate(input=b"", timeout=20)  # then end of input
    finally:
        client.kill()
    assert client.returncode == 0, stderr
    assert stdout == b"TYPED BEFORE THE DECISION\n"
    assert created.exists()


def test_garbage_on_the_ssh_port_ends_that_connection_only(gateway: SshGateway):
    import socket

    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.recv(256)  # the server's version line
        sock.sendall(b"SSH-2.0-evil\r\n" + bytes(range(256)) * 64)
        sock.settimeout(1)  # a partial packet just waits for its length (then the login timeout)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, TimeoutError):
            pass
    result = run(gateway, "echo still-serving")
    assert result.returncode == 0
    assert result.stdout == b"still-serving\n"


def test_remote_forwarding_is_always_refused(gateway: SshGateway):
    options = ["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"]
    result = run(gateway, "echo", "should-not-run", options=options)
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr
    assert b"should-not-run" not in result.stdout


def test_the_agents_ssh_agent_never_reaches_the_upstream(gateway: SshGateway, tmp_path: Path):
    agent = subprocess.run(
        ["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True
    )
    if agent.returncode != 0:
        pytest.skip("ssh-agent is not available")
    pid = re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout)
    try:
        environment = {"SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
        os.environ.update(environment)
        try:
            result = run(gateway, "echo agent=[$SSH_AUTH_SOCK]", options=["-A"])
        finally:
            del os.environ["SSH_AUTH_SOCK"]
    finally:
        if pid:
            os.kill(int(pid.group(1)), 15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"agent=[]\n"


def test_a_line_still_streaming_in_is_never_cut_by_the_idle_flush(gateway: SshGateway):
    # Each piece arrives well within the 200 ms idle interval, the whole line takes longer than it: the
    # held line must wait for the newline, not be flushed (half an address each side) when a timer fires.
    pieces = ["carol", ".jones", "@exam", "ple", ".org", " done\\n"]
    script = "; sleep 0.06; ".join(f"printf '{piece}'" for piece in pieces)
    result = run(gateway, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"[EMAIL] done\n"
