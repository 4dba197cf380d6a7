"""A gateway that holds writes for review, an on-call operator signed in to it, and a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.approvals.conftest import REVIEW_POLICY
from tests.conftest import RunningGateway, start_gateway
from tests.enforcement.conftest import SEED
from tests.pg_fixture import UpstreamPostgres

SIZE = (100, 30)
# Killing a session is an admin's act; "oncall" alone only approves.
ADMINS = 'admin_groups = ["sre"]'


def control_settings(tmp: Path) -> str:
    """A control socket for `attach`, and the admin group."""
    return f'control = "unix:{tmp}/control.sock"\n{ADMINS}\n'


class FrozenClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def seeded(upstream: UpstreamPostgres) -> UpstreamPostgres:
    upstream.execute(SEED)
    return upstream


@pytest.fixture
def reviewing(tmp_path: Path, seeded: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path, seeded, policies=REVIEW_POLICY, extra=control_settings(tmp_path))
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
