"""A gateway with a control socket and a policy holding writes for `oncall`; the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningGateway, start_gateway
from tests.enforcement.conftest import SEED
from tests.pg_fixture import UpstreamPostgres

REPO_ROOT = Path(__file__).resolve().parents[2]

REVIEW_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
review = ["write"]
deny = ["drop", "truncate", "ddl", "dcl", "opaque", "write:no_where"]
review_timeout = "60s"
approvers = ["oncall"]
"""


def control_settings(control: str) -> str:
    return f'control = "{control}"\nadmin_groups = ["admins"]\nauditor_groups = ["auditors"]\n'


@pytest.fixture
def seeded(upstream: UpstreamPostgres) -> UpstreamPostgres:
    upstream.execute(SEED)
    return upstream


def start_controlled(tmp: Path, upstream: UpstreamPostgres, control: str | None = None) -> RunningGateway:
    control = control or f"unix:{tmp}/control.sock"
    return start_gateway(tmp, upstream, policies=REVIEW_POLICY, extra=control_settings(control))


@pytest.fixture
def controlled(tmp_path: Path, seeded: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_controlled(tmp_path, seeded)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]


def control_address(gateway: RunningGateway) -> str:
    return gateway.gateway.control.address


def cli(*args: str, token: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`hoop-tui ARGS...` in a fresh process, with HOOP_TOKEN set to `token` (or unset)."""
    env = {key: value for key, value in os.environ.items() if key != "HOOP_TOKEN"}
    if token is not None:
        env["HOOP_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "hoop_tui.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def cli_json(*args: str, token: str) -> Any:
    result = cli(*args, "--json", token=token)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start_psql(gateway: RunningGateway, sql: str, token: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", gateway.dsn(token=token), "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: Any, what: str, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `predicate()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def pending_via_cli(address: str, token: str, count: int = 1) -> list[dict[str, Any]]:
    def pending() -> list[dict[str, Any]] | None:
        found = cli_json("approvals", "list", "--control", address, token=token)
        return found if len(found) >= count else None

    return wait_for(pending, "a held statement to be listed")
