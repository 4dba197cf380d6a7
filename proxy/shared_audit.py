"""The shared part of the audit trail: what every gateway of a fleet must see, in the store's audit table.

Every record still goes to the process's JSONL file (proxy/audit.py). The store gets all but the allowed
statements and commands: those come at pgbench rates and would make the shared store the bottleneck; the
refusals, holds, approvals, grants, kills, logins refused and session starts/ends are what operators of a
fleet search for across gateways.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from proxy.sessions import Session
from proxy.store.base import AuditRecord, Store

log = logging.getLogger("hoop.audit")

MAX_QUEUED = 10_000  # beyond this the store is not keeping up; records still reach the JSONL file
_PER_STATEMENT = frozenset({"statement", "command"})


def is_shared(record: dict[str, Any]) -> bool:
    return not (record.get("action") in _PER_STATEMENT and record.get("decision") == "allow")


class SharedAudit:
    """Queues records on the event loop and writes them to the store one at a time from one task."""

    def __init__(self, store: Store, gateway_id: str) -> None:
        self._store = store
        self._gateway_id = gateway_id
        self._queue: asyncio.Queue[AuditRecord] | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._queue = asyncio.Queue(MAX_QUEUED)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float = 5.0) -> None:
        if self._task is None or self._queue is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("shared audit: %d records not written to the store at stop", self._queue.qsize())
        self._task.cancel()

    def append(self, session: Session | None, record: dict[str, Any]) -> None:
        queue = self._queue
        if queue is None or not is_shared(record):
            return
        if session is not None:
            actor, session_id, connection = session.identity.subject, session.id, session.connection
        else:
            actor = str(record.get("decider") or record.get("identity") or f"gateway {self._gateway_id}")
            session_id, connection = None, record.get("connection")
        entry = AuditRecord(
            id=None,
            at=time.time(),
            actor=actor,
            action=str(record.get("action", "unknown")),
            session_id=session_id,
            connection=str(connection) if connection is not None else None,
            detail={**record, "gateway": self._gateway_id},
        )
        try:
            queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.error(
                    "shared audit: the store is not keeping up; %d records kept in files only", self.dropped
                )

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            entry = await self._queue.get()
            try:
                await self._store.append_audit(entry)
            except Exception as error:  # the JSONL file still has it; the store may be back for the next
                log.error("shared audit: cannot write %s to the store: %s", entry.action, error)
            finally:
                self._queue.task_done()
