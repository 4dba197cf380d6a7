"""The upstream PostgreSQL the tests run against: an embedded cluster, or the server named by PG_DSN."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from hoop_tui.embedded_postgres import EmbeddedPostgres, system_bin_dir

APP_DB = "app"


@dataclass
class Role:
    name: str
    password: str
    auth: str  # scram-sha-256 | md5 | password


@dataclass
class UpstreamPostgres:
    host: str
    port: int
    superuser_dsn: str
    roles: dict[str, Role] = field(default_factory=dict)
    external: bool = False
    cluster: EmbeddedPostgres | None = None

    def dsn(self, role: str = "app", database: str = APP_DB) -> str:
        r = self.roles[role]
        return f"postgresql://{r.name}:{r.password}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = APP_DB) -> list[tuple]:
        """Run SQL as the superuser straight on the upstream (to check what really reached the database)."""
        with psycopg.connect(self._superuser_dsn(database), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def _superuser_dsn(self, database: str) -> str:
        parts = urlsplit(self.superuser_dsn)
        return parts._replace(path="/" + database).geturl()


ROLE_AUTH = {"app": "scram-sha-256", "app_md5": "md5", "app_clear": "password"}


def start_upstream(tls: bool = False) -> UpstreamPostgres:
    """The shared upstream; with `tls`, a cluster that only accepts TLS logins (needs a distro build)."""
    external = None if tls else os.environ.get("PG_DSN")
    roles = {name: Role(name, secrets.token_urlsafe(12), auth) for name, auth in ROLE_AUTH.items()}
    if external:
        parts = urlsplit(external)
        upstream = UpstreamPostgres(
            host=parts.hostname or "127.0.0.1", port=parts.port or 5432, superuser_dsn=external, external=True
        )
    else:
        base = Path(tempfile.mkdtemp(prefix="hoop-test-pg-"))
        if tls:
            bin_dir = system_bin_dir()
            if bin_dir is None:
                raise RuntimeError("no TLS-capable PostgreSQL build (install Debian's postgresql)")
            hba = ["hostnossl all all 0.0.0.0/0 reject", "hostssl all all 127.0.0.1/32 scram-sha-256"]
            cluster = EmbeddedPostgres(base_dir=base, extra_hba=hba, ssl=True, bin_dir=bin_dir).start()
        else:
            hba = ["host all app_md5 127.0.0.1/32 md5", "host all app_clear 127.0.0.1/32 password"]
            cluster = EmbeddedPostgres(base_dir=base, extra_hba=hba).start()
        upstream = UpstreamPostgres(
            host=cluster.host, port=cluster.port, superuser_dsn=cluster.superuser_dsn(), cluster=cluster
        )
    with psycopg.connect(upstream.superuser_dsn, autocommit=True) as conn:
        for role in roles.values():
            conn.execute(f"SET password_encryption = '{'md5' if role.auth == 'md5' else 'scram-sha-256'}'")
            conn.execute(f"DROP ROLE IF EXISTS {role.name}")
            conn.execute(f"CREATE ROLE {role.name} LOGIN PASSWORD '{role.password}'")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DB,)).fetchone()
        if exists is None:
            conn.execute(f"CREATE DATABASE {APP_DB}")
    upstream.roles = roles
    with psycopg.connect(upstream._superuser_dsn(APP_DB), autocommit=True) as conn:
        for role in roles.values():
            conn.execute(f"GRANT ALL ON DATABASE {APP_DB} TO {role.name}")
            conn.execute(f"GRANT ALL ON SCHEMA public TO {role.name}")
    return upstream


def stop_upstream(upstream: UpstreamPostgres) -> None:
    if upstream.cluster is not None:
        upstream.cluster.stop()
        shutil.rmtree(upstream.cluster.base_dir, ignore_errors=True)
