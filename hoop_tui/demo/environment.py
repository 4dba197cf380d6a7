"""Everything the demo runs: an embedded PostgreSQL, the gateway with a demo policy, and a demo agent."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import textwrap
from collections.abc import Callable
from pathlib import Path

from hoop_tui.demo.seed import seed_sql
from hoop_tui.embedded_postgres import EmbeddedPostgres

log = logging.getLogger("hoop.demo")

PASSWORD_ENV = "HOOP_DEMO_APPDB_PASSWORD"
AGENT_GROUP = "ci-agents"

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
"""


def demo_config_text(state_dir: Path, pg_port: int, review_timeout: str = "2m") -> str:
    return textwrap.dedent(
        f"""
        # Written by `hoop-tui demo`; regenerated on every run.
        [gateway]
        state_dir = "{state_dir / "state"}"
        recordings_dir = "{state_dir / "recordings"}"
        postgres_listen = "127.0.0.1:15432"
        ssh_listen = "off"
        admin_groups = ["oncall"]   # the demo's operator may also end sessions from the console

        [identity]
        issuer = "local"

        [[connections]]
        name = "appdb"
        type = "postgres"
        upstream = "postgresql://app@127.0.0.1:{pg_port}/shop?sslmode=disable"
        password_env = "{PASSWORD_ENV}"
        """
    ) + DEMO_POLICY.replace("REVIEW_TIMEOUT", review_timeout)


class DemoEnvironment:
    def __init__(self, state_dir: Path, gateway_port: int = 15432, review_timeout: str = "2m") -> None:
        self.review_timeout = review_timeout
        self.state_dir = state_dir.resolve()
        self.gateway_port = gateway_port
        self.postgres: EmbeddedPostgres | None = None
        self.thread = None
        self.config_path = self.state_dir / "hoop.toml"

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
        text = demo_config_text(self.state_dir, self.postgres.port, self.review_timeout)
        text = text.replace("127.0.0.1:15432", f"127.0.0.1:{self.gateway_port}")
        self.config_path.write_text(text)
        self.thread = GatewayThread(load_config(self.config_path))
        gateway = self.thread.start()
        log.info("gateway listening on %s:%d", *gateway.postgres_address)

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

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.postgres is not None:
            self.postgres.stop()


AGENT_STEPS = [
    ("read customers", "SELECT id, name, email, phone FROM customers ORDER BY id LIMIT 3"),
    ("revenue report", "SELECT status, count(*), sum(total) FROM orders GROUP BY status ORDER BY status"),
    ("credit a balance", "UPDATE customers SET balance = balance + 10 WHERE id = 1"),
    ("drop a table", "DROP TABLE orders"),
]


async def run_demo_agent(
    url: str, report: Callable[[str], None], *, rounds: int = 0, pause: float = 5.0
) -> None:
    """The demo agent: a believable loop of reads, a write that needs approval and a denied DROP."""
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
        done += 1
        if rounds == 0 or done < rounds:
            await asyncio.sleep(pause)
