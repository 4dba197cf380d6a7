"""The demo's SSH host: an asyncssh server that runs real commands in a scratch directory."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import getpass
import os
import pty
import shutil
import signal
import struct
import sys
import termios
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

READ_CHUNK = 64 * 1024
# Above this much unread input for the child, stop reading the channel so the client's window closes.
INPUT_HIGH_WATER = 256 * 1024
# A background job that keeps stdout open must not keep the session alive forever after the command exits.
OUTPUT_GRACE_SECONDS = 2.0
KILL_GRACE_SECONDS = 1.0
SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"
DEMO_PROMPT = r"\u@demo-web1:\w\$ "

# Run as the child on the pty: become a session leader and take the pty as controlling terminal, so the
# kernel delivers ^C and window-change signals to the shell's foreground job. subprocess has no option for
# this, and a preexec_fn is unsafe in the threaded demo process.
_PTY_TRAMPOLINE = (
    "import fcntl, os, sys, termios\n"
    "os.setsid()\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def known_hosts_pattern(host: str, port: int) -> str:
    """The host field of a known_hosts line: bare on port 22, `[host]:port` elsewhere (OpenSSH's rule)."""
    return host if port == 22 else f"[{host}]:{port}"


def load_authorized_keys(source: asyncssh.SSHKey | Path | str) -> asyncssh.SSHAuthorizedKeys:
    """The keys allowed to log in: a key, or a file with a public key, authorized_keys or a private key."""
    if isinstance(source, asyncssh.SSHKey):
        return asyncssh.import_authorized_keys(source.export_public_key().decode())
    text = Path(source).read_text()
    if "PRIVATE KEY" in text:
        private = asyncssh.import_private_key(text)
        return asyncssh.import_authorized_keys(private.export_public_key().decode())
    return asyncssh.import_authorized_keys(text)


def interactive_shell() -> list[str]:
    """bash when the host has it (line editing for the demo's humans), else POSIX sh."""
    bash = shutil.which("bash", path=SEARCH_PATH)
    # --norc: the host's /etc/bash.bashrc would replace the demo prompt with the real machine's name.
    return [bash, "--norc", "-i"] if bash else ["/bin/sh", "-i"]


def child_environment(workdir: Path, term_type: str | None) -> dict[str, str]:
    """A minimal environment: nothing of the demo process (tokens, passwords) leaks into the target."""
    user = getpass.getuser()
    env = {
        "PATH": SEARCH_PATH,
        "HOME": str(workdir),
        "PWD": str(workdir),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
        "PS1": DEMO_PROMPT,
    }
    if term_type:
        env["TERM"] = term_type
    return env


def set_window_size(fd: int, size: tuple[int, int, int, int]) -> None:
    """Give the pty (columns, rows, pixel width, pixel height); the kernel signals SIGWINCH to its job."""
    columns, rows, pixel_width, pixel_height = size
    packed = struct.pack("HHHH", rows or 24, columns or 80, pixel_width, pixel_height)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, packed)


class _PtyMaster:
    """Non-blocking reads and buffered writes on a pty master fd, on whatever event loop runs."""

    def __init__(self, fd: int, session: _CommandSession) -> None:
        self.fd = fd
        self._session = session
        self._loop = asyncio.get_running_loop()
        self._pending = bytearray()
        self._eof_after_drain = False
        self.output_done = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read_ready)

    def pause_reading(self) -> None:
        self._loop.remove_reader(self.fd)

    def resume_reading(self) -> None:
        if not self.output_done.done():
            self._loop.add_reader(self.fd, self._read_ready)

    def _read_ready(self) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO is how a pty master says every slave end closed: the session's output is over.
            if exc.errno != errno.EIO:
                self._session.log_child_error(exc)
            data = b""
        if not data:
            self._finish_output()
            return
        self._session.forward_output(data, stderr=False)

    def _finish_output(self) -> None:
        self._loop.remove_reader(self.fd)
        if not self.output_done.done():
            self.output_done.set_result(None)

    def write(self, data: bytes) -> None:
        if self._pending:
            self._pending += data
        else:
            written = self._write_some(data)
            if written < len(data):
                self._pending += data[written:]
                self._loop.add_writer(self.fd, self._write_ready)

    def buffered(self) -> int:
        return len(self._pending)

    def write_eof(self) -> None:
        # A pty has no half-close; ^D at the start of a line is what the shell reads as end of input.
        self.write(b"\x04")

    def _write_some(self, data: bytes) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            # The shell is gone; what the client still types has nowhere to go.
            self._pending.clear()
            return len(data)

    def _write_ready(self) -> None:
        written = self._write_some(bytes(self._pending))
        del self._pending[:written]
        if not self._pending:
            self._loop.remove_writer(self.fd)
            self._session.input_drained()

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        self._loop.remove_writer(self.fd)
        self._finish_output()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _CommandSession(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    """One SSH session: an exec'd command on pipes, or a command or shell on a pty."""

    def __init__(self, target: DemoSshTarget) -> None:
        self._target = target
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._command: str | None = None
        self._term_type: str | None = None
        self._term_size: tuple[int, int, int, int] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._pty: _PtyMaster | None = None
        self._early_input: list[bytes] = []
        self._early_eof = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False
        self._task: asyncio.Future[None] | None = None
        self._drain_task: asyncio.Future[None] | None = None

    # -- asyncssh callbacks -------------------------------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        self._term_type = term_type
        self._term_size = term_size
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False  # no sftp, no other subsystems: the demo host only runs commands

    def session_started(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._target.sessions.add(self)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._pty is not None:
            self._pty.write(data)
            if self._pty.buffered() > INPUT_HIGH_WATER:
                self._pause_input()
        elif self._process is not None and self._process.stdin is not None:
            stdin = self._process.stdin
            if stdin.transport.is_closing():
                return  # the command stopped reading; the client's extra input is dropped, as sshd does
            stdin.write(data)
            if stdin.transport.get_write_buffer_size() > INPUT_HIGH_WATER:
                self._pause_input()
                if self._drain_task is None or self._drain_task.done():
                    self._drain_task = asyncio.ensure_future(self._drain_stdin(stdin))
        else:
            self._early_input.append(data)

    def eof_received(self) -> bool:
        if self._pty is not None:
            self._pty.write_eof()
        elif self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
        else:
            self._early_eof = True
        return True  # keep our side open: output and the exit status still have to flow back

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._term_size = (width, height, pixwidth, pixheight)
        if self._pty is not None:
            with contextlib.suppress(OSError):
                set_window_size(self._pty.fd, self._term_size)

    def signal_received(self, signal_name: str) -> None:
        number = getattr(signal, "SIG" + signal_name, None)
        if isinstance(number, signal.Signals):
            self._signal_children(number)

    def break_received(self, msec: int) -> bool:
        return False

    def pause_writing(self) -> None:
        self._writable.clear()
        if self._pty is not None:
            self._pty.pause_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        if self._pty is not None:
            self._pty.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        self._target.sessions.discard(self)
        self.terminate()

    # -- the child process --------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if self._term_type is not None:
                await self._start_on_pty()
            else:
                await self._start_on_pipes()
        except OSError as exc:
            self._send_stderr(f"demo target: cannot start the command: {exc.strerror}\r\n".encode())
            self._send_exit(127)
            return
        assert self._process is not None
        if self._closed:  # the client left while the command was starting
            self.terminate()
        for data in self._early_input:
            self.data_received(data, None)
        if self._early_eof:
            self.eof_received()
        outputs = self._output_waiters()
        returncode = await self._process.wait()
        if outputs:
            await asyncio.wait(outputs, timeout=OUTPUT_GRACE_SECONDS)
        for pending in outputs:
            pending.cancel()
        if self._pty is not None:
            self._pty.close()
        self._send_exit(returncode)

    async def _start_on_pipes(self) -> None:
        argv = ["/bin/sh", "-c", self._command] if self._command is not None else ["/bin/sh", "-s"]
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self._target.workdir,
            env=child_environment(self._target.workdir, None),
            start_new_session=True,  # its own process group, so a disconnect can end the whole job
        )

    async def _start_on_pty(self) -> None:
        master, slave = pty.openpty()
        try:
            if self._term_size is not None:
                set_window_size(slave, self._term_size)
            argv = ["/bin/sh", "-c", self._command] if self._command is not None else interactive_shell()
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-c", _PTY_TRAMPOLINE, *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self._target.workdir,
                env=child_environment(self._target.workdir, self._term_type),
            )  # fmt: skip
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._pty = _PtyMaster(master, self)

    def _output_waiters(self) -> list[asyncio.Future[None]]:
        if self._pty is not None:
            return [self._pty.output_done]
        assert self._process is not None and self._process.stdout and self._process.stderr
        return [
            asyncio.ensure_future(self._pump(self._process.stdout, stderr=False)),
            asyncio.ensure_future(self._pump(self._process.stderr, stderr=True)),
        ]

    async def _pump(self, stream: asyncio.StreamReader, *, stderr: bool) -> None:
        while data := await stream.read(READ_CHUNK):
            await self._writable.wait()
            self.forward_output(data, stderr=stderr)

    async def _drain_stdin(self, stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await stdin.drain()
        # Cleared before resuming: resuming can deliver queued data at once and need a fresh drain task.
        self._drain_task = None
        self.input_drained()

    def _pause_input(self) -> None:
        if self._chan is not None and not self._closed:
            self._chan.pause_reading()

    def input_drained(self) -> None:
        if self._chan is not None and not self._closed:
            self._chan.resume_reading()

    def forward_output(self, data: bytes, *, stderr: bool) -> None:
        if stderr:
            self._send_stderr(data)
        elif self._chan is not None and not self._closed:
            self._chan.write(data)

    def _send_stderr(self, data: bytes) -> None:
        if self._chan is not None and not self._closed:
            self._chan.write_stderr(data)

    def _send_exit(self, returncode: int) -> None:
        if self._chan is None or self._closed:
            return
        if returncode >= 0:
            self._chan.exit(returncode)
            return
        try:
            name = signal.Signals(-returncode).name.removeprefix("SIG")
        except ValueError:  # a real-time signal has no name in the protocol: report it as a shell would
            self._chan.exit(128 - returncode)
            return
        self._chan.exit_with_signal(name)

    def log_child_error(self, exc: OSError) -> None:
        if self._chan is not None:
            self._chan.logger.info("demo target: pty read failed: %s", exc.strerror)

    def _signal_children(self, number: signal.Signals) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, number)

    def terminate(self) -> None:
        """End the command's whole process group: hang up, then kill what ignores the hang-up."""
        if self._process is None or self._process.returncode is not None:
            return
        self._signal_children(signal.SIGHUP)
        asyncio.get_running_loop().call_later(KILL_GRACE_SECONDS, self._signal_children, signal.SIGKILL)


class _DemoServer(asyncssh.SSHServer):
    """Public-key logins only; sessions run commands; every kind of forwarding is refused."""

    def __init__(self, target: DemoSshTarget) -> None:
        self._target = target
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._target.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._target.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def session_requested(self) -> _CommandSession:
        return _CommandSession(self._target)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "port forwarding is disabled"
        )

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "socket forwarding is disabled"
        )

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


@dataclass(eq=False)
class DemoSshTarget:
    """A running demo SSH host: where it listens, the known_hosts line for its key, and how to stop it."""

    workdir: Path
    host: str
    port: int = 0
    host_key: asyncssh.SSHKey | None = None
    acceptor: asyncssh.SSHAcceptor | None = None
    sessions: set[_CommandSession] = field(default_factory=set)
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    @property
    def host_key_line(self) -> str:
        """`[host]:port ssh-ed25519 AAAA...`: one known_hosts line that trusts exactly this target."""
        assert self.host_key is not None
        public = self.host_key.export_public_key().decode().split()
        return f"{known_hosts_pattern(self.host, self.port)} {public[0]} {public[1]}"

    def close(self) -> None:
        """Stop listening, drop every connection and end every command still running."""
        if self.acceptor is not None:
            self.acceptor.close()
        for session in list(self.sessions):
            session.terminate()
        for connection in list(self.connections):
            connection.close()

    async def wait_closed(self) -> None:
        if self.acceptor is not None:
            await self.acceptor.wait_closed()


async def start_demo_ssh_target(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    authorized_key: asyncssh.SSHKey | Path | str,
    host_key: asyncssh.SSHKey | None = None,
) -> DemoSshTarget:
    """Listen for SSH on host:port (0 picks a free port); `authorized_key` is the gateway's key.

    Any user name is accepted; commands run as the user of this process, in `workdir`, with a minimal env.
    A fresh ed25519 host key is made unless `host_key` is given (pass one to keep known_hosts stable).
    """
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise ValueError(f"demo SSH target: workdir {workdir} is not a directory")
    target = DemoSshTarget(workdir=workdir, host=host)
    target.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    target.acceptor = await asyncssh.create_server(
        lambda: _DemoServer(target),
        host,
        port,
        server_host_keys=[target.host_key],
        authorized_client_keys=load_authorized_keys(authorized_key),
        encoding=None,
        line_editor=False,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
    )
    target.port = target.acceptor.get_port()
    return target


SEED_FILES = {
    "logs/app.log": """\
        2026-11-27T08:02:11Z INFO  web.1  boot: listening on :8080 (release v1.4.2)
        2026-11-27T08:02:13Z INFO  web.1  db: pool ready (10 connections) host=db-primary.internal
        2026-11-27T08:14:52Z INFO  web.1  signup: new customer ada.lovelace@example.com plan=pro
        2026-11-27T08:15:03Z WARN  web.1  mail: bounce from grace.hopper@example.org (mailbox full)
        2026-11-27T09:40:27Z ERROR web.1  s3: AccessDenied for key AKIAQX7LDEMO4EXAMPLE (acme-invoices)
        2026-11-27T09:40:28Z INFO  web.1  retry: invoice-1043.pdf queued
        2026-11-27T10:05:44Z INFO  web.1  password reset requested by alan.turing@example.net
        2026-11-27T11:31:09Z ERROR web.1  payments: card declined for customer 1187 (linus@example.com)
        2026-11-27T12:00:00Z INFO  web.1  health: ok (p95 41ms)
        """,
    "config/app.env": """\
        # acme-web production settings
        APP_ENV=production
        DATABASE_URL=postgresql://app@db-primary.internal:5432/app
        AWS_REGION=eu-west-1
        AWS_ACCESS_KEY_ID=AKIAQX7LDEMO4EXAMPLE
        SUPPORT_EMAIL=support@example.com
        """,
    "releases/v1.4.1/CHANGELOG": """\
        v1.4.1: fix invoice rounding for zero-VAT customers
        """,
    "releases/v1.4.2/CHANGELOG": """\
        v1.4.2: retry S3 uploads; faster signup page
        """,
    "releases/current": """\
        v1.4.2
        """,
}


def seed_demo_workdir(workdir: Path) -> list[Path]:
    """Write a small, believable app host (logs with fake emails and a fake AWS key, config, releases).

    Overwrites the seed files on every call and leaves anything else in `workdir` alone.
    """
    written = []
    for relative, text in SEED_FILES.items():
        path = Path(workdir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        written.append(path)
    return written
