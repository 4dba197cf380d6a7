"""The gateway's own login to an upstream that only accepts TLS, per the connection's sslmode."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoop_tui.embedded_postgres import system_bin_dir
from tests.conftest import ALL_SQL_KINDS
from tests.pg_fixture import UpstreamPostgres, start_upstream, stop_upstream

pytestmark = [
    pytest.mark.skipif(system_bin_dir() is None, reason="needs a TLS-capable PostgreSQL build (Debian's)"),
    pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed"),
]


@pytest.fixture(scope="module")
def tls_upstream() -> Iterator[UpstreamPostgres]:
    server = start_upstream(tls=True)
    try:
        yield server
    finally:
        stop_upstream(server)


def test_sslmode_decides_the_upstream_login(tmp_path: Path, tls_upstream: UpstreamPostgres) -> None:
    from proxy.config import load_config
    from proxy.gateway_thread import GatewayThread
    from proxy.identity.local_issuer import LocalIssuer

    assert tls_upstream.cluster is not None
    cert = tls_upstream.cluster.data_dir / "server.crt"
    connections = ""
    for name, mode in [("tls_require", "require"), ("tls_verify", "verify-full"), ("tls_off", "disable")]:
        root = f"&sslrootcert={cert}" if mode == "verify-full" else ""
        connections += textwrap.dedent(
            f"""
            [[connections]]
            name = "{name}"
            type = "postgres"
            upstream = "postgresql://app@localhost:{tls_upstream.port}/app?sslmode={mode}{root}"
            password_env = "HOOP_TEST_TLS_PASSWORD"
            """
        )
    kinds = ", ".join(f'"{k}"' for k in ALL_SQL_KINDS)
    config_path = tmp_path / "hoop.toml"
    config_path.write_text(
        textwrap.dedent(
            f"""
            [gateway]
            state_dir = "{tmp_path}/state"
            recordings_dir = "{tmp_path}/recordings"
            postgres_listen = "127.0.0.1:0"
            ssh_listen = "off"
            [identity]
            issuer = "local"
            """
        )
        + connections
        + f'\n[[policies]]\ngroups = ["ci-agents"]\nconnections = ["*"]\nallow = [{kinds}]\n'
    )
    os.environ["HOOP_TEST_TLS_PASSWORD"] = tls_upstream.roles["app"].password
    thread = GatewayThread(load_config(config_path))
    gateway = thread.start()
    try:
        host, port = gateway.postgres_address
        token = LocalIssuer.load_or_create(tmp_path / "state").mint(
            "ci-bot", ["ci-agents"], audience="hoop", ttl_seconds=300
        )

        def psql(connection: str) -> subprocess.CompletedProcess[str]:
            dsn = f"host={host} port={port} dbname={connection} user=ci-bot password={token} sslmode=disable"
            query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            return subprocess.run(
                ["psql", "-X", "-A", "-t", dsn, "-c", query], capture_output=True, text=True, timeout=30
            )

        for connection in ("tls_require", "tls_verify"):
            result = psql(connection)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == "t", "the gateway's upstream session is encrypted"
        refused = psql("tls_off")
        assert refused.returncode != 0
        assert 'upstream of connection "tls_off" is unavailable' in refused.stderr
    finally:
        thread.stop()
