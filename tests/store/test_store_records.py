"""Sessions index, grants and the audit log on both backends, plus a round-trip property for approvals."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.store.base import (
    ApprovalRecord,
    AuditRecord,
    DuplicateRecord,
    GrantRecord,
    RecordNotFound,
    SessionIndexRecord,
)
from tests.store.helpers import StoreMaker, empty_tables


def session(session_id: str, started_at: float, gateway_id: str = "gw-a") -> SessionIndexRecord:
    return SessionIndexRecord(
        id=session_id,
        gateway_id=gateway_id,
        protocol="postgres",
        connection="appdb",
        identity="ci-bot",
        groups=("ci-agents", "ünïcode"),
        client_address="127.0.0.1:50432",
        started_at=started_at,
        ended_at=None,
        end_reason=None,
        recording_path=f"recordings/{session_id}.hrec",
    )


def grant(grant_id: str, group: str, connection: str, expires_at: float) -> GrantRecord:
    return GrantRecord(
        id=grant_id,
        group=group,
        connection=connection,
        allow=("write", "ddl"),
        created_by="alice",
        created_at=100.0,
        expires_at=expires_at,
    )


async def test_sessions_index_start_end_and_list(stores: StoreMaker) -> None:
    store, other = await stores.new("gw-a"), await stores.new("gw-b")
    await store.record_session_start(session("s1", 10.0))
    await other.record_session_start(session("s2", 20.0, gateway_id="gw-b"))
    await store.record_session_start(session("s3", 30.0))

    await other.record_session_end("s1", 40.0, "client disconnected")
    active = await store.list_sessions()
    assert [s.id for s in active] == ["s2", "s3"]
    assert active[0] == session("s2", 20.0, gateway_id="gw-b")

    everything = await store.list_sessions(active_only=False)
    assert [s.id for s in everything] == ["s1", "s2", "s3"]
    assert (everything[0].ended_at, everything[0].end_reason) == (40.0, "client disconnected")
    assert [s.id for s in await store.list_sessions(active_only=False, limit=1)] == ["s3"]

    await store.record_session_end("s1", 99.0, "killed")  # already ended: the first end stands
    ended = (await store.list_sessions(active_only=False))[0]
    assert (ended.ended_at, ended.end_reason) == (40.0, "client disconnected")

    with pytest.raises(RecordNotFound):
        await store.record_session_end("nope", 1.0, "x")
    with pytest.raises(DuplicateRecord):
        await store.record_session_start(session("s2", 50.0))


async def test_grants_expire_and_revoke(stores: StoreMaker) -> None:
    store = await stores.new()
    await store.add_grant(grant("g1", "ci-agents", "appdb", expires_at=1000.0))
    await store.add_grant(grant("g2", "ci-agents", "web1", expires_at=2000.0))
    await store.add_grant(grant("g3", "oncall", "appdb", expires_at=500.0))

    assert [g.id for g in await store.active_grants(200.0)] == ["g1", "g2", "g3"]
    assert [g.id for g in await store.active_grants(200.0, group="ci-agents")] == ["g1", "g2"]
    assert [g.id for g in await store.active_grants(200.0, connection="appdb")] == ["g1", "g3"]
    assert [g.id for g in await store.active_grants(200.0, group="ci-agents", connection="web1")] == ["g2"]
    assert (await store.active_grants(200.0, group="ci-agents"))[0] == grant(
        "g1", "ci-agents", "appdb", 1000.0
    )
    # Expiry is by time alone.
    assert [g.id for g in await store.active_grants(600.0)] == ["g1", "g2"]
    assert [g.id for g in await store.active_grants(1500.0)] == ["g2"]

    revoked = await store.revoke_grant("g2", now=300.0)
    assert revoked.revoked_at == 300.0 and revoked.allow == ("write", "ddl")
    assert [g.id for g in await store.active_grants(400.0)] == ["g1", "g3"]
    assert (await store.revoke_grant("g2", now=350.0)).revoked_at == 300.0
    with pytest.raises(RecordNotFound):
        await store.revoke_grant("nope", now=1.0)
    with pytest.raises(DuplicateRecord):
        await store.add_grant(grant("g1", "x", "y", 1.0))


async def test_audit_append_and_list(stores: StoreMaker) -> None:
    store, other = await stores.new("gw-a"), await stores.new("gw-b")
    details = [
        {"decision": "deny", "kind": "drop"},
        {"nested": {"list": [1, 2.5, None, True], "text": "ünïcode ✓ \"quoted\" 'single'"}},
        {},
    ]
    for n, detail in enumerate(details):
        writer = store if n % 2 == 0 else other
        await writer.append_audit(AuditRecord(None, 100.0 + n, "alice", f"action-{n}", "s1", "appdb", detail))
    await store.append_audit(AuditRecord(None, 200.0, "gateway", "start", None, None, {}))

    everything = await other.list_audit()
    assert [r.action for r in everything] == ["action-0", "action-1", "action-2", "start"]
    assert [r.detail for r in everything[:3]] == details
    assert all(r.id is not None for r in everything)
    assert len({r.id for r in everything}) == 4
    assert everything[3].session_id is None and everything[3].connection is None

    assert [r.action for r in await store.list_audit(since=101.0)] == ["action-1", "action-2", "start"]
    assert [r.action for r in await store.list_audit(since=101.0, limit=2)] == ["action-1", "action-2"]
    assert [r.action for r in await store.list_audit(limit=2)] == ["action-2", "start"]


async def test_audit_refuses_what_it_cannot_store_faithfully(stores: StoreMaker) -> None:
    store = await stores.new()
    with pytest.raises(ValueError, match="JSON"):
        await store.append_audit(AuditRecord(None, 1.0, "a", "b", None, None, {"when": object()}))
    with pytest.raises(ValueError, match="JSON"):
        await store.append_audit(AuditRecord(None, 1.0, "a", "b", None, None, {"x": math.nan}))
    with pytest.raises(ValueError, match="NUL"):
        await store.append_audit(AuditRecord(None, 1.0, "a", "b", None, None, {"x": ["a\x00b"]}))
    with pytest.raises(ValueError, match="assigned by the store"):
        await store.append_audit(AuditRecord(7, 1.0, "a", "b", None, None, {}))
    assert await store.list_audit() == []


# A property test: any text the gateway may hand over comes back unchanged, on both backends.

printable = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=60)
ids = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=40)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
groups = st.lists(printable, max_size=4).map(tuple)


@st.composite
def approval_records(draw: st.DrawFn) -> ApprovalRecord:
    created = draw(times)
    return ApprovalRecord(
        id=draw(ids) + secrets.token_hex(4),
        session_id=draw(printable),
        requester=draw(printable),
        requester_groups=draw(groups),
        connection=draw(printable),
        protocol=draw(st.sampled_from(["postgres", "ssh"])),
        statement=draw(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))),
        kind=draw(printable),
        reason=draw(printable),
        rule=draw(printable),
        approvers=draw(groups),
        created_at=created,
        expires_at=created + draw(st.floats(min_value=0, max_value=1e6)),
        state="pending",
        gateway_id=draw(printable),
    )


@pytest.fixture
def runner_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple]:
    """A store opened on a loop of its own, so a synchronous hypothesis test can drive it per example."""
    database = None
    if backend == "postgres":
        database = request.getfixturevalue("pg_database")
        empty_tables(database)
    maker = StoreMaker(backend, tmp_path / "hoop.db", database)
    with asyncio.Runner() as runner:
        store = runner.run(maker.new())
        try:
            yield runner, store
        finally:
            runner.run(maker.close_all())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=approval_records(), justification=st.none() | printable)
def test_approvals_round_trip_any_text(
    runner_store: tuple, record: ApprovalRecord, justification: str | None
) -> None:
    runner, store = runner_store

    async def round_trip() -> None:
        await store.create_approval(record)
        assert await store.get_approval(record.id) == record
        decided = await store.decide_approval(
            record.id,
            state="denied",
            decider=record.requester + "-approver",
            justification=justification,
            now=5.0,
        )
        assert await store.get_approval(record.id) == decided
        assert decided.justification == justification

    runner.run(round_trip())
