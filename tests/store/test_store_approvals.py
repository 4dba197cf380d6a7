"""Approvals on both backends: create/list, compare-and-set decisions, waiting, watching, expiry, cancel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from proxy.store.base import ApprovalRecord, DecisionConflict, DuplicateRecord, RecordNotFound, Store
from tests.store.helpers import StoreMaker, approval


async def next_change(watch, timeout: float = 3.0) -> ApprovalRecord:
    return await asyncio.wait_for(anext(watch), timeout)


async def test_create_get_and_list_oldest_first(stores: StoreMaker) -> None:
    store = await stores.new()
    assert isinstance(store, Store)
    base = time.time()
    records = [approval(f"req-{n}", created_at=base + n) for n in range(5)]
    for record in reversed(records):
        await store.create_approval(record)

    assert await store.get_approval("req-2") == records[2]
    assert await store.get_approval("no-such-request") is None
    assert await store.list_approvals() == records
    # The newest `limit`, still oldest first.
    assert [r.id for r in await store.list_approvals(limit=2)] == ["req-3", "req-4"]

    await store.decide_approval("req-1", state="denied", decider="alice", justification="no", now=base + 10)
    pending = await store.list_approvals(states=["pending"])
    assert [r.id for r in pending] == ["req-0", "req-2", "req-3", "req-4"]
    assert [r.id for r in await store.list_approvals(states={"denied", "approved"})] == ["req-1"]


async def test_create_refuses_duplicates_and_bad_records(stores: StoreMaker) -> None:
    store = await stores.new()
    record = approval("dup")
    await store.create_approval(record)
    with pytest.raises(DuplicateRecord, match="already stored"):
        await store.create_approval(record)
    with pytest.raises(ValueError, match="must be pending"):
        await store.create_approval(replace(approval(), state="approved"))
    with pytest.raises(ValueError, match="NUL"):
        await store.create_approval(approval(statement="SELECT 1\x00"))
    with pytest.raises(ValueError, match="id"):
        await store.create_approval(replace(approval(), id=""))
    with pytest.raises(ValueError, match="unknown approval state"):
        await store.list_approvals(states=["pending", "maybe"])
    with pytest.raises(ValueError, match="limit"):
        await store.list_approvals(limit=0)


async def test_decide_is_compare_and_set(stores: StoreMaker) -> None:
    store = await stores.new()
    record = approval()
    await store.create_approval(record)

    decided = await store.decide_approval(
        record.id, state="approved", decider="alice", justification="looks fine", now=1234.5
    )
    assert decided == replace(
        record, state="approved", decider="alice", decided_at=1234.5, justification="looks fine"
    )
    assert await store.get_approval(record.id) == decided

    with pytest.raises(DecisionConflict, match="already approved"):
        await store.decide_approval(record.id, state="denied", decider="bob", justification=None, now=1235.0)
    assert (await store.get_approval(record.id)) == decided  # the loser changed nothing
    with pytest.raises(DecisionConflict, match="no approval request"):
        await store.decide_approval("missing", state="approved", decider="bob", justification=None, now=1.0)
    with pytest.raises(ValueError, match="cannot decide to 'pending'"):
        await store.decide_approval(record.id, state="pending", decider="bob", justification=None, now=1.0)


async def test_only_one_of_two_concurrent_deciders_wins(stores: StoreMaker) -> None:
    first, second = await stores.new("gw-a"), await stores.new("gw-b")
    records = [approval() for _ in range(10)]
    for record in records:
        await first.create_approval(record)

    for record in records:
        outcomes = await asyncio.gather(
            first.decide_approval(record.id, state="approved", decider="alice", justification=None, now=1.0),
            second.decide_approval(record.id, state="denied", decider="bob", justification=None, now=2.0),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, ApprovalRecord)]
        losers = [o for o in outcomes if isinstance(o, DecisionConflict)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert f"already {winners[0].state}" in str(losers[0])
        assert await second.get_approval(record.id) == winners[0]


async def test_wait_for_decision_is_released_by_another_instance(stores: StoreMaker) -> None:
    holder, approver = await stores.new("gw-a"), await stores.new("gw-b")
    record = approval()
    await holder.create_approval(record)
    waiting = asyncio.create_task(holder.wait_for_decision(record.id, timeout=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    decided_at = time.perf_counter()
    await approver.decide_approval(record.id, state="approved", decider="alice", justification=None, now=5.0)
    released = await asyncio.wait_for(waiting, 5)
    latency = time.perf_counter() - decided_at

    assert released.state == "approved" and released.decider == "alice"
    print(
        f"\n{stores.backend}: wait_for_decision released {latency * 1000:.1f} ms after another store decided"
    )
    assert latency < 1.0


async def test_wait_for_decision_times_out_with_the_pending_record(stores: StoreMaker) -> None:
    store = await stores.new()
    record = approval()
    await store.create_approval(record)
    started = time.perf_counter()
    result = await store.wait_for_decision(record.id, timeout=0.3)
    assert result == record
    assert time.perf_counter() - started >= 0.29


async def test_wait_for_decision_on_decided_or_unknown_requests(stores: StoreMaker) -> None:
    store = await stores.new()
    record = approval()
    await store.create_approval(record)
    await store.decide_approval(record.id, state="cancelled", decider="gateway", justification=None, now=3.0)
    started = time.perf_counter()
    assert (await store.wait_for_decision(record.id, timeout=30)).state == "cancelled"
    assert time.perf_counter() - started < 1.0
    with pytest.raises(RecordNotFound):
        await store.wait_for_decision("missing", timeout=0.1)


async def test_many_waiters_on_one_request_all_released(stores: StoreMaker) -> None:
    holder, approver = await stores.new("gw-a"), await stores.new("gw-b")
    record = approval()
    await holder.create_approval(record)
    waiters = [asyncio.create_task(holder.wait_for_decision(record.id, timeout=10)) for _ in range(20)]
    await asyncio.sleep(0.1)
    await approver.decide_approval(record.id, state="denied", decider="bob", justification="no", now=9.0)
    results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert {r.state for r in results} == {"denied"}


async def test_expire_pending_by_gateway_and_overall(stores: StoreMaker) -> None:
    store = await stores.new()
    now = time.time()
    overdue_a = approval(gateway_id="gw-a", created_at=now - 100, ttl=10)
    overdue_b = approval(gateway_id="gw-b", created_at=now - 100, ttl=10)
    fresh = approval(gateway_id="gw-a", created_at=now, ttl=300)
    decided = approval(gateway_id="gw-a", created_at=now - 100, ttl=10)
    for record in (overdue_a, overdue_b, fresh, decided):
        await store.create_approval(record)
    await store.decide_approval(
        decided.id, state="approved", decider="alice", justification=None, now=now - 95
    )
    waiting = asyncio.create_task(store.wait_for_decision(overdue_a.id, timeout=10))
    await asyncio.sleep(0.05)

    expired = await store.expire_pending(now, gateway_id="gw-a")
    assert [r.id for r in expired] == [overdue_a.id]
    assert expired[0].state == "expired" and expired[0].decided_at == now
    assert (await asyncio.wait_for(waiting, 5)).state == "expired"

    assert [r.id for r in await store.expire_pending(now)] == [overdue_b.id]
    assert await store.expire_pending(now) == []
    assert (await store.get_approval(fresh.id)).state == "pending"
    assert (await store.get_approval(decided.id)).state == "approved"


async def test_cancel_pending_of_a_previous_run(stores: StoreMaker) -> None:
    store = await stores.new("gw-a")
    mine = [approval(gateway_id="gw-a") for _ in range(3)]
    other = approval(gateway_id="gw-b")
    for record in (*mine, other):
        await store.create_approval(record)
    await store.decide_approval(mine[0].id, state="approved", decider="alice", justification=None, now=1.0)

    cancelled = await store.cancel_pending_of_gateway("gw-a", now=50.0)
    assert sorted(r.id for r in cancelled) == sorted(r.id for r in mine[1:])
    assert all(r.state == "cancelled" and r.decided_at == 50.0 for r in cancelled)
    assert (await store.get_approval(mine[0].id)).state == "approved"
    assert (await store.get_approval(other.id)).state == "pending"
    assert await store.cancel_pending_of_gateway("gw-a", now=51.0) == []


async def test_watch_sees_creations_and_decisions_from_another_instance(stores: StoreMaker) -> None:
    watcher_store, other = await stores.new("gw-a"), await stores.new("gw-b")
    watch = watcher_store.watch_approvals()
    record = approval(gateway_id="gw-b")

    await other.create_approval(record)
    seen = await next_change(watch)
    assert seen == record

    await other.decide_approval(record.id, state="denied", decider="bob", justification="risky", now=7.0)
    seen = await next_change(watch)
    assert (seen.id, seen.state, seen.decider, seen.justification) == (record.id, "denied", "bob", "risky")

    local = approval(gateway_id="gw-a")
    await watcher_store.create_approval(local)
    assert (await next_change(watch)).id == local.id
    await watch.aclose()


async def test_watch_replays_each_transition_even_when_both_land_between_polls(stores: StoreMaker) -> None:
    watcher_store, other = await stores.new("gw-a"), await stores.new("gw-b")
    watch = watcher_store.watch_approvals()
    records = [approval() for _ in range(3)]
    for record in records:
        await other.create_approval(record)
        await other.decide_approval(record.id, state="approved", decider="alice", justification=None, now=2.0)
    seen = [await next_change(watch) for _ in range(6)]
    assert [(r.id, r.state) for r in seen] == [
        (record.id, state) for record in records for state in ("pending", "approved")
    ]
    assert seen[0].decider is None and seen[1].decider == "alice"


async def test_watch_ends_when_the_store_closes(stores: StoreMaker) -> None:
    store = await stores.new()
    watch = store.watch_approvals()
    pending_next = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending_next, 3)
