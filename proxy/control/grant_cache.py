"""The gateway's in-memory copy of active just-in-time grants: refreshed from the store, expired by the clock.

Session policies never wait for the store: the cache tells each attached policy when the set of active
grants changes, so a statement's decision costs nothing extra. It refreshes every `refresh_interval` seconds
(and at once after a grant is added or revoked through this gateway), and drops a grant when its
`expires_at` passes (a timer on the event loop), whatever the refresh timing. If the store cannot be read for
`MAX_FAILED_REFRESHES` rounds in a row, every grant is dropped: a revocation might have been missed, and a
grant only ever widens access.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from proxy.store.base import GrantRecord, Store, StoreError

log = logging.getLogger("hoop.grants")

DEFAULT_REFRESH_INTERVAL = 2.0
MAX_FAILED_REFRESHES = 3
_TIMER_SLACK = 0.001  # the loop's clock and the wall clock differ slightly: fire just after expires_at


class GrantListener(Protocol):
    def grants_changed(self) -> None: ...


class GrantCache:
    """Active grants by (group, connection). `version` changes whenever the set of active grants does."""

    def __init__(
        self,
        store: Store,
        audit: Callable[[dict[str, Any]], None],
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        audit_expiry: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._audit = audit
        self._refresh_interval = refresh_interval
        self._audit_expiry = audit_expiry  # one process per gateway records expiries, not every worker
        self._clock = clock
        self._grants: dict[str, GrantRecord] = {}
        self._by_scope: dict[tuple[str, str], tuple[GrantRecord, ...]] = {}
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._listeners: weakref.WeakSet[GrantListener] = weakref.WeakSet()
        self._expiry_timer: asyncio.TimerHandle | None = None
        self.version = 0
        self.next_expiry = math.inf

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="hoop-grant-cache")

    async def stop(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Read the active grants from the store now."""
        try:
            records = await self._store.active_grants(self._clock())
        except StoreError as error:
            self._failures += 1
            if self._failures == MAX_FAILED_REFRESHES:
                log.warning(
                    "cannot read grants from the store (%s); dropping every grant until it is back", error
                )
            if self._failures >= MAX_FAILED_REFRESHES:
                self._install([])
            return
        self._failures = 0
        self._install(records)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except Exception:  # a bug here must not leave stale grants in force without a word
                log.exception("grant refresh failed")

    def _install(self, records: Iterable[GrantRecord]) -> None:
        now = self._clock()
        fresh = {record.id: record for record in records if record.expires_at > now}
        if fresh.keys() == self._grants.keys():
            return
        for grant_id in self._grants.keys() - fresh.keys():
            gone = self._grants[grant_id]
            if gone.expires_at <= now:
                self._record_expiry(gone)
        self._grants = fresh
        self._reindex()

    def attach(self, listener: GrantListener) -> None:
        """Call `listener.grants_changed()` whenever the active grants change (held weakly)."""
        self._listeners.add(listener)

    def expire_due(self) -> None:
        """Drop grants whose time has passed (the expiry timer calls this)."""
        now = self._clock()
        if now < self.next_expiry:
            self._arm_expiry_timer()
            return
        expired = [grant for grant in self._grants.values() if grant.expires_at <= now]
        for grant in expired:
            del self._grants[grant.id]
            self._record_expiry(grant)
        self._reindex()

    def _reindex(self) -> None:
        by_scope: dict[tuple[str, str], list[GrantRecord]] = {}
        for grant in sorted(self._grants.values(), key=lambda g: (g.created_at, g.id)):
            by_scope.setdefault((grant.group, grant.connection), []).append(grant)
        self._by_scope = {scope: tuple(grants) for scope, grants in by_scope.items()}
        self.next_expiry = min((grant.expires_at for grant in self._grants.values()), default=math.inf)
        self.version += 1
        for listener in list(self._listeners):
            listener.grants_changed()
        self._arm_expiry_timer()

    def _arm_expiry_timer(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if self.next_expiry == math.inf:
            return
        try:
            loop = asyncio.get_running_loop()
        except (
            RuntimeError
        ):  # not on a loop (tests driving the cache by hand): expire_due() is called directly
            return
        delay = max(0.0, self.next_expiry - self._clock()) + _TIMER_SLACK
        self._expiry_timer = loop.call_later(delay, self.expire_due)

    def _record_expiry(self, grant: GrantRecord) -> None:
        log.info("grant %s for %s on %s expired", grant.id, grant.group, grant.connection)
        if self._audit_expiry:
            self._audit(
                {
                    "action": "grant.expired",
                    "grant": grant.id,
                    "group": grant.group,
                    "connection": grant.connection,
                    "allow": list(grant.allow),
                    "expires_at": grant.expires_at,
                }
            )

    def matching(self, groups: Iterable[str], connection: str) -> tuple[GrantRecord, ...]:
        """Grants in force for an identity in `groups` on `connection`, oldest first."""
        found: list[GrantRecord] = []
        for group in groups:
            found.extend(self._by_scope.get((group, connection), ()))
        return tuple(sorted(found, key=lambda g: (g.created_at, g.id))) if len(found) > 1 else tuple(found)

    def active(self) -> list[GrantRecord]:
        return sorted(self._grants.values(), key=lambda g: (g.created_at, g.id))
