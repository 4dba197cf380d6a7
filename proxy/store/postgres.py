"""The shared store for several gateways: PostgreSQL via a small asyncpg pool, woken by LISTEN/NOTIFY.

The URL must not carry a password (the config refuses one): the password comes from the HOOP_STORE_PASSWORD
environment variable when set (see `proxy.store.factory`); otherwise none is sent, and asyncpg falls back to
libpq's usual sources (PGPASSWORD, ~/.pgpass) or password-less methods (trust, peer, certificates).
The store user needs CREATE on the database the first time, to create the `hoop` schema and its tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg

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
from proxy.store.migrations.postgres import (
    MIGRATION_LOCK_KEY,
    MIGRATIONS,
    NOTIFY_CHANNEL,
    SCHEMA,
    SCHEMA_VERSION_TABLE,
)
from proxy.store.rows import (
    APPROVAL_COLUMNS,
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
CHANGE_LOG_RETENTION = 3600.0
# Sequence numbers are taken before commit, so a change can become visible after a higher one. The follower
# re-reads this many numbers behind its cursor (only rows younger than the horizon) to catch such stragglers.
STRAGGLER_LOOKBACK = 100
STRAGGLER_HORIZON = 10.0

_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # login refused
    asyncpg.exceptions.InvalidCatalogNameError,  # the database does not exist
    asyncpg.exceptions.InsufficientPrivilegeError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # pointed at a standby
)


def _placeholders(count: int) -> str:
    return ", ".join(f"${number}" for number in range(1, count + 1))


def _encode_strings(values: tuple[str, ...]) -> list[str]:
    if isinstance(values, str):
        raise ValueError("expected a tuple of strings, not a single string")
    return list(values)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {SCHEMA}.{table} ({', '.join(columns)}) VALUES ({_placeholders(len(columns))})"


_APPROVAL_INSERT = _insert_sql("approvals", APPROVAL_COLUMNS)
_GRANT_INSERT = _insert_sql("grants", GRANT_COLUMNS)
_SESSION_INSERT = _insert_sql("sessions", SESSION_COLUMNS)
_AUDIT_INSERT = (
    f"INSERT INTO {SCHEMA}.audit (at, actor, action, session_id, connection, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
)
_CHANGES_AFTER = f"""
    SELECT c.seq AS change_seq, c.state AS change_state, a.*
    FROM {SCHEMA}.approval_changes c JOIN {SCHEMA}.approvals a ON a.id = c.approval_id
    WHERE c.seq > $1
       OR (c.seq > $1 - {STRAGGLER_LOOKBACK}
           AND c.at > extract(epoch FROM clock_timestamp()) - {STRAGGLER_HORIZON})
    ORDER BY c.seq
    LIMIT $2
"""


def check_store_url(url: str) -> str:
    """Validate a postgresql:// store URL; returns `host:port/db` for messages (the URL is never echoed)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        raise ValueError("the store URL has a bad host or port") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError('the store URL must start with "postgresql://"')
    if parts.password is not None or any(name == "password" for name, _ in parse_qsl(parts.query)):
        raise ValueError("the store URL must not contain a password; set HOOP_STORE_PASSWORD instead")
    database = parts.path.lstrip("/") or parts.username or "postgres"
    return f"{parts.hostname or 'localhost'}:{port}/{database}"


class PostgresStore:
    """The PostgreSQL backend, shared by every gateway instance pointed at the same database."""

    def __init__(
        self,
        url: str,
        gateway_id: str,
        *,
        password: str | None = None,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        poll_interval: float = 0.1,  # while the listener connection is down
        safety_poll_interval: float = 2.0,  # while it is up: catches a NOTIFY lost to a silent network drop
    ) -> None:
        self._where = check_store_url(url)
        self._url = url
        self._password = password
        self.gateway_id = gateway_id
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._poll_interval = poll_interval
        self._safety_poll_interval = safety_poll_interval
        self._pool: asyncpg.Pool | None = None
        self._feed: ApprovalFeed | None = None
        self._listener: asyncpg.Connection | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._open_lock = asyncio.Lock()

    # lifecycle

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            self._closing = False
            try:
                pool = await asyncpg.create_pool(
                    self._url,
                    password=self._password,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings=self._server_settings(),
                )
            except _UNREACHABLE as error:
                raise self._unavailable(error) from None
            self._pool = pool
            try:
                await self._run(self._migrate)
                self._feed = ApprovalFeed(
                    self._fetch_changes, self._latest_change, self._current_poll_interval
                )
                try:
                    await self._connect_listener()
                except _UNREACHABLE as error:
                    log.warning("state store listener unavailable (%s); polling until it is back", error)
                    self._schedule_listener_reconnect()
                await self._feed.start()
            except BaseException:
                await self._shut_down()
                raise

    async def close(self) -> None:
        async with self._open_lock:
            await self._shut_down()

    # approvals

    async def create_approval(self, record: ApprovalRecord) -> None:
        check_new_approval(record)
        values = approval_values(record, _encode_strings)
        await self._insert(_APPROVAL_INSERT, values, f"approval request {record.id!r}")

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = await self._run(
            lambda db: db.fetchrow(f"SELECT * FROM {SCHEMA}.approvals WHERE id = $1", approval_id)
        )
        return None if row is None else approval_from_row(row, tuple)

    async def list_approvals(
        self, *, states: Collection[str] | None = None, limit: int = 200
    ) -> list[ApprovalRecord]:
        """The newest `limit` requests (in `states` when given), oldest first."""
        check_limit(limit)
        wanted = check_states(states)
        where = "WHERE state = ANY($2::text[])" if wanted is not None else ""
        sql = (
            f"SELECT * FROM (SELECT * FROM {SCHEMA}.approvals {where}"
            " ORDER BY created_at DESC, id DESC LIMIT $1) AS newest ORDER BY created_at, id"
        )
        params = (limit, wanted) if wanted is not None else (limit,)
        rows = await self._run(lambda db: db.fetch(sql, *params))
        return [approval_from_row(row, tuple) for row in rows]

    async def decide_approval(
        self, approval_id: str, *, state: str, decider: str, justification: str | None, now: float
    ) -> ApprovalRecord:
        """Atomic across gateways, an UPDATE guarded by state = 'pending'; a loser gets DecisionConflict."""
        check_decision(state, decider, justification, now)

        async def decide(db: asyncpg.Connection) -> ApprovalRecord:
            row = await db.fetchrow(
                f"UPDATE {SCHEMA}.approvals SET state = $1, decider = $2, decided_at = $3, justification = $4"
                " WHERE id = $5 AND state = 'pending' RETURNING *",
                state, decider, float(now), justification, approval_id,
            )  # fmt: skip
            if row is not None:
                return approval_from_row(row, tuple)
            current = await db.fetchval(f"SELECT state FROM {SCHEMA}.approvals WHERE id = $1", approval_id)
            if current is None:
                raise DecisionConflict(f"no approval request {approval_id!r}")
            raise DecisionConflict(f"approval request {approval_id!r} is already {current}")

        return await self._run(decide)

    async def wait_for_decision(self, approval_id: str, timeout: float) -> ApprovalRecord:
        return await await_decision(self._open_feed(), self.get_approval, approval_id, timeout)

    def watch_approvals(self) -> AsyncIterator[ApprovalRecord]:
        return self._open_feed().watch()

    async def expire_pending(self, now: float, gateway_id: str | None = None) -> list[ApprovalRecord]:
        check_time("now", now)
        sql = (
            f"UPDATE {SCHEMA}.approvals SET state = 'expired', decided_at = $1"
            " WHERE state = 'pending' AND expires_at <= $1"
        )
        params: tuple[Any, ...] = (float(now),)
        if gateway_id is not None:
            sql += " AND gateway_id = $2"
            params += (gateway_id,)
        return await self._update_many(sql + " RETURNING *", params, float(now))

    async def cancel_pending_of_gateway(self, gateway_id: str, now: float) -> list[ApprovalRecord]:
        check_time("now", now)
        sql = (
            f"UPDATE {SCHEMA}.approvals SET state = 'cancelled', decided_at = $1"
            " WHERE state = 'pending' AND gateway_id = $2 RETURNING *"
        )
        return await self._update_many(sql, (float(now), gateway_id), float(now))

    # sessions index

    async def record_session_start(self, record: SessionIndexRecord) -> None:
        check_session(record)
        await self._insert(_SESSION_INSERT, session_values(record, _encode_strings), f"session {record.id!r}")

    async def record_session_end(self, session_id: str, ended_at: float, reason: str) -> None:
        """Idempotent: a session already ended keeps its first end time and reason."""
        check_time("ended_at", ended_at)

        async def end(db: asyncpg.Connection) -> None:
            status = await db.execute(
                f"UPDATE {SCHEMA}.sessions SET ended_at = $1, end_reason = $2"
                " WHERE id = $3 AND ended_at IS NULL",
                float(ended_at), reason, session_id,
            )  # fmt: skip
            if status == "UPDATE 0":
                known = await db.fetchval(f"SELECT 1 FROM {SCHEMA}.sessions WHERE id = $1", session_id)
                if known is None:
                    raise RecordNotFound(f"no session {session_id!r} in the index")

        await self._run(end)

    async def list_sessions(self, *, active_only: bool = True, limit: int = 500) -> list[SessionIndexRecord]:
        """The newest `limit` sessions (only those not ended, by default), oldest first."""
        check_limit(limit)
        where = "WHERE ended_at IS NULL" if active_only else ""
        sql = (
            f"SELECT * FROM (SELECT * FROM {SCHEMA}.sessions {where}"
            " ORDER BY started_at DESC, id DESC LIMIT $1) AS newest ORDER BY started_at, id"
        )
        rows = await self._run(lambda db: db.fetch(sql, limit))
        return [session_from_row(row, tuple) for row in rows]

    # grants

    async def add_grant(self, record: GrantRecord) -> None:
        check_grant(record)
        await self._insert(_GRANT_INSERT, grant_values(record, _encode_strings), f"grant {record.id!r}")

    async def active_grants(
        self, now: float, *, group: str | None = None, connection: str | None = None
    ) -> list[GrantRecord]:
        """Grants neither revoked nor expired at `now`, oldest first."""
        check_time("now", now)
        sql = (
            f"SELECT * FROM {SCHEMA}.grants WHERE revoked_at IS NULL AND expires_at > $1"
            " AND ($2::text IS NULL OR group_name = $2) AND ($3::text IS NULL OR connection = $3)"
            " ORDER BY created_at, id"
        )
        rows = await self._run(lambda db: db.fetch(sql, float(now), group, connection))
        return [grant_from_row(row, tuple) for row in rows]

    async def revoke_grant(self, grant_id: str, now: float) -> GrantRecord:
        """Idempotent: revoking a revoked grant returns it unchanged. Unknown ids raise RecordNotFound."""
        check_time("now", now)

        async def revoke(db: asyncpg.Connection) -> GrantRecord:
            row = await db.fetchrow(
                f"UPDATE {SCHEMA}.grants SET revoked_at = $1"
                " WHERE id = $2 AND revoked_at IS NULL RETURNING *",
                float(now), grant_id,
            )  # fmt: skip
            if row is None:
                row = await db.fetchrow(f"SELECT * FROM {SCHEMA}.grants WHERE id = $1", grant_id)
            if row is None:
                raise RecordNotFound(f"no grant {grant_id!r}")
            return grant_from_row(row, tuple)

        return await self._run(revoke)

    # audit log

    async def append_audit(self, record: AuditRecord) -> None:
        detail = audit_detail_json(record)
        values = (float(record.at), record.actor, record.action, record.session_id, record.connection, detail)
        await self._insert(_AUDIT_INSERT, values, "audit record")

    async def list_audit(self, *, since: float | None = None, limit: int = 1000) -> list[AuditRecord]:
        """With `since`: the first `limit` records at or after it (page forward). Without: the newest `limit`.

        Oldest first either way.
        """
        check_limit(limit)
        if since is None:
            sql = (
                f"SELECT * FROM (SELECT * FROM {SCHEMA}.audit ORDER BY at DESC, id DESC LIMIT $1) AS newest"
                " ORDER BY at, id"
            )
            params: tuple[Any, ...] = (limit,)
        else:
            check_time("since", since)
            sql = f"SELECT * FROM {SCHEMA}.audit WHERE at >= $2 ORDER BY at, id LIMIT $1"
            params = (limit, float(since))
        rows = await self._run(lambda db: db.fetch(sql, *params))
        return [audit_from_row(row, json.loads) for row in rows]

    # plumbing

    def _server_settings(self) -> dict[str, str]:
        return {"application_name": f"hoop-gateway {self.gateway_id}"[:63]}

    def _unavailable(self, error: BaseException) -> StoreUnavailable:
        reason = str(error) or type(error).__name__
        return StoreUnavailable(f"the PostgreSQL state store at {self._where} is unavailable: {reason}")

    async def _run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the state store is not open")
        try:
            async with pool.acquire(timeout=self._connect_timeout) as connection:
                return await operation(connection)
        except _UNREACHABLE as error:
            raise self._unavailable(error) from None

    async def _insert(self, sql: str, values: tuple[Any, ...], what: str) -> None:
        async def insert(db: asyncpg.Connection) -> None:
            try:
                await db.execute(sql, *values)
            except asyncpg.UniqueViolationError:
                raise DuplicateRecord(f"{what} is already stored") from None

        await self._run(insert)

    async def _update_many(self, sql: str, params: tuple[Any, ...], now: float) -> list[ApprovalRecord]:
        async def update(db: asyncpg.Connection) -> list[ApprovalRecord]:
            rows = await db.fetch(sql, *params)
            # Housekeeping rides along with the periodic expiry sweep.
            await db.execute(
                f"DELETE FROM {SCHEMA}.approval_changes WHERE at < $1", now - CHANGE_LOG_RETENTION
            )
            return [approval_from_row(row, tuple) for row in rows]

        records = await self._run(update)
        return sorted(records, key=lambda record: (record.created_at, record.id))

    async def _migrate(self, db: asyncpg.Connection) -> None:
        try:
            if not migrations_after(await self._schema_version(db), MIGRATIONS):
                return
            async with db.transaction():
                # Every gateway starting at once queues here; each re-reads the version under the lock.
                await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                schema_exists = await db.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", SCHEMA)
                if (
                    schema_exists is None
                ):  # CREATE SCHEMA IF NOT EXISTS would demand CREATE even when it exists
                    await db.execute(f"CREATE SCHEMA {SCHEMA}")
                await db.execute(SCHEMA_VERSION_TABLE)
                for migration in migrations_after(await self._schema_version(db), MIGRATIONS):
                    for statement in migration.statements:
                        await db.execute(statement)
                    await db.execute(
                        f"INSERT INTO {SCHEMA}.schema_version (version, description) VALUES ($1, $2)",
                        migration.version, migration.description,
                    )  # fmt: skip
        except SchemaTooNew as error:
            raise StoreUnavailable(str(error)) from None
        log.debug("postgres store at schema version %d", latest_version(MIGRATIONS))

    @staticmethod
    async def _schema_version(db: asyncpg.Connection) -> int:
        table = await db.fetchval("SELECT to_regclass($1)::text", f"{SCHEMA}.schema_version")
        if table is None:
            return 0
        return int(await db.fetchval(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version"))

    async def _fetch_changes(self, cursor: int, limit: int) -> list[ApprovalChange]:
        rows = await self._run(lambda db: db.fetch(_CHANGES_AFTER, cursor, limit))
        return [
            ApprovalChange(
                row["change_seq"], approval_as_of_change(approval_from_row(row, tuple), row["change_state"])
            )
            for row in rows
        ]

    async def _latest_change(self) -> int:
        return int(
            await self._run(
                lambda db: db.fetchval(f"SELECT coalesce(max(seq), 0) FROM {SCHEMA}.approval_changes")
            )
        )

    def _current_poll_interval(self) -> float:
        listener = self._listener
        if listener is not None and not listener.is_closed():
            return self._safety_poll_interval
        return self._poll_interval

    async def _connect_listener(self) -> None:
        """A dedicated connection outside the pool: LISTEN must stay on one session while we follow."""
        connection = await asyncpg.connect(
            self._url,
            password=self._password,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings=self._server_settings(),
        )
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            await connection.close()
            raise
        connection.add_termination_listener(self._on_listener_lost)
        self._listener = connection
        if self._feed is not None:
            self._feed.wake()  # catch up on whatever happened while nobody was listening

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if self._feed is not None:
            self._feed.wake()

    def _on_listener_lost(self, connection: object) -> None:
        if connection is not self._listener:
            return
        self._listener = None
        if self._closing:
            return
        log.warning(
            "state store listener connection lost; polling every %.1fs until it is back", self._poll_interval
        )
        if self._feed is not None:
            self._feed.wake()  # switch to the short poll interval at once
        self._schedule_listener_reconnect()

    def _schedule_listener_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect_listener(), name="hoop-store-relisten")

    async def _reconnect_listener(self) -> None:
        delay = 0.5
        while not self._closing and self._listener is None:
            await asyncio.sleep(delay)
            try:
                await self._connect_listener()
            except _UNREACHABLE:
                delay = min(delay * 2, 10.0)
            else:
                log.info("state store listener connection restored")

    def _open_feed(self) -> ApprovalFeed:
        if self._feed is None:
            raise StoreUnavailable("the state store is not open")
        return self._feed

    async def _shut_down(self) -> None:
        self._closing = True
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.close()
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(*_UNREACHABLE):
                async with asyncio.timeout(self._connect_timeout):
                    await listener.close()
            if not listener.is_closed():
                listener.terminate()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await pool.close()
            except _UNREACHABLE:  # TimeoutError is among them
                pool.terminate()
