"""SSH test infrastructure: real upstream hosts (OpenSSH sshd or the demo target), the real `ssh` client."""

from __future__ import annotations

import atexit
import getpass
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from hoop_tui.demo.loop_thread import LoopThread
from hoop_tui.demo.ssh_target import known_hosts_pattern, start_demo_ssh_target
from hoop_tui.embedded_postgres import free_port

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
TOKEN_ENV = "HOOP_TEST_SSH_TOKEN"
PRIVSEP_DIR = Path("/run/sshd")
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


@dataclass(eq=False)
class SshTarget:
    """An upstream SSH host for tests: log in as `user` with `key_file`, trust it through `known_hosts`.

    Commands run with `workdir` as their current directory, so a test looks there for their side effects.
    """

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    workdir: Path
    kind: str  # "openssh" or "asyncssh"
    _stop: Callable[[], None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def upstream(self) -> str:
        """The `upstream` value of an ssh connection in the gateway config."""
        return f"{self.user}@{self.host}:{self.port}"

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._stop()

    def __enter__(self) -> SshTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class _KeyFiles:
    client_key: Path
    authorized_keys: Path


def _write_private_key(key: asyncssh.SSHKey, path: Path) -> None:
    # OpenSSH (client and server) refuses private keys that other users could read.
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)


def _make_client_key(tmp: Path) -> _KeyFiles:
    """The gateway key pair for the upstream: the private key is `key_file`, the public one is authorized."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment="hoop-gateway")
    client_key = tmp / "gateway_key"
    _write_private_key(key, client_key)
    public = key.export_public_key()
    (tmp / "gateway_key.pub").write_bytes(public)
    authorized_keys = tmp / "authorized_keys"
    authorized_keys.write_bytes(public)
    return _KeyFiles(client_key, authorized_keys)


def _write_known_hosts(path: Path, host: str, port: int, host_key: asyncssh.SSHKey) -> None:
    algorithm, blob = host_key.export_public_key().decode().split()[:2]
    path.write_text(f"{known_hosts_pattern(host, port)} {algorithm} {blob}\n")


def sshd_path() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    return "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None


def _sshd_config(tmp: Path, port: int, keys: _KeyFiles, host_key: Path, workdir: Path) -> str:
    # ForceCommand runs every session through a wrapper that enters `workdir`: sshd itself would start in
    # the user's home, and tests need one scratch place to look for side effects.
    enter_workdir = tmp / "enter_workdir.sh"
    enter_workdir.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(workdir))} || exit 1\n"
        'if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"; fi\n'
        'exec "${SHELL:-/bin/sh}" -l\n'
    )
    enter_workdir.chmod(0o755)
    lines = [
        f"ListenAddress {LOOPBACK}:{port}",
        f"HostKey {host_key}",
        f"PidFile {tmp / 'sshd.pid'}",
        f"AuthorizedKeysFile {keys.authorized_keys}",
        f"ForceCommand {enter_workdir}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "PermitUserRC no",
        # bash started by sshd sources ~/.bashrc unless it is a nested shell: the user's dotfiles must
        # neither slow every command down nor print into the output tests compare.
        "SetEnv SHLVL=1",
        "StrictModes no",
        "UsePAM no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "LogLevel INFO",
        # Through ForceCommand's wrapper like any session: SSH_ORIGINAL_COMMAND is this server program.
        *([f"Subsystem sftp {SFTP_SERVER}"] if Path(SFTP_SERVER).exists() else []),
    ]
    return "\n".join(lines) + "\n"


def _ensure_privsep_dir() -> None:
    # sshd started as root insists on its empty chroot directory; a normal user's sshd does without.
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5) as probe:
                if probe.recv(8).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.02)
    process.kill()
    process.wait()
    raise RuntimeError(f"sshd did not accept connections on port {port} within {START_TIMEOUT:.0f} s")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_sshd(tmp: Path) -> SshTarget:
    """Debian's OpenSSH server on a free loopback port, configured and keyed entirely inside `tmp`.

    Logs in the current user by public key only (the fresh `key_file`); sessions start in `workdir`.
    When no sshd is installed, falls back to `start_asyncssh_target` (same SshTarget shape, kind "asyncssh").
    """
    sshd = sshd_path()
    if sshd is None:
        return start_asyncssh_target(tmp)
    tmp = Path(tmp).resolve()
    workdir = tmp / "workdir"
    workdir.mkdir(parents=True, exist_ok=True)
    keys = _make_client_key(tmp)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key_file = tmp / "ssh_host_ed25519_key"
    _write_private_key(host_key, host_key_file)
    _ensure_privsep_dir()
    log = tmp / "sshd.log"
    last_error: RuntimeError | None = None
    for _attempt in range(3):  # another process may take the free port between probe and bind
        port = free_port()
        config = tmp / "sshd_config"
        config.write_text(_sshd_config(tmp, port, keys, host_key_file, workdir))
        with log.open("ab") as log_file:
            process = subprocess.Popen(
                [sshd, "-f", str(config), "-D", "-e"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        try:
            _wait_until_listening(port, process, log)
        except RuntimeError as exc:
            last_error = exc
            continue
        known_hosts = tmp / "known_hosts"
        _write_known_hosts(known_hosts, LOOPBACK, port, host_key)
        target = SshTarget(
            host=LOOPBACK,
            port=port,
            user=getpass.getuser(),
            key_file=keys.client_key,
            known_hosts=known_hosts,
            workdir=workdir,
            kind="openssh",
            _stop=lambda process=process: _stop_process(process),
        )
        refusal = None if os.geteuid() == 0 else _login_refusal(target, log)
        if refusal is None:
            return target
        target.stop()
        warnings.warn(
            f"sshd cannot log in {target.user} ({refusal}); using the asyncssh target", stacklevel=2
        )
        return start_asyncssh_target(tmp)
    assert last_error is not None
    raise last_error


def _login_refusal(target: SshTarget, log: Path) -> str | None:
    """Why sshd refuses the key login, or None when it works.

    Only asked for a normal user: without PAM, such an sshd cannot read the shadow file and may take the
    account for locked, and a user whose shell is nologin cannot run commands at all.
    """
    if shutil.which("ssh") is None:
        return None
    try:
        result = subprocess.run(
            openssh_key_login(target, ["true"]), stdin=subprocess.DEVNULL, capture_output=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "the test login timed out"
    if result.returncode == 0:
        return None
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else result.stderr.decode(errors="replace").strip()


def start_asyncssh_target(tmp: Path) -> SshTarget:
    """The demo's asyncssh SSH host on its own thread, in the same SshTarget shape as `start_sshd`."""
    tmp = Path(tmp).resolve()
    workdir = tmp / "workdir"
    workdir.mkdir(parents=True, exist_ok=True)
    keys = _make_client_key(tmp)
    runner = LoopThread("ssh-target")
    try:
        target = runner.call(
            start_demo_ssh_target(workdir, host=LOOPBACK, authorized_key=keys.authorized_keys)
        )
    except BaseException:
        runner.stop()
        raise

    async def shut_down() -> None:
        target.close()
        await target.wait_closed()

    def stop() -> None:
        try:
            runner.call(shut_down())
        finally:
            runner.stop()

    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(target.host_key_line + "\n")
    return SshTarget(
        host=LOOPBACK,
        port=target.port,
        user=getpass.getuser(),
        key_file=keys.client_key,
        known_hosts=known_hosts,
        workdir=workdir,
        kind="asyncssh",
        _stop=stop,
    )


# -- the OpenSSH client, logging in with a token as the password ------------------------------------------

_askpass_lock = threading.Lock()
_askpass_path: Path | None = None


def _askpass_program() -> Path:
    """One tiny SSH_ASKPASS script per test process; it prints the token from the environment, never argv."""
    global _askpass_path
    with _askpass_lock:
        if _askpass_path is None:
            directory = Path(tempfile.mkdtemp(prefix="hoop-askpass-"))
            script = directory / "askpass.sh"
            script.write_text(f'#!/bin/sh\nprintf "%s\\n" "${TOKEN_ENV}"\n')
            script.chmod(0o700)
            atexit.register(shutil.rmtree, directory, True)
            _askpass_path = script
        return _askpass_path


def ssh_command_line(
    args: Sequence[str], *, port: int, user: str, host: str = LOOPBACK, pty: bool = False,
    options: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """argv for OpenSSH `ssh` logging in with a password or keyboard-interactive answer, any host key."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise RuntimeError("the OpenSSH client (ssh) is not installed")
    return [
        ssh,
        "-F", "/dev/null",  # no user or system ssh_config changes what the test means
        "-p", str(port),
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
        "-o", "NumberOfPasswordPrompts=1",
        "-o", "LogLevel=ERROR",
        "-tt" if pty else "-T",
        *options,
        f"{user}@{host}",
        *args,
    ]  # fmt: skip


def ssh_environment(token: str) -> dict[str, str]:
    """The client's environment: the token travels in a variable only the askpass program reads."""
    env = dict(os.environ)
    env[TOKEN_ENV] = token
    env["SSH_ASKPASS"] = str(_askpass_program())
    env["SSH_ASKPASS_REQUIRE"] = "force"
    env.setdefault("DISPLAY", ":0")
    return env


def ssh_client(
    args: Sequence[str], *, token: str, port: int, user: str, host: str = LOOPBACK,
    input: bytes | None = None, timeout: float = 30, pty: bool = False, options: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run the real OpenSSH client to the end; `args` is the remote command, `options` go before USER@HOST."""
    return subprocess.run(
        ssh_command_line(args, port=port, user=user, host=host, pty=pty, options=options),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        timeout=timeout,
        env=ssh_environment(token),
        start_new_session=True,  # no controlling terminal: ssh can never prompt the person running the tests
        check=False,
    )


def ssh_popen(
    args: Sequence[str], *, token: str, port: int, user: str, host: str = LOOPBACK, pty: bool = False,
    options: Sequence[str] = (),
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start the real OpenSSH client with stdin, stdout and stderr piped; kill it to drop the connection."""
    return subprocess.Popen(
        ssh_command_line(args, port=port, user=user, host=host, pty=pty, options=options),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ssh_environment(token),
        start_new_session=True,
    )


def openssh_key_login(
    target: SshTarget, args: Sequence[str], *, known_hosts: Path | None = None
) -> list[str]:
    """argv for `ssh` logging in to `target` as the gateway does: its key, its known_hosts, nothing else."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise RuntimeError("the OpenSSH client (ssh) is not installed")
    return [
        ssh,
        "-F", "/dev/null",
        "-p", str(target.port),
        "-i", str(target.key_file),
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", f"UserKnownHostsFile={known_hosts or target.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-T",
        f"{target.user}@{target.host}",
        *args,
    ]  # fmt: skip
