"""The processes a benchmark run needs (PostgreSQL, pgbouncer, gateways) on loopback, always torn down."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoop_tui.embedded_postgres import EmbeddedPostgres, free_port, pgserver_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
BENCH_ROLE = "bench"
BENCH_DATABASE = "bench"
GATEWAY_CONNECTION = "bench"
UNMASKED_CONNECTION = "bench_unmasked"  # the same upstream under a policy without masking, for bulk on/off
BARE_RELAY = "bare relay"  # bench/bare_relay.py: Python + uvloop forwarding bytes, no gateway feature
GATEWAY_GROUP = "bench"
# pgserver's system user: EmbeddedPostgres runs the server as it when we are root, and so do we for pgbouncer.
UNPRIVILEGED_USER = "pgserver"
UPSTREAM_PASSWORD_ENV = "HOOP_BENCH_UPSTREAM_PASSWORD"
MASKED_ENTITIES = ("email", "phone", "credit_card", "us_ssn", "iban", "secret")
_READY_LINE = re.compile(r"hoop-tui: postgres listener on (\S+):(\d+)")
_STOP_GRACE_SECONDS = 10.0


class StartError(Exception):
    """A process the benchmark needs did not come up; the message carries its log tail."""


@dataclass(frozen=True)
class Endpoint:
    """Where a libpq client connects for one benchmark target; the password never goes on a command line."""

    name: str
    host: str
    port: int
    user: str
    password: str
    database: str

    def libpq_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGPASSWORD=self.password,
            PGDATABASE=self.database,
            # TLS off for every target: the gateway would otherwise accept libpq's `prefer` and pay for
            # encryption that direct and pgbouncer (no TLS configured) do not.
            PGSSLMODE="disable",
            PGCONNECT_TIMEOUT="10",
            PGAPPNAME="hoop-bench",
        )
        return env


@dataclass(frozen=True)
class GatewayHandle:
    endpoint: Endpoint
    workers: int
    directory: Path
    log_path: Path

    @property
    def recordings_dir(self) -> Path:
        return self.directory / "recordings"

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only from the first byte (it holds a password)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def client_tool(name: str) -> str | None:
    """A PostgreSQL client program: pgserver's bundled build (matches the server) first, then PATH."""
    with contextlib.suppress(Exception):
        bundled = pgserver_bin_dir() / name
        if bundled.exists():
            return str(bundled)
    return shutil.which(name)


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and Path("/usr/sbin/pgbouncer").exists():  # sbin is often missing from PATH
        found = "/usr/sbin/pgbouncer"
    return found


def listening_sockets(port: int) -> int | None:
    """How many sockets listen on 127.0.0.1:`port` (one per SO_REUSEPORT worker); None off Linux."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    wanted = f"0100007F:{port:04X}"
    count = 0
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 3 and fields[1] == wanted and fields[3] == "0A":  # 0A = LISTEN
            count += 1
    return count


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class ManagedProcess:
    """A child in its own session, so stopping it reaches every process it forked (gateway workers)."""

    def __init__(self, argv: Sequence[str], *, log_path: Path, env: dict[str, str], **popen: object) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
                **popen,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after a grace period."""
        group = self.process.pid  # start_new_session made the child its group's leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        # Workers may outlive their leader for a moment; the group id stays valid while any member lives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) to drop to when we are root (pgbouncer, like PostgreSQL, refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    entry = pwd.getpwnam(UNPRIVILEGED_USER)  # created by EmbeddedPostgres.start() when run as root
    return entry.pw_uid, entry.pw_gid


class BenchCluster:
    """Owns a temp directory and every process started in it; `close()` (or the with-block) removes all."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hoop-bench-"))
        self.root.chmod(0o711)  # the unprivileged server user must reach its subdirectories, not list ours
        self._cleanup = contextlib.ExitStack()
        self._cleanup.callback(shutil.rmtree, self.root, True)
        self.postgres: EmbeddedPostgres | None = None
        self._bench_password = secrets.token_urlsafe(18)

    def __enter__(self) -> BenchCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything and remove the directory; a second Ctrl-C waits rather than orphaning processes."""
        held: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                held[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            self._cleanup.close()  # every step is bounded: SIGTERM, a grace period, then SIGKILL
        finally:
            for signum, handler in held.items():
                signal.signal(signum, handler)

    # ------------------------------------------------------------------------------------------ PostgreSQL

    def start_postgres(self) -> Endpoint:
        """A fresh cluster with role and database `bench` (password login over TCP)."""
        cluster = EmbeddedPostgres(base_dir=self.root / "postgres", port=0)
        self._cleanup.callback(cluster.stop)  # registered first: a half-started server is stopped too
        cluster.start()
        self.postgres = cluster
        cluster.psql(f"CREATE ROLE {BENCH_ROLE} LOGIN PASSWORD '{self._bench_password}'")
        cluster.psql(f"CREATE DATABASE {BENCH_DATABASE} OWNER {BENCH_ROLE}")
        return Endpoint("direct", LOOPBACK, cluster.port, BENCH_ROLE, self._bench_password, BENCH_DATABASE)

    def server_version(self) -> str:
        assert self.postgres is not None
        return self.postgres.psql("SHOW server_version").strip()

    # ------------------------------------------------------------------------------------------ pgbouncer

    def start_pgbouncer(self, upstream: Endpoint, binary: str) -> Endpoint:
        """pgbouncer in session pooling mode in front of `upstream`; raises StartError with its log."""
        directory = self.root / "pgbouncer"
        directory.mkdir()
        port = free_port(LOOPBACK)
        userlist = directory / "userlist.txt"
        write_private(userlist, f'"{upstream.user}" "{upstream.password}"\n')
        ini = directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"{upstream.database} = host={upstream.host} port={upstream.port} dbname={upstream.database}\n"
            "\n[pgbouncer]\n"
            f"listen_addr = {LOOPBACK}\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            # A plaintext auth_file entry lets pgbouncer verify clients with SCRAM and log in upstream.
            "auth_type = scram-sha-256\n"
            f"auth_file = {userlist}\n"
            "pool_mode = session\n"
            "max_client_conn = 200\n"
            "default_pool_size = 20\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
            "ignore_startup_parameters = extra_float_digits\n"
        )
        ids = _unprivileged_ids()
        popen: dict[str, object] = {}
        if ids is not None:
            uid, gid = ids
            for path in (directory, userlist, ini):
                os.chown(path, uid, gid)
            popen = {"user": uid, "group": gid, "extra_groups": []}
        log_path = directory / "pgbouncer.log"
        process = ManagedProcess([binary, str(ini)], log_path=log_path, env=dict(os.environ), **popen)
        self._cleanup.callback(process.stop)
        if not wait_for_port(LOOPBACK, port, process.process, timeout=15):
            raise StartError(f"pgbouncer did not start:\n{tail(log_path)}")
        return Endpoint("pgbouncer", LOOPBACK, port, upstream.user, upstream.password, upstream.database)

    # ------------------------------------------------------------------------------------------ bare relay

    def start_bare_relay(self, upstream: Endpoint) -> Endpoint:
        """bench/bare_relay.py in front of `upstream`: direct's login, through a relay that does nothing."""
        directory = self.root / "bare-relay"
        directory.mkdir()
        port = free_port(LOOPBACK)
        log_path = directory / "bare-relay.log"
        argv = [
            sys.executable, str(REPO_ROOT / "bench" / "bare_relay.py"),
            "--listen", f"{LOOPBACK}:{port}", "--upstream", f"{upstream.host}:{upstream.port}",
        ]  # fmt: skip
        process = ManagedProcess(argv, log_path=log_path, env=dict(os.environ), cwd=directory)
        self._cleanup.callback(process.stop)
        if not wait_for_port(LOOPBACK, port, process.process, timeout=30):
            raise StartError(f"the bare relay did not start:\n{tail(log_path)}")
        return dataclasses.replace(upstream, name=BARE_RELAY, port=port)

    # ------------------------------------------------------------------------------------------ gateway

    def start_gateway(self, upstream: Endpoint, workers: int, *, timeout: float = 60) -> GatewayHandle:
        """`hoop-tui serve` with `workers` processes, policy + recording + masking on; raises StartError."""
        directory = self.root / f"gateway-w{workers}"
        directory.mkdir()
        config_path = directory / "hoop.toml"
        port = free_port(LOOPBACK)
        config_path.write_text(gateway_config_text(upstream, port, workers))
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env[UPSTREAM_PASSWORD_ENV] = upstream.password
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        cli = [sys.executable, "-m", "hoop_tui.cli"]
        minted = subprocess.run(
            [*cli, "token", "mint", "--config", str(config_path), "--subject", "bench-agent",
             "--groups", GATEWAY_GROUP, "--ttl", "2h"],
            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60,
        )  # fmt: skip
        if minted.returncode != 0 or not minted.stdout.strip():
            raise StartError(f"`hoop-tui token mint` failed:\n{minted.stderr.strip()}")
        token = minted.stdout.strip()
        log_path = directory / "gateway.log"
        process = ManagedProcess(
            [*cli, "serve", "--config", str(config_path)], log_path=log_path, env=env, cwd=REPO_ROOT
        )
        self._cleanup.callback(process.stop)
        host, bound_port = self._await_ready_line(process, log_path, timeout)
        self._await_workers(process, log_path, bound_port, workers, timeout)
        endpoint = Endpoint(
            f"gateway w={workers}", host, bound_port, "bench-agent", token, GATEWAY_CONNECTION
        )
        return GatewayHandle(endpoint, workers, directory, log_path)

    @staticmethod
    def _await_ready_line(process: ManagedProcess, log_path: Path, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                found = _READY_LINE.search(log_path.read_text(errors="replace"))
                if found:
                    return found.group(1), int(found.group(2))
            if not process.alive():
                raise StartError(
                    f"the gateway exited with status {process.process.returncode}:\n{tail(log_path)}"
                )
            time.sleep(0.05)
        raise StartError(f"the gateway did not report its listener within {timeout:.0f}s:\n{tail(log_path)}")

    @staticmethod
    def _await_workers(
        process: ManagedProcess, log_path: Path, port: int, workers: int, timeout: float
    ) -> None:
        """Worker 0 reports ready first; the others must listen too or the kernel sends them nothing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = listening_sockets(port)
            if count is None:
                time.sleep(2.0)  # no /proc: give spawned workers time to import and bind
                return
            if count >= workers:
                return
            if not process.alive():
                raise StartError(f"the gateway exited while its workers started:\n{tail(log_path)}")
            time.sleep(0.05)
        raise StartError(
            f"only {listening_sockets(port)} of {workers} gateway workers listen on port {port}:\n"
            f"{tail(log_path)}"
        )


def gateway_config_text(upstream: Endpoint, port: int, workers: int) -> str:
    """The benchmark's gateway: reads allowed, everything else denied (so a surprise fails fast, never
    waits for an approver); chunk-durable recording and every masking entity on, as in production."""
    masked = ", ".join(f'"{entity}"' for entity in MASKED_ENTITIES)
    return f"""\
[gateway]
state_dir = "./state"
recordings_dir = "./recordings"
postgres_listen = "{LOOPBACK}:{port}"
ssh_listen = "off"
workers = {workers}
recording_durability = "chunk"

[identity]
issuer = "local"

[[connections]]
name = "{GATEWAY_CONNECTION}"
type = "postgres"
upstream = "postgresql://{upstream.user}@{upstream.host}:{upstream.port}/{upstream.database}?sslmode=disable"
password_env = "{UPSTREAM_PASSWORD_ENV}"

[[connections]]
name = "{UNMASKED_CONNECTION}"
type = "postgres"
upstream = "postgresql://{upstream.user}@{upstream.host}:{upstream.port}/{upstream.database}?sslmode=disable"
password_env = "{UPSTREAM_PASSWORD_ENV}"

[[policies]]
groups = ["{GATEWAY_GROUP}"]
connections = ["{GATEWAY_CONNECTION}"]
allow = ["read", "transaction", "session", "utility", "copy_out"]
deny = ["write", "ddl", "drop", "truncate", "dcl", "copy_in", "copy_program", "dangerous_function", "opaque"]
mask = [{masked}]
review_timeout = "5s"

[[policies]]
groups = ["{GATEWAY_GROUP}"]
connections = ["{UNMASKED_CONNECTION}"]
allow = ["read", "transaction", "session", "utility", "copy_out"]
deny = ["write", "ddl", "drop", "truncate", "dcl", "copy_in", "copy_program", "dangerous_function", "opaque"]
review_timeout = "5s"
"""
