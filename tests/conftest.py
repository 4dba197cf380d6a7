"""Shared fixtures: the real upstream PostgreSQL and a real gateway in front of it."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tests.pg_fixture import UpstreamPostgres, start_upstream, stop_upstream

# Property tests in CI run a fixed, repeatable set of examples per test, so a red build always reproduces;
# `pytest --hypothesis-profile=fuzz` explores new random examples (and many more of them).
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("fuzz", max_examples=2000, print_blob=True)
settings.load_profile("repeatable")

ALL_SQL_KINDS = [
    "read", "write", "ddl", "drop", "truncate", "dcl", "copy_in", "copy_out", "copy_program",
    "dangerous_function", "transaction", "session", "utility", "opaque",
]  # fmt: skip


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamPostgres]:
    server = start_upstream()
    try:
        yield server
    finally:
        stop_upstream(server)


def mint_token(state_dir: Path, subject: str, groups: tuple[str, ...], ttl: float = 900) -> str:
    """A token from the gateway's local issuer (the one `hoop-tui token mint` uses)."""
    from proxy.identity.local_issuer import LocalIssuer

    issuer = LocalIssuer.load_or_create(state_dir)
    return issuer.mint(subject, list(groups), audience="hoop", ttl_seconds=ttl)


@dataclass
class RunningGateway:
    """A gateway on its own thread, plus what a test needs to reach it."""

    thread: object
    host: str
    port: int
    config_path: Path
    state_dir: Path
    recordings_dir: Path

    @property
    def gateway(self):
        return self.thread.gateway  # type: ignore[attr-defined]

    def token(
        self, subject: str = "ci-bot", groups: tuple[str, ...] = ("ci-agents",), ttl: float = 900
    ) -> str:
        return mint_token(self.state_dir, subject, groups, ttl)

    def dsn(
        self, token: str | None = None, connection: str = "appdb", user: str = "ci-bot", **extra: str
    ) -> str:
        params = {
            "host": self.host,
            "port": str(self.port),
            "dbname": connection,
            "user": user,
            "password": token or self.token(),
            "sslmode": "disable",
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in params.items())

    def url(self, token: str | None = None, connection: str = "appdb", user: str = "ci-bot") -> str:
        return f"postgresql://{user}:{token or self.token()}@{self.host}:{self.port}/{connection}"


def gateway_config_text(
    tmp: Path, upstream: UpstreamPostgres, *, policies: str | None = None, extra: str = ""
) -> str:
    kinds = ", ".join(f'"{k}"' for k in ALL_SQL_KINDS)
    policies = policies or textwrap.dedent(
        f"""
        [[policies]]
        groups = ["ci-agents"]
        connections = ["*"]
        allow = [{kinds}]
        """
    )
    return (
        textwrap.dedent(
            f"""
        [gateway]
        state_dir = "{tmp}/state"
        recordings_dir = "{tmp}/recordings"
        postgres_listen = "127.0.0.1:0"
        ssh_listen = "off"
        recording_durability = "none"
        {extra}

        [identity]
        issuer = "local"

        [[connections]]
        name = "appdb"
        type = "postgres"
        upstream = "postgresql://app@{upstream.host}:{upstream.port}/app?sslmode=disable"
        password_env = "HOOP_TEST_APP_PASSWORD"

        [[connections]]
        name = "appdb_md5"
        type = "postgres"
        upstream = "postgresql://app_md5@{upstream.host}:{upstream.port}/app?sslmode=disable"
        password_env = "HOOP_TEST_APP_MD5_PASSWORD"

        [[connections]]
        name = "appdb_clear"
        type = "postgres"
        upstream = "postgresql://app_clear@{upstream.host}:{upstream.port}/app?sslmode=disable"
        password_env = "HOOP_TEST_APP_CLEAR_PASSWORD"

        [[connections]]
        name = "downdb"
        type = "postgres"
        upstream = "postgresql://app@127.0.0.1:1/app?sslmode=disable"
        password_env = "HOOP_TEST_APP_PASSWORD"
        """
        )
        + policies
    )


def start_gateway(tmp: Path, upstream: UpstreamPostgres, **kwargs: str) -> RunningGateway:
    from proxy.config import load_config
    from proxy.gateway_thread import GatewayThread

    os.environ["HOOP_TEST_APP_PASSWORD"] = upstream.roles["app"].password
    os.environ["HOOP_TEST_APP_MD5_PASSWORD"] = upstream.roles["app_md5"].password
    os.environ["HOOP_TEST_APP_CLEAR_PASSWORD"] = upstream.roles["app_clear"].password
    config_path = tmp / "hoop.toml"
    config_path.write_text(gateway_config_text(tmp, upstream, **kwargs))
    config = load_config(config_path)
    thread = GatewayThread(config)
    gateway = thread.start()
    assert gateway.postgres_address is not None
    host, port = gateway.postgres_address
    return RunningGateway(
        thread, host, port, config_path, config.gateway.state_dir, config.gateway.recordings_dir
    )


@pytest.fixture
def gateway(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path, upstream)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
