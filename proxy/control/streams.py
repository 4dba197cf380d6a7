"""Server-side streams: a snapshot plus an async generator of events; sessions and approvals watches."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.control.errors import ControlError
from proxy.control.views import approval_view, indexed_session_view, live_session_view
from proxy.sessions import Session
from proxy.store.base import StoreError

if TYPE_CHECKING:
    from proxy.gateway import Gateway

MAX_PENDING_SESSION_CHANGES = 10_000
SESSIONS_INDEX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream the gateway ends itself; `reason` is one line for people."""

    reason: str


@dataclass(slots=True)
class Watch:
    """An opened stream. Subscriptions are live before `initial` was read, so nothing falls in between.
    Whoever opened it must `await events.aclose()` (it releases the subscriptions)."""

    initial: Any
    events: AsyncGenerator[Any, None]


async def list_sessions(gateway: Gateway, *, include_ended: bool, limit: int) -> list[dict[str, Any]]:
    """The shared index (every worker and gateway), with this process's sessions as live views on top."""
    try:
        records = await gateway.store.list_sessions(active_only=not include_ended, limit=limit)
    except StoreError as error:
        raise ControlError(f"cannot read the sessions index: {error}") from None
    views = {record.id: indexed_session_view(record) for record in records}
    for session in gateway.sessions.list():  # a session the background index write has not reached yet, too
        views[session.id] = live_session_view(session, gateway.instance_id)
    return sorted(views.values(), key=lambda view: (view["started_at"], view["id"]))


async def watch_sessions(gateway: Gateway, interval: float) -> Watch:
    """Started/ended at once for this process's sessions; every `interval`: counters of local sessions and
    the sessions other workers or gateways started or ended (from the shared index)."""
    changes: deque[dict[str, Any]] = deque()
    wake = asyncio.Event()
    overflowed = False
    instance = gateway.instance_id

    def on_change(kind: str, session: Session) -> None:
        nonlocal overflowed
        if len(changes) >= MAX_PENDING_SESSION_CHANGES:
            overflowed = True  # the viewer gets a fresh snapshot instead of an unbounded backlog
            return
        ended_at = time.time() if kind == "ended" else None
        changes.append({"type": kind, "session": live_session_view(session, instance, ended_at)})
        wake.set()

    unsubscribe = gateway.sessions.subscribe(on_change)
    try:
        initial = await list_sessions(gateway, include_ended=False, limit=SESSIONS_INDEX_LIMIT)
    except BaseException:
        unsubscribe()
        raise
    remote = {view["id"]: view for view in initial if view["gateway"] != instance}

    async def events() -> AsyncGenerator[Any, None]:
        nonlocal overflowed, remote
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + interval
        try:
            while True:
                if overflowed:
                    overflowed = False
                    changes.clear()
                    snapshot = await list_sessions(gateway, include_ended=False, limit=SESSIONS_INDEX_LIMIT)
                    remote = {view["id"]: view for view in snapshot if view["gateway"] != instance}
                    yield {"type": "snapshot", "sessions": snapshot}
                while changes:
                    yield changes.popleft()
                wake.clear()
                delay = next_tick - loop.time()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await wake.wait()
                        continue
                    except TimeoutError:
                        pass
                next_tick = loop.time() + interval
                counters = [live_session_view(session, instance) for session in gateway.sessions.list()]
                yield {"type": "counters", "sessions": counters}
                async for change in _remote_changes(gateway, remote):
                    yield change
        finally:
            unsubscribe()

    return Watch(initial, events())


async def _remote_changes(
    gateway: Gateway, remote: dict[str, dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """Sessions of other workers and gateways that started or ended since the last look (updates `remote`)."""
    try:
        records = await gateway.store.list_sessions(active_only=True, limit=SESSIONS_INDEX_LIMIT)
    except StoreError:
        return  # the next tick tries again; local sessions are unaffected
    current = {r.id: indexed_session_view(r) for r in records if r.gateway_id != gateway.instance_id}
    for session_id in current.keys() - remote.keys():
        yield {"type": "started", "session": current[session_id]}
    now = time.time()
    for session_id in remote.keys() - current.keys():
        yield {"type": "ended", "session": {**remote.pop(session_id), "ended_at": now}}
    remote.update(current)


async def watch_approvals(gateway: Gateway) -> Watch:
    """Pending requests now, then every creation and decision on any gateway sharing the store."""
    feed = gateway.store.watch_approvals()
    try:
        pending = await gateway.store.list_approvals(states=["pending"])
    except StoreError as error:
        await _close_feed(feed)
        raise ControlError(f"cannot read approval requests: {error}") from None

    async def events() -> AsyncGenerator[Any, None]:
        try:
            async for record in feed:
                yield approval_view(record)
            yield StreamEnd("the gateway's state store closed")
        finally:
            await _close_feed(feed)

    return Watch([approval_view(record) for record in pending], events())


async def _close_feed(feed: AsyncIterator[Any]) -> None:
    close = getattr(feed, "aclose", None)
    if close is not None:
        await close()
