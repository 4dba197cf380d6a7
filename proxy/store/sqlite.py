"""The embedded store: one SQLite file in WAL mode, driven from one worker thread, shareable by processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from proxy.store.base import (
    ApprovalRecord,
    AuditRecord,
    DecisionConflict,
    DuplicateRecord,
    GrantRecord,
    RecordNotFound,
    SessionIndexRecord,
    StoreUnavailable,
    audit_detail_json,
    check_decision,
    check_grant,
    check_limit,
    check_new_approval,
    check_session,
    check_states,
    check_time,
)
from proxy.store.feed import ApprovalChange, ApprovalFeed, await_decision
from proxy.store.migrations import SchemaTooNew, latest_version, migrations_after
from proxy.store.migrations.sqlite import MIGRATIONS, SCHEMA_VERSION_TABLE
from proxy.store.rows import (
    APPROVAL_COLUMNS,
    AUDIT_COLUMNS,
    GRANT_COLUMNS,
    SESSION_COLUMNS,
    approval_as_of_change,
    approval_from_row,
    approval_values,
    audit_from_row,
    grant_from_row,
    grant_values,
    session_from_row,
    session_values,
)

log = logging.getLogger("hoop.store")

T = TypeVar("T")
DATABASE_FILE = "hoop.db"
CHANGE_LOG_RETENTION = 3600.0  # seconds of approval changes kept for followers that fell behind

_APPROVAL_INSERT = (
    f"INSERT INTO approvals ({', '.join(APPROVAL_COLUMNS)}) VALUES ({', '.join('?' * len(APPROVAL_COLUMNS))})"
)
_GRANT_INSERT = (
    f"INSERT INTO grants ({', '.join(GRANT_COLUMNS)}) VALUES ({', '.join('?' * len(GRANT_COLUMNS))})"
)
_SESSION_INSERT = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({', '.join('?' * len(SESSION_COLUMNS))})"
)
_AUDIT_INSERT = f"INSERT INTO audit ({', '.join(AUDIT_COLUMNS[1:])}) VALUES (?, ?, ?, ?, ?, ?)"


def _encode_strings(values: tuple[str, ...]) -> str:
    if isinstance(values, str):
        raise ValueError("expected a tuple of strings, not a single string")
    return json.dumps(list(values), separators=(",", ":"))


def _decode_strings(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


class _LocalFollowers:
    """Feeds of every open store in this process, by database file, so a local write wakes them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[str, weakref.WeakSet[ApprovalFeed]] = {}

    def add(self, key: str, feed: ApprovalFeed) -> None:
        with self._lock:
            self._feeds.setdefault(key, weakref.WeakSet()).add(feed)

    def discard(self, key: str, feed: ApprovalFeed) -> None:
        with self._lock:
            feeds = self._feeds.get(key)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._feeds[key]

    def wake(self, key: str) -> None:
        with self._lock:
            feeds = list(self._feeds.get(key, ()))
        for feed in feeds:
            feed.wake_threadsafe()


_local_followers = _LocalFollowers()


class SqliteStore:
    """The SQLite backend. Other processes on the same file (SO_REUSEPORT workers) are seen by polling."""

    def __init__(
        self,
        path: Path,
        gateway_id: str,
        *,
        busy_timeout: float = 5.0,
        poll_interval: float = 0.1,
        synchronous: str = "NORMAL",  # WAL + NORMAL: no corruption on power loss, may lose the last commits
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        self.path = Path(path)
        self.gateway_id = gateway_id
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._synchronous = synchronous
        self._key = os.path.realpath(self.path)
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None  # touched only on the worker thread
        self._feed: ApprovalFeed | None = None
        self._open_lock = asyncio.Lock()

    # lifecycle

    async def open(self) -> None:
        async with self._open_lock:
            if self._feed is not None:
                return
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="hoop-store-sqlite")
            try:
                await self._call(self._connect_and_migrate)
                feed = ApprovalFeed(self._fetch_changes, self._latest_change, lambda: self._poll_interval)
                await feed.start()
            except BaseException:
                await self._shut_down_worker()
                raise
            self._feed = feed
            _local_followers.add(self._key, feed)

    async def close(self) -> None:
        async with self._open_lock:
            feed, self._feed = self._feed, None
            if feed is not None:
                _local_followers.discard(self._key, feed)
                await feed.close()
            await self._shut_down_worker()

    # approvals

    async def create_approval(self, record: ApprovalRecord) -> None:
        check_new_approval(record)
        values = approval_values(record, _encode_strings)
        await self._call(self._insert, _APPROVAL_INSERT, values, f"approval request {record.id!r}")
        _local_followers.wake(self._key)

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        rows = await self._call(self._fetch, "SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return approval_from_row(rows[0], _decode_strings) if rows else None

    async def list_approvals(
        self, *, states: Collection[str] | None = None, limit: int = 200
    ) -> list[ApprovalRecord]:
        """The newest `limit` requests (in `states` when given), oldest first."""
        check_limit(limit)
        wanted = check_states(states)
        where = f"WHERE state IN ({', '.join('?' * len(wanted))})" if wanted is not None else ""
        sql = (
            f"SELECT * FROM (SELECT * FROM approvals {where} ORDER BY created_at DESC, id DESC LIMIT ?)"
            " ORDER BY created_at, id"
        )
        rows = await self._call(self._fetch, sql, (*(wanted or ()), limit))
        return [approval_from_row(row, _decode_strings) for row in rows]

    async def decide_approval(
        self, approval_id: str, *, state: str, decider: str, justification: str | None, now: float
    ) -> ApprovalRecord:
        """Atomic across processes, an UPDATE guarded by state = 'pending'; a loser gets DecisionConflict."""
        check_decision(state, decider, justification, now)
        record = await self._call(self._decide, approval_id, state, decider, justification, float(now))
        _local_followers.wake(self._key)
        return record

    async def wait_for_decision(self, approval_id: str, timeout: float) -> ApprovalRecord:
        return await await_decision(self._open_feed(), self.get_approval, approval_id, timeout)

    def watch_approvals(self) -> AsyncIterator[ApprovalRecord]:
        return self._open_feed().watch()

    async def expire_pending(self, now: float, gateway_id: str | None = None) -> list[ApprovalRecord]:
        check_time("now", now)
        sql = (
            "UPDATE approvals SET state = 'expired', decided_at = ?"
            " WHERE state = 'pending' AND expires_at <= ?"
        )
        params: tuple[Any, ...] = (float(now), float(now))
        if gateway_id is not None:
            sql += " AND gateway_id = ?"
            params += (gateway_id,)
        records = await self._call(self._update_many, sql + " RETURNING *", params, float(now))
        if records:
            _local_followers.wake(self._key)
        return records

    async def cancel_pending_of_gateway(self, gateway_id: str, now: float) -> list[ApprovalRecord]:
        check_time("now", now)
        sql = (
            "UPDATE approvals SET state = 'cancelled', decided_at = ?"
            " WHERE state = 'pending' AND gateway_id = ? RETURNING *"
        )
        records = await self._call(self._update_many, sql, (float(now), gateway_id), float(now))
        if records:
            _local_followers.wake(self._key)
        return records

    # sessions index

    async def record_session_start(self, record: SessionIndexRecord) -> None:
        check_session(record)
        values = session_values(record, _encode_strings)
        await self._call(self._insert, _SESSION_INSERT, values, f"session {record.id!r}")

    async def record_session_end(self, session_id: str, ended_at: float, reason: str) -> None:
        """Idempotent: a session already ended keeps its first end time and reason."""
        check_time("ended_at", ended_at)
        await self._call(self._end_session, session_id, float(ended_at), reason)

    async def list_sessions(self, *, active_only: bool = True, limit: int = 500) -> list[SessionIndexRecord]:
        """The newest `limit` sessions (only those not ended, by default), oldest first."""
        check_limit(limit)
        where = "WHERE ended_at IS NULL" if active_only else ""
        sql = (
            f"SELECT * FROM (SELECT * FROM sessions {where} ORDER BY started_at DESC, id DESC LIMIT ?)"
            " ORDER BY started_at, id"
        )
        rows = await self._call(self._fetch, sql, (limit,))
        return [session_from_row(row, _decode_strings) for row in rows]

    # grants

    async def add_grant(self, record: GrantRecord) -> None:
        check_grant(record)
        values = grant_values(record, _encode_strings)
        await self._call(self._insert, _GRANT_INSERT, values, f"grant {record.id!r}")

    async def active_grants(
        self, now: float, *, group: str | None = None, connection: str | None = None
    ) -> list[GrantRecord]:
        """Grants neither revoked nor expired at `now`, oldest first."""
        check_time("now", now)
        sql = "SELECT * FROM grants WHERE revoked_at IS NULL AND expires_at > ?"
        params: tuple[Any, ...] = (float(now),)
        if group is not None:
            sql += " AND group_name = ?"
            params += (group,)
        if connection is not None:
            sql += " AND connection = ?"
            params += (connection,)
        rows = await self._call(self._fetch, sql + " ORDER BY created_at, id", params)
        return [grant_from_row(row, _decode_strings) for row in rows]

    async def revoke_grant(self, grant_id: str, now: float) -> GrantRecord:
        """Idempotent: revoking a revoked grant returns it unchanged. Unknown ids raise RecordNotFound."""
        check_time("now", now)
        return await self._call(self._revoke, grant_id, float(now))

    # audit log

    async def append_audit(self, record: AuditRecord) -> None:
        detail = audit_detail_json(record)
        values = (float(record.at), record.actor, record.action, record.session_id, record.connection, detail)
        await self._call(self._insert, _AUDIT_INSERT, values, "audit record")

    async def list_audit(self, *, since: float | None = None, limit: int = 1000) -> list[AuditRecord]:
        """With `since`: the first `limit` records at or after it (page forward). Without: the newest `limit`.

        Oldest first either way.
        """
        check_limit(limit)
        if since is None:
            sql = "SELECT * FROM (SELECT * FROM audit ORDER BY at DESC, id DESC LIMIT ?) ORDER BY at, id"
            params: tuple[Any, ...] = (limit,)
        else:
            check_time("since", since)
            sql = "SELECT * FROM audit WHERE at >= ? ORDER BY at, id LIMIT ?"
            params = (float(since), limit)
        rows = await self._call(self._fetch, sql, params)
        return [audit_from_row(row, json.loads) for row in rows]

    # the worker thread

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreUnavailable("the state store is not open")
        try:
            future = self._executor.submit(partial(self._guarded, function, *args))
        except RuntimeError:  # the executor was shut down under us
            raise StoreUnavailable("the state store is closed") from None
        return await asyncio.wrap_future(future)

    @staticmethod
    def _guarded(function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as error:  # locked past busy_timeout, I/O error, not a database, ...
            raise StoreUnavailable(f"the SQLite state store failed: {error}") from None
        except OSError as error:  # the state directory or file cannot be created or opened
            raise StoreUnavailable(f"the SQLite state store cannot be opened: {error}") from None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreUnavailable("the state store is not open")
        return self._connection

    def _connect_and_migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file private before SQLite does: it holds statements and the audit trail.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        connection = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            self._enable_wal(connection)
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access, which SQLite does not always wait for.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise StoreUnavailable(
                f"the SQLite state store cannot use WAL mode (got {mode!r}); use a local disk"
            )

    @staticmethod
    def _schema_version(connection: sqlite3.Connection) -> int:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        return int(connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def _migrate(self, connection: sqlite3.Connection) -> None:
        try:
            if not migrations_after(self._schema_version(connection), MIGRATIONS):
                return
            # IMMEDIATE takes the write lock up front: concurrent openers queue here, and each re-reads the
            # version inside the lock, so every migration runs exactly once.
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(SCHEMA_VERSION_TABLE)
                for migration in migrations_after(self._schema_version(connection), MIGRATIONS):
                    for statement in migration.statements:
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                        (migration.version, migration.description, time.time()),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        except SchemaTooNew as error:
            raise StoreUnavailable(str(error)) from None
        log.debug("sqlite store at schema version %d", latest_version(MIGRATIONS))

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _shut_down_worker(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_connection)
        finally:
            executor.shutdown(wait=False)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        return self._db().execute(sql, params).fetchall()

    def _insert(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        try:
            self._db().execute(sql, params)
        except sqlite3.IntegrityError as error:
            if "UNIQUE" in str(error):
                raise DuplicateRecord(f"{what} is already stored") from None
            raise

    def _decide(
        self, approval_id: str, state: str, decider: str, justification: str | None, now: float
    ) -> ApprovalRecord:
        rows = (
            self._db()
            .execute(
                "UPDATE approvals SET state = ?, decider = ?, decided_at = ?, justification = ?"
                " WHERE id = ? AND state = 'pending' RETURNING *",
                (state, decider, now, justification, approval_id),
            )
            .fetchall()
        )
        if rows:
            return approval_from_row(rows[0], _decode_strings)
        current = self._db().execute("SELECT state FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if current is None:
            raise DecisionConflict(f"no approval request {approval_id!r}")
        raise DecisionConflict(f"approval request {approval_id!r} is already {current['state']}")

    def _update_many(self, sql: str, params: tuple[Any, ...], now: float) -> list[ApprovalRecord]:
        connection = self._db()
        rows = connection.execute(sql, params).fetchall()
        # Housekeeping rides along with the periodic expiry sweep.
        connection.execute("DELETE FROM approval_changes WHERE at < ?", (now - CHANGE_LOG_RETENTION,))
        records = [approval_from_row(row, _decode_strings) for row in rows]
        return sorted(records, key=lambda record: (record.created_at, record.id))

    def _end_session(self, session_id: str, ended_at: float, reason: str) -> None:
        connection = self._db()
        updated = connection.execute(
            "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
            (ended_at, reason, session_id),
        ).rowcount
        if (
            updated == 0
            and connection.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None
        ):
            raise RecordNotFound(f"no session {session_id!r} in the index")

    def _revoke(self, grant_id: str, now: float) -> GrantRecord:
        connection = self._db()
        rows = connection.execute(
            "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *",
            (now, grant_id),
        ).fetchall()
        if not rows:
            rows = connection.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchall()
        if not rows:
            raise RecordNotFound(f"no grant {grant_id!r}")
        return grant_from_row(rows[0], _decode_strings)

    def _fetch_changes_on_thread(self, cursor: int, limit: int) -> list[ApprovalChange]:
        rows = (
            self._db()
            .execute(
                "SELECT c.seq AS change_seq, c.state AS change_state, a.* FROM approval_changes c"
                " JOIN approvals a ON a.id = c.approval_id WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
                (cursor, limit),
            )
            .fetchall()
        )
        return [
            ApprovalChange(
                row["change_seq"],
                approval_as_of_change(approval_from_row(row, _decode_strings), row["change_state"]),
            )
            for row in rows
        ]

    async def _fetch_changes(self, cursor: int, limit: int) -> list[ApprovalChange]:
        return await self._call(self._fetch_changes_on_thread, cursor, limit)

    async def _latest_change(self) -> int:
        rows = await self._call(self._fetch, "SELECT coalesce(max(seq), 0) AS seq FROM approval_changes", ())
        return int(rows[0]["seq"])

    def _open_feed(self) -> ApprovalFeed:
        if self._feed is None:
            raise StoreUnavailable("the state store is not open")
        return self._feed
