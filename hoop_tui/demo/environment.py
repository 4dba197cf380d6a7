"""Everything the demo runs: an embedded PostgreSQL, the gateway with a demo policy, and a demo agent."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hoop_tui.demo.loop_thread import LoopThread
from hoop_tui.demo.seed import seed_sql
from hoop_tui.embedded_postgres import EmbeddedPostgres

log = logging.getLogger("hoop.demo")

PASSWORD_ENV = "HOOP_DEMO_APPDB_PASSWORD"
AGENT_GROUP = "ci-agents"
SSH_CONNECTION = "web1"

DEMO_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
review = ["write"]
deny = ["drop", "truncate", "ddl", "dcl", "copy_program", "dangerous_function", "opaque"]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret"]
review_timeout = "REVIEW_TIMEOUT"
approvers = ["oncall"]

[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]
allow_commands = ["ls", "cat", "grep", "tail", "head", "wc", "echo", "uptime"]
review_commands = ["touch", "systemctl restart *", "kill"]
deny_commands = ["rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget"]
deny = ["opaque"]
mask = ["email", "secret"]
review_timeout = "REVIEW_TIMEOUT"
approvers = ["oncall"]
"""


def demo_config_text(
    state_dir: Path, pg_port: int, ssh_upstream_port: int, review_timeout: str = "2m", ssh_port: int = 2222
) -> str:
    keys = state_dir / "ssh-keys"
    return textwrap.dedent(
        f"""
        # Written by `hoop-tui demo`; regenerated on every run.
        [gateway]
        state_dir = "{state_dir / "state"}"
        recordings_dir = "{state_dir / "recordings"}"
        postgres_listen = "127.0.0.1:15432"
        ssh_listen = "127.0.0.1:{ssh_port}"
        admin_groups = ["oncall"]   # the demo's operator may also end sessions from the console

        [identity]
        issuer = "local"

        [[connections]]
        name = "appdb"
        type = "postgres"
        upstream = "postgresql://app@127.0.0.1:{pg_port}/shop?sslmode=disable"
        password_env = "{PASSWORD_ENV}"

        [[connections]]
        name = "{SSH_CONNECTION}"
        type = "ssh"
        upstream = "deploy@127.0.0.1:{ssh_upstream_port}"   # the demo's own SSH host, in-process
        key_file = "{keys / "gateway_upstream_ed25519"}"
        known_hosts = "{keys / "known_hosts"}"
        """
    ) + DEMO_POLICY.replace("REVIEW_TIMEOUT", review_timeout)


class DemoEnvironment:
    def __init__(
        self, state_dir: Path, gateway_port: int = 15432, review_timeout: str = "2m", ssh_port: int = 2222
    ) -> None:
        self.review_timeout = review_timeout
        self.state_dir = state_dir.resolve()
        self.gateway_port = gateway_port
        self.ssh_port = ssh_port
        self.postgres: EmbeddedPostgres | None = None
        self.thread = None
        self.config_path = self.state_dir / "hoop.toml"
        self.ssh_host: LoopThread | None = None
        self.ssh_target: Any = None

    def _start_ssh_host(self) -> int:
        """The demo's SSH host: an asyncssh server on its own loop thread, running real commands in a scratch
        directory; it trusts only the gateway's key, and the gateway trusts only its host key."""
        import asyncssh

        from hoop_tui.demo.ssh_target import seed_demo_workdir, start_demo_ssh_target

        if logging.getLogger("asyncssh").level == logging.NOTSET:  # ~15 INFO lines per connection otherwise
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        workdir = self.state_dir / "ssh-host"
        workdir.mkdir(parents=True, exist_ok=True)
        seed_demo_workdir(workdir)
        keys = self.state_dir / "ssh-keys"
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = keys / "gateway_upstream_ed25519"
        if not key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment="hoop-tui demo gateway")
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key.export_private_key())
        gateway_key = asyncssh.read_private_key(str(key_path))
        self.ssh_host = LoopThread("hoop-demo-ssh-host")
        self.ssh_target = self.ssh_host.call(start_demo_ssh_target(workdir, authorized_key=gateway_key))
        (keys / "known_hosts").write_text(self.ssh_target.host_key_line + "\n")
        return int(self.ssh_target.port)

    def start(self) -> None:
        from proxy.config import load_config
        from proxy.gateway_thread import GatewayThread

        self.state_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting PostgreSQL in %s", self.state_dir / "postgres")
        self.postgres = EmbeddedPostgres(base_dir=self.state_dir / "postgres").start()
        password = secrets.token_urlsafe(16)
        os.environ[PASSWORD_ENV] = password
        self.postgres.psql(
            "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') THEN "
            "CREATE ROLE app LOGIN; END IF; END$$; "
            f"ALTER ROLE app PASSWORD '{password}';"
        )
        if not self.postgres.psql("SELECT 1 FROM pg_database WHERE datname = 'shop'").strip():
            self.postgres.psql("CREATE DATABASE shop OWNER app")
        self.postgres.psql(
            seed_sql() + "ALTER TABLE customers OWNER TO app; ALTER TABLE orders OWNER TO app;", "shop"
        )
        ssh_upstream_port = self._start_ssh_host()
        # The well-known ports make the printed commands easy to remember; a laptop that already runs
        # something there still gets a working demo, on whatever port is free (the commands say which).
        self.gateway_port = port_or_any(self.gateway_port)
        self.ssh_port = port_or_any(self.ssh_port)
        text = demo_config_text(
            self.state_dir, self.postgres.port, ssh_upstream_port, self.review_timeout, self.ssh_port
        )
        text = text.replace("127.0.0.1:15432", f"127.0.0.1:{self.gateway_port}")
        self.config_path.write_text(text)
        self.thread = GatewayThread(load_config(self.config_path))
        gateway = self.thread.start()
        log.info(
            "gateway listening on %s:%d (postgres), %s:%d (ssh)",
            *gateway.postgres_address,
            *gateway.ssh_address,
        )

    @property
    def gateway(self):
        assert self.thread is not None
        return self.thread.gateway

    def token(self, subject: str, groups: list[str], ttl: float = 8 * 3600) -> str:
        from proxy.identity.local_issuer import LocalIssuer

        issuer = LocalIssuer.load_or_create(self.state_dir / "state")
        return issuer.mint(subject, groups, audience="hoop", ttl_seconds=ttl)

    def gateway_url(self, token: str, user: str = "demo-agent") -> str:
        host, port = self.gateway.postgres_address
        return f"postgresql://{user}:{token}@{host}:{port}/appdb"

    def psql_command(self) -> str:
        host, port = self.gateway.postgres_address
        token = self.token("you", [AGENT_GROUP])
        return "psql " + shlex.quote(
            f"host={host} port={port} dbname=appdb user=you password={token} sslmode=disable"
        )

    def ssh_command(self) -> str:
        host, port = self.gateway.ssh_address
        token = self.token("you", [AGENT_GROUP])
        return f"ssh -p {port} {SSH_CONNECTION}@{host}   # when asked for a password, paste: {token}"

    def ssh_address(self) -> tuple[str, int]:
        return self.gateway.ssh_address

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.ssh_host is not None:
            if self.ssh_target is not None:
                self.ssh_target.close()
            self.ssh_host.stop()
        if self.postgres is not None:
            self.postgres.stop()


def port_or_any(port: int, host: str = "127.0.0.1") -> int:
    """`port` if it can be bound on `host` now, else 0 (any free port)."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            log.warning("port %d is taken; the demo uses a free port instead", port)
            return 0
    return port


AGENT_STEPS = [
    ("read customers", "SELECT id, name, email, phone FROM customers ORDER BY id LIMIT 3"),
    ("revenue report", "SELECT status, count(*), sum(total) FROM orders GROUP BY status ORDER BY status"),
    ("credit a balance", "UPDATE customers SET balance = balance + 10 WHERE id = 1"),
    ("drop a table", "DROP TABLE orders"),
]


SSH_STEPS = [
    ("tail the app log", "tail -n 4 logs/app.log"),
    ("count errors", "grep -c ERROR logs/app.log"),
    ("flag maintenance", "touch releases/maintenance.flag"),
    ("clean old releases", "rm -rf releases/v1.4.1"),
]


async def run_ssh_steps(address: tuple[str, int], token: str, report: Callable[[str], None]) -> None:
    """The agent's shell work through the gateway: reads (masked), a held command, a denied one."""
    import asyncssh

    host, port = address
    try:
        conn = await asyncssh.connect(
            host, port, username=SSH_CONNECTION, password=token, known_hosts=None, client_keys=None,
            agent_path=None, config=[], preferred_auth=["password"],
        )  # fmt: skip
    except (OSError, asyncssh.Error) as error:
        report(f"agent: ssh: cannot connect: {error}")
        return
    async with conn:
        for label, command in SSH_STEPS:
            result = await conn.run(command, check=False)
            lines = (
                str(result.stdout or "").strip().splitlines() + str(result.stderr or "").strip().splitlines()
            )
            report(f"agent: ssh {label}: exit {result.exit_status}: {' | '.join(lines[-3:])}")


async def run_demo_agent(
    url: str,
    report: Callable[[str], None],
    *,
    rounds: int = 0,
    pause: float = 5.0,
    ssh: tuple[tuple[str, int], str] | None = None,
) -> None:
    """The demo agent: a believable loop of reads, a write that needs approval and a denied DROP, then (with
    `ssh` = (gateway SSH address, token)) shell commands on the demo host: reads, a held one, a denied one."""
    import asyncpg

    done = 0
    while rounds == 0 or done < rounds:
        try:
            conn = await asyncpg.connect(url, ssl=False)
        except (OSError, asyncpg.PostgresError) as error:
            report(f"agent: cannot connect: {error}")
            done += 1
            if rounds == 0 or done < rounds:
                await asyncio.sleep(pause)
            continue
        conn.add_log_listener(lambda _conn, message: report(f"agent: notice: {message.message}"))
        try:
            for label, sql in AGENT_STEPS:
                try:
                    rows = await conn.fetch(sql)
                    preview = "; ".join(", ".join(str(v) for v in row.values()) for row in rows[:3])
                    report(f"agent: {label}: ok ({len(rows)} rows) {preview}")
                except asyncpg.PostgresError as error:
                    report(f"agent: {label}: {error.sqlstate} {error}")
        finally:
            await conn.close()
        if ssh is not None:
            await run_ssh_steps(ssh[0], ssh[1], report)
        done += 1
        if rounds == 0 or done < rounds:
            await asyncio.sleep(pause)
