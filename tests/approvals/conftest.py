"""A gateway that holds writes for review, and helpers to act as the human approver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.identity.model import Identity
from proxy.store.base import ApprovalRecord
from tests.conftest import RunningGateway, start_gateway
from tests.enforcement.conftest import SEED
from tests.pg_fixture import UpstreamPostgres

REVIEW_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
review = ["write"]
deny = ["drop", "truncate", "ddl", "dcl", "opaque"]
review_timeout = "60s"
approvers = ["oncall"]

[[policies]]
groups = ["hasty"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility"]
review = ["write"]
review_timeout = "2s"
approvers = ["oncall"]
"""


@pytest.fixture
def seeded(upstream: UpstreamPostgres) -> UpstreamPostgres:
    upstream.execute(SEED)
    return upstream


@pytest.fixture
def reviewing(tmp_path: Path, seeded: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path, seeded, policies=REVIEW_POLICY)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]


def person(subject: str, *groups: str) -> Identity:
    return Identity(
        subject=subject, groups=groups, issuer="test", expires_at=time.time() + 600, token_id=None, claims={}
    )


def wait_for_pending(gateway: RunningGateway, count: int = 1, timeout: float = 15) -> list[ApprovalRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = gateway.thread.call(gateway.gateway.store.list_approvals(states=["pending"]))  # type: ignore[attr-defined]
        if len(pending) >= count:
            return pending
        time.sleep(0.05)
    raise AssertionError("no statement was held for review")


def decide(
    gateway: RunningGateway, request_id: str, decider: Identity, approve: bool, reason: str | None = None
):
    coroutine = gateway.gateway.approvals.decide(request_id, decider, approve=approve, justification=reason)
    return gateway.thread.call(coroutine)  # type: ignore[attr-defined]


def approval(gateway: RunningGateway, request_id: str) -> ApprovalRecord:
    record = gateway.thread.call(gateway.gateway.store.get_approval(request_id))  # type: ignore[attr-defined]
    assert record is not None
    return record
