"""Approval requests: holding a statement for a human, and who may decide it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.durations import format_duration
from proxy.identity.model import Identity
from proxy.store.base import ApprovalRecord, DecisionConflict, Store, StoreError

if TYPE_CHECKING:
    from proxy.sessions import Session

log = logging.getLogger("hoop.approvals")

SQLSTATE_DENIED = "42501"
SQLSTATE_CANCELLED = "57014"
ADMIN_GROUP_NOTE = "members of a policy's approvers groups"


class ApprovalRefused(Exception):
    """A decision that is not allowed (self-approval, not an approver, no reason, not pending). One line."""


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    """What the relay does with a held statement: run it, or make it fail with `message` / `sqlstate`."""

    allowed: bool
    message: str = ""
    sqlstate: str = SQLSTATE_DENIED


def new_request_id() -> str:
    return "r" + secrets.token_hex(5)


def hold_notice(request_id: str, timeout_seconds: float) -> str:
    """The contract's NoticeResponse text."""
    return (
        f"hoop: statement held for review (request {request_id}); "
        f"waiting up to {format_duration(timeout_seconds)} for an approver"
    )


class Approvals:
    """Creates, awaits and decides approval requests through the shared store (any gateway may decide)."""

    def __init__(
        self, store: Store, gateway_id: str, audit: Callable[[Session | None, dict[str, Any]], None]
    ) -> None:
        self.store = store
        self.gateway_id = gateway_id
        self.audit = audit

    async def hold(
        self,
        session: Session,
        request_id: str,
        *,
        statement: str,
        kind: str,
        rule: str,
        reason: str,
        approvers: tuple[str, ...],
        timeout_seconds: float,
        record: Callable[[str, dict[str, Any]], None],
    ) -> HoldOutcome:
        """Wait for the decision on one held statement; when cancelled (client gone), end it as cancelled."""
        now = time.time()
        request = ApprovalRecord(
            id=request_id,
            session_id=session.id,
            requester=session.identity.subject,
            requester_groups=tuple(session.identity.groups),
            connection=session.connection,
            protocol=session.protocol,
            statement=statement,
            kind=kind,
            reason=reason,
            rule=rule,
            approvers=approvers,
            created_at=now,
            expires_at=now + timeout_seconds,
            state="pending",
            gateway_id=self.gateway_id,
        )
        # Shielded: a client that goes away while the row is being written must not leave it pending for
        # ever (an approver could then "approve" a statement that will never run); it is cancelled instead.
        creating = asyncio.ensure_future(self.store.create_approval(request))
        try:
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(creating)
                ending = self._finish(request_id, "cancelled", "client cancelled or disconnected")
                await asyncio.shield(ending)
            raise
        except StoreError as error:
            log.error("cannot create approval request %s: %s", request_id, error)
            message = (
                f"hoop: statement needs approval but the approval store is unavailable [ref {request_id}]"
            )
            return HoldOutcome(False, message)
        details = {
            "id": request_id,
            "statement": statement,
            "kind": kind,
            "rule": rule,
            "requester": request.requester,
            "expires_at": request.expires_at,
        }
        record("approval.requested", details)
        self.audit(session, {"action": "approval.requested", **details})
        session.held += 1
        try:
            final = await self.store.wait_for_decision(request_id, timeout_seconds)
            if final.state == "pending":
                final = await self._finish(request_id, "expired", "review timed out")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                ending = self._finish(request_id, "cancelled", "client cancelled or disconnected")
                final = await asyncio.shield(ending)
                self._record_decision(session, final, record)
            raise
        except StoreError as error:
            log.error("lost the approval store while holding %s: %s", request_id, error)
            message = f"hoop: the approval store failed while the statement was held [ref {request_id}]"
            return HoldOutcome(False, message)
        finally:
            session.held -= 1
        self._record_decision(session, final, record)
        return outcome_for(final, timeout_seconds)

    async def _finish(self, request_id: str, state: str, why: str) -> ApprovalRecord:
        try:
            return await self.store.decide_approval(
                request_id, state=state, decider="gateway", justification=why, now=time.time()
            )
        except DecisionConflict:
            # Someone decided in the last instant: their decision stands.
            current = await self.store.get_approval(request_id)
            assert current is not None
            return current

    def _record_decision(
        self, session: Session, final: ApprovalRecord, record: Callable[[str, dict[str, Any]], None]
    ) -> None:
        details = {
            "id": final.id,
            "state": final.state,
            "decider": final.decider,
            "reason": final.justification,
            "decided_at": final.decided_at,
        }
        record("approval.decided", details)
        self.audit(session, {"action": "approval.decided", **details})

    async def decide(
        self, approval_id: str, decider: Identity, *, approve: bool, justification: str | None
    ) -> ApprovalRecord:
        """An operator's decision. The requester never decides their own request; only approvers may."""
        request = await self.store.get_approval(approval_id)
        if request is None:
            raise ApprovalRefused(f"no approval request {approval_id}")
        if request.state != "pending":
            raise ApprovalRefused(f"request {approval_id} is already {request.state}")
        if decider.subject == request.requester:
            raise ApprovalRefused("you cannot decide your own request")
        if not set(decider.groups) & set(request.approvers):
            allowed = ", ".join(request.approvers) or "nobody (the policy names no approvers)"
            raise ApprovalRefused(f"only members of {allowed} may decide request {approval_id}")
        if not approve and not (justification or "").strip():
            raise ApprovalRefused("a denial needs a reason")
        try:
            decided = await self.store.decide_approval(
                approval_id,
                state="approved" if approve else "denied",
                decider=decider.subject,
                justification=justification,
                now=time.time(),
            )
        except DecisionConflict as conflict:
            raise ApprovalRefused(str(conflict)) from None
        self.audit(
            None,
            {
                "action": "approval.decide",
                "id": approval_id,
                "state": decided.state,
                "decider": decider.subject,
                "reason": justification,
                "connection": request.connection,
                "requester": request.requester,
            },
        )
        return decided


def outcome_for(final: ApprovalRecord, timeout_seconds: float) -> HoldOutcome:
    if final.state == "approved":
        return HoldOutcome(True)
    if final.state == "denied":
        reason = f": {final.justification}" if final.justification else ""
        return HoldOutcome(False, f"hoop: statement denied by {final.decider} (request {final.id}){reason}")
    if final.state == "expired":
        waited = format_duration(timeout_seconds)
        return HoldOutcome(
            False, f"hoop: review timed out after {waited} with no decision (request {final.id})"
        )
    message = f"canceling statement due to user request (request {final.id})"
    return HoldOutcome(False, message, SQLSTATE_CANCELLED)
