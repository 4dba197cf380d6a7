"""What the control API says about approvals, sessions and grants: plain maps, the same embedded or remote."""

from __future__ import annotations

from typing import Any

from proxy.sessions import Session
from proxy.store.base import ApprovalRecord, GrantRecord, SessionIndexRecord

# Live counters a local session adds to its index record.
LIVE_FIELDS = ("statements", "rows", "bytes", "held")


def approval_view(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "state": record.state,
        "requester": record.requester,
        "requester_groups": list(record.requester_groups),
        "connection": record.connection,
        "protocol": record.protocol,
        "statement": record.statement,
        "kind": record.kind,
        "reason": record.reason,
        "rule": record.rule,
        "approvers": list(record.approvers),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "decider": record.decider,
        "decided_at": record.decided_at,
        "justification": record.justification,
        "session": record.session_id,
        "gateway": record.gateway_id,
    }


def grant_view(record: GrantRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "group": record.group,
        "connection": record.connection,
        "allow": list(record.allow),
        "created_by": record.created_by,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def indexed_session_view(record: SessionIndexRecord) -> dict[str, Any]:
    """A session as the shared index knows it (any worker, any gateway); no live counters."""
    return {
        "id": record.id,
        "identity": record.identity,
        "groups": list(record.groups),
        "connection": record.connection,
        "protocol": record.protocol,
        "client_address": record.client_address,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "end_reason": record.end_reason,
        "gateway": record.gateway_id,
        "recording": record.recording_path,
        "live": False,
    }


def live_session_view(session: Session, instance_id: str, ended_at: float | None = None) -> dict[str, Any]:
    """A session of this gateway process, with its counters as of now (`ended_at` once it has ended)."""
    summary = session.summary()
    ended = session.state == "ended"
    return {
        "id": session.id,
        "identity": session.identity.subject,
        "groups": list(session.identity.groups),
        "connection": session.connection,
        "protocol": session.protocol,
        "client_address": session.client_address,
        "started_at": session.started_at,
        "ended_at": ended_at if ended else None,
        "end_reason": session.end_reason or None,
        "gateway": instance_id,
        "recording": session.recording_path or None,
        "live": not ended,
        **{name: summary.get(name, 0) for name in LIVE_FIELDS},
    }
