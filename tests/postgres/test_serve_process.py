"""`hoop-tui serve` as a real process: two workers on one port, cross-worker cancel, reload, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hoop_tui.embedded_postgres import free_port
from tests.conftest import gateway_config_text
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.test_asyncpg_through_gateway import CANCEL_CLIENT

READ_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
"""


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited early: {process.stderr.read() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("gateway did not start listening")


@pytest.fixture
def served(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    port = free_port()
    config = tmp_path / "hoop.toml"
    text = gateway_config_text(tmp_path, upstream, policies=READ_POLICY, extra="workers = 2")
    config.write_text(text.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    env = {**os.environ, "HOOP_TEST_APP_PASSWORD": upstream.roles["app"].password}
    process = subprocess.Popen(
        [sys.executable, "-m", "hoop_tui.cli", "serve", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield process, config, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def mint(config: Path, groups: str = "ci-agents") -> str:
    command = [sys.executable, "-m", "hoop_tui.cli", "token", "mint", "--config", str(config)]
    command += ["--subject", "ci-bot", "--groups", groups, "--ttl", "10m"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    token = result.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    return token


def dsn(port: int, token: str) -> str:
    return f"host=127.0.0.1 port={port} dbname=appdb user=ci-bot password={token} sslmode=disable"


def test_two_workers_serve_cancel_reload_and_stop(served: tuple[subprocess.Popen[str], Path, int]) -> None:
    process, config, port = served
    token = mint(config)
    connections = [psycopg.connect(dsn(port, token), autocommit=True) for _ in range(12)]
    try:
        for i, conn in enumerate(connections):
            assert conn.execute("SELECT %s::int", (i,)).fetchone() == (i,)
        # A CancelRequest opens a new connection, which SO_REUSEPORT may give to the other worker.
        for _ in range(4):
            result = subprocess.run(
                [sys.executable, "-c", CANCEL_CLIENT, dsn(port, token)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.stdout.startswith("cancelled after"), result.stdout + result.stderr

        # SIGHUP: the new policy denies reads for new sessions; live sessions keep theirs.
        config.write_text(config.read_text().replace('allow = ["read", ', 'deny = ["read"]\nallow = ['))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        denied = False
        while time.monotonic() < deadline and not denied:
            with psycopg.connect(dsn(port, token), autocommit=True) as fresh:
                try:
                    fresh.execute("SELECT 1")
                except psycopg.errors.InsufficientPrivilege:
                    denied = True
            time.sleep(0.1)
        assert denied, "the reloaded policy never applied"
        assert all(c.execute("SELECT 1").fetchone() == (1,) for c in connections), (
            "a live session was dropped"
        )
    finally:
        for conn in connections:
            conn.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


def test_token_expiry_ends_the_session(tmp_path: Path, upstream: UpstreamPostgres) -> None:
    from tests.conftest import start_gateway
    from tests.postgres.rawclient import RawClient

    running = start_gateway(tmp_path, upstream)
    try:
        raw = RawClient(running.host, running.port)
        raw.login("appdb", running.token(ttl=1.5))
        started = time.monotonic()
        message = raw.read_message()  # nothing sent: the next thing the client hears is the FATAL
        assert message is not None and type(message).__name__ == "ErrorResponse"
        assert message.fields["S"] == "FATAL" and message.fields["C"] == "28000"  # type: ignore[attr-defined]
        assert "token expired" in message.fields["M"]  # type: ignore[attr-defined]
        assert time.monotonic() - started < 5
        assert raw.read_message() is None
        raw.close()
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
