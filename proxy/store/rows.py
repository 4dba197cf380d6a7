"""Column lists and row-to-record conversion shared by the SQLite and PostgreSQL backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from proxy.store.base import PENDING, ApprovalRecord, AuditRecord, GrantRecord, SessionIndexRecord

# Each backend stores string lists its own way (JSON text in SQLite, text[] in PostgreSQL).
StringsDecoder = Callable[[Any], tuple[str, ...]]
DetailDecoder = Callable[[Any], dict[str, Any]]

APPROVAL_COLUMNS = (
    "id", "session_id", "requester", "requester_groups", "connection", "protocol", "statement", "kind",
    "reason", "rule", "approvers", "created_at", "expires_at", "state", "decider", "decided_at",
    "justification", "gateway_id",
)  # fmt: skip
GRANT_COLUMNS = (
    "id", "group_name", "connection", "allow", "created_by", "created_at", "expires_at", "revoked_at",
)  # fmt: skip
SESSION_COLUMNS = (
    "id", "gateway_id", "protocol", "connection", "identity", "groups", "client_address", "started_at",
    "ended_at", "end_reason", "recording_path",
)  # fmt: skip
AUDIT_COLUMNS = ("id", "at", "actor", "action", "session_id", "connection", "detail")


def approval_from_row(row: Mapping[str, Any], strings: StringsDecoder) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        session_id=row["session_id"],
        requester=row["requester"],
        requester_groups=strings(row["requester_groups"]),
        connection=row["connection"],
        protocol=row["protocol"],
        statement=row["statement"],
        kind=row["kind"],
        reason=row["reason"],
        rule=row["rule"],
        approvers=strings(row["approvers"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        decider=row["decider"],
        decided_at=row["decided_at"],
        justification=row["justification"],
        gateway_id=row["gateway_id"],
    )


def approval_as_of_change(current: ApprovalRecord, changed_to: str) -> ApprovalRecord:
    """The record as it was right after a logged change (a request only ever leaves pending once)."""
    if changed_to == PENDING:
        return replace(current, state=PENDING, decider=None, decided_at=None, justification=None)
    return current if current.state == changed_to else replace(current, state=changed_to)


def grant_from_row(row: Mapping[str, Any], strings: StringsDecoder) -> GrantRecord:
    return GrantRecord(
        id=row["id"],
        group=row["group_name"],
        connection=row["connection"],
        allow=strings(row["allow"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def session_from_row(row: Mapping[str, Any], strings: StringsDecoder) -> SessionIndexRecord:
    return SessionIndexRecord(
        id=row["id"],
        gateway_id=row["gateway_id"],
        protocol=row["protocol"],
        connection=row["connection"],
        identity=row["identity"],
        groups=strings(row["groups"]),
        client_address=row["client_address"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        recording_path=row["recording_path"],
    )


def audit_from_row(row: Mapping[str, Any], detail: DetailDecoder) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        session_id=row["session_id"],
        connection=row["connection"],
        detail=detail(row["detail"]),
    )


def approval_values(record: ApprovalRecord, strings: Callable[[tuple[str, ...]], Any]) -> tuple[Any, ...]:
    """Values in APPROVAL_COLUMNS order."""
    return (
        record.id, record.session_id, record.requester, strings(record.requester_groups), record.connection,
        record.protocol, record.statement, record.kind, record.reason, record.rule, strings(record.approvers),
        float(record.created_at), float(record.expires_at), record.state, record.decider, record.decided_at,
        record.justification, record.gateway_id,
    )  # fmt: skip


def grant_values(record: GrantRecord, strings: Callable[[tuple[str, ...]], Any]) -> tuple[Any, ...]:
    """Values in GRANT_COLUMNS order."""
    revoked_at = None if record.revoked_at is None else float(record.revoked_at)
    return (
        record.id, record.group, record.connection, strings(record.allow), record.created_by,
        float(record.created_at), float(record.expires_at), revoked_at,
    )  # fmt: skip


def session_values(record: SessionIndexRecord, strings: Callable[[tuple[str, ...]], Any]) -> tuple[Any, ...]:
    """Values in SESSION_COLUMNS order."""
    ended_at = None if record.ended_at is None else float(record.ended_at)
    return (
        record.id, record.gateway_id, record.protocol, record.connection, record.identity,
        strings(record.groups), record.client_address, float(record.started_at), ended_at,
        record.end_reason, record.recording_path,
    )  # fmt: skip
