"""Ending a session on an operator's word: in this process, through a sibling worker, or refused with where
it runs. The agent gets a FATAL error naming who ended it and why; the kill is audited."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from proxy.control.errors import ControlError
from proxy.control.streams import SESSIONS_INDEX_LIMIT
from proxy.identity.model import Identity
from proxy.store.base import SessionIndexRecord, StoreError

if TYPE_CHECKING:
    from proxy.gateway import Gateway

CONFIRM_SECONDS = 3.0  # how long to wait for a sibling worker's session to leave the index


def kill_message(caller: Identity, reason: str) -> str:
    return f"hoop: session terminated by {caller.subject}: {reason}"


async def _active_record(gateway: Gateway, session_id: str) -> SessionIndexRecord | None:
    try:
        records = await gateway.store.list_sessions(active_only=True, limit=SESSIONS_INDEX_LIMIT)
    except StoreError as error:
        raise ControlError(f"cannot read the sessions index: {error}") from None
    return next((record for record in records if record.id == session_id), None)


async def kill_session(gateway: Gateway, caller: Identity, session_id: str, reason: str) -> dict[str, Any]:
    message = kill_message(caller, reason.strip())
    audit = {"action": "session.kill", "session": session_id, "by": caller.subject, "reason": reason}
    session = gateway.sessions.get(session_id)
    if session is not None:
        if not gateway.kill_local(session_id, message):
            raise ControlError(f"session {session_id} cannot be ended from outside")
        gateway.audit(session, audit)
        return {"session": session_id, "result": "terminated", "gateway": gateway.instance_id}
    record = await _active_record(gateway, session_id)
    if record is None:
        raise ControlError(f"no active session {session_id}")
    if not record.gateway_id.startswith(f"{gateway.settings.gateway_id}/"):
        raise ControlError(
            f"session {session_id} runs on gateway {record.gateway_id}; "
            "end it through that gateway's control API"
        )
    if not await gateway.route_kill(session_id, message):
        raise ControlError(
            f"session {session_id} is listed for {record.gateway_id}, which is not running "
            "(it stopped without recording the end)"
        )
    gateway.audit(None, {**audit, "connection": record.connection, "worker": record.gateway_id})
    confirmed = await _wait_until_ended(gateway, session_id)
    return {
        "session": session_id,
        "result": "terminated" if confirmed else "requested",
        "gateway": record.gateway_id,
    }


async def _wait_until_ended(gateway: Gateway, session_id: str) -> bool:
    deadline = time.monotonic() + CONFIRM_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        try:
            if await _active_record(gateway, session_id) is None:
                return True
        except ControlError:
            return False
    return False
