"""The store interface every backend implements, its record types, errors and input checks."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

PENDING = "pending"
DECIDED_STATES = frozenset({"approved", "denied", "expired", "cancelled"})
APPROVAL_STATES = frozenset({PENDING, *DECIDED_STATES})
MAX_ID_LENGTH = 200  # ids travel as NOTIFY payloads and in log lines; keep them short


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One held statement or command waiting for (or past) a human decision."""

    id: str
    session_id: str
    requester: str
    requester_groups: tuple[str, ...]
    connection: str
    protocol: str
    statement: str  # already masked by the caller
    kind: str
    reason: str
    rule: str
    approvers: tuple[str, ...]  # groups whose members may decide
    created_at: float  # unix seconds
    expires_at: float
    state: str  # pending | approved | denied | expired | cancelled
    decider: str | None = None
    decided_at: float | None = None
    justification: str | None = None
    gateway_id: str = ""


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A just-in-time widening of one group's policy on one connection, until it expires or is revoked."""

    id: str
    group: str
    connection: str
    allow: tuple[str, ...]
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the append-only audit log; `id` is assigned by the store (None before appending)."""

    id: int | None
    at: float
    actor: str
    action: str
    session_id: str | None
    connection: str | None
    detail: dict[str, Any] = field(default_factory=dict)  # stored as JSON


@dataclass(frozen=True, slots=True)
class SessionIndexRecord:
    """What the shared index knows about one agent session on any gateway instance."""

    id: str
    gateway_id: str
    protocol: str
    connection: str
    identity: str
    groups: tuple[str, ...]
    client_address: str
    started_at: float
    ended_at: float | None
    end_reason: str | None
    recording_path: str | None


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class DecisionConflict(StoreError):
    """A decision on a request that is no longer pending, or on a request that does not exist."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or used; callers fail closed."""


class RecordNotFound(StoreError, LookupError):
    """An id the store has no record of."""


class DuplicateRecord(StoreError, ValueError):
    """A record whose id is already stored."""


@runtime_checkable
class Store(Protocol):
    """The state store. Obtain one from `proxy.store.factory.open_store`, then `await store.open()`."""

    gateway_id: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_approval(self, record: ApprovalRecord) -> None: ...

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    async def list_approvals(
        self, *, states: Collection[str] | None = None, limit: int = 200
    ) -> list[ApprovalRecord]: ...

    async def decide_approval(
        self, approval_id: str, *, state: str, decider: str, justification: str | None, now: float
    ) -> ApprovalRecord: ...

    async def wait_for_decision(self, approval_id: str, timeout: float) -> ApprovalRecord: ...

    def watch_approvals(self) -> AsyncIterator[ApprovalRecord]: ...

    async def expire_pending(self, now: float, gateway_id: str | None = None) -> list[ApprovalRecord]: ...

    async def cancel_pending_of_gateway(self, gateway_id: str, now: float) -> list[ApprovalRecord]: ...

    async def record_session_start(self, record: SessionIndexRecord) -> None: ...

    async def record_session_end(self, session_id: str, ended_at: float, reason: str) -> None: ...

    async def list_sessions(
        self, *, active_only: bool = True, limit: int = 500
    ) -> list[SessionIndexRecord]: ...

    async def add_grant(self, record: GrantRecord) -> None: ...

    async def active_grants(
        self, now: float, *, group: str | None = None, connection: str | None = None
    ) -> list[GrantRecord]: ...

    async def revoke_grant(self, grant_id: str, now: float) -> GrantRecord: ...

    async def append_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(self, *, since: float | None = None, limit: int = 1000) -> list[AuditRecord]: ...


def check_id(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} id must be a non-empty string of at most {MAX_ID_LENGTH} characters")


def check_time(what: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of unix seconds")


def check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")


def check_states(states: Collection[str] | None) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):  # a lone string is a collection of characters: almost surely a mistake
        raise ValueError("states must be a collection of state names, not a single string")
    unknown = sorted(set(states) - APPROVAL_STATES)
    if unknown:
        raise ValueError(f"unknown approval state(s) {unknown}; use {sorted(APPROVAL_STATES)}")
    return sorted(set(states))


def check_text_fields(record: ApprovalRecord | GrantRecord | SessionIndexRecord | AuditRecord) -> None:
    """Strings must be strings without NUL (PostgreSQL text cannot hold one); string lists must be tuples."""
    for spec in fields(record):
        value = getattr(record, spec.name)
        if isinstance(value, str):
            check_text(spec.name, value)
        elif isinstance(value, tuple):
            for item in value:
                if not isinstance(item, str):
                    raise ValueError(f"{spec.name} must hold only strings")
                check_text(spec.name, item)
        elif isinstance(value, list):
            raise ValueError(f"{spec.name} must be a tuple, not a list")


def check_text(what: str, value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise ValueError(f"{what} contains a NUL character, which the store cannot hold")


def check_new_approval(record: ApprovalRecord) -> None:
    check_id("approval", record.id)
    check_text_fields(record)
    if record.state != PENDING:
        raise ValueError(f"a new approval request must be pending, not {record.state!r}")
    check_time("created_at", record.created_at)
    check_time("expires_at", record.expires_at)
    if record.decider is not None or record.decided_at is not None:
        raise ValueError("a new approval request cannot already carry a decision")


def check_decision(state: str, decider: str, justification: str | None, now: float) -> None:
    if state not in DECIDED_STATES:
        raise ValueError(f"cannot decide to {state!r}; use one of {sorted(DECIDED_STATES)}")
    if not isinstance(decider, str) or not decider:
        raise ValueError("a decision needs the decider's identity")
    check_text("decider", decider)
    check_text("justification", justification)
    check_time("now", now)


def check_grant(record: GrantRecord) -> None:
    check_id("grant", record.id)
    check_text_fields(record)
    check_time("created_at", record.created_at)
    check_time("expires_at", record.expires_at)
    check_time("revoked_at", record.revoked_at, optional=True)
    if isinstance(record.allow, str):
        raise ValueError("a grant's allow must be a tuple of kinds, not a single string")


def check_session(record: SessionIndexRecord) -> None:
    check_id("session", record.id)
    check_text_fields(record)
    check_time("started_at", record.started_at)
    check_time("ended_at", record.ended_at, optional=True)


def audit_detail_json(record: AuditRecord) -> str:
    """The detail as compact JSON; anything JSON cannot hold is refused rather than silently stringified."""
    if record.id is not None:
        raise ValueError("audit ids are assigned by the store; append records with id=None")
    check_time("at", record.at)
    check_text_fields(record)
    if not isinstance(record.detail, dict):
        raise ValueError("audit detail must be a dict")
    try:
        text = json.dumps(record.detail, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"audit detail must be JSON-serialisable: {error}") from None
    if _holds_nul(record.detail):
        raise ValueError("audit detail contains a NUL character, which the store cannot hold")
    return text


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False
