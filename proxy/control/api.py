"""The control API as callers use it: typed methods over one request/stream transport, remote or embedded.

`ControlClient` (a socket to a gateway) and `LocalControl` (a gateway in this process) both derive from
`ControlCalls`, so the TUI and the CLI say the same thing either way and get the same maps back. Every
refusal raises `ControlError` with one line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable


@runtime_checkable
class ControlStream(Protocol):
    """A started stream: `initial` is its snapshot; iterate for events; `aclose()` (or `async with`) ends it.

    When the gateway ends the stream itself (the session ended, the store closed), iteration stops and
    `end_reason` says why.
    """

    initial: Any
    end_reason: str | None

    def __aiter__(self) -> ControlStream: ...

    async def __anext__(self) -> Any: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> ControlStream: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class ControlCalls(ABC):
    """The operations, by name. Subclasses supply the transport: `_request`, `_open_stream`, `close`."""

    @abstractmethod
    async def _request(self, op: str, fields: dict[str, Any]) -> Any: ...

    @abstractmethod
    async def _open_stream(self, op: str, fields: dict[str, Any]) -> ControlStream: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- who is calling -------------------------------------------------------------------------------------

    async def whoami(self) -> dict[str, Any]:
        """{"subject", "groups", "roles", "expires_at", "gateway", "instance"} for the caller's token."""
        return await self._request("whoami", {})

    # -- sessions -------------------------------------------------------------------------------------------

    async def list_sessions(self, *, include_ended: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Sessions of every worker and gateway sharing the store; local ones carry live counters."""
        return await self._request("sessions.list", {"all": include_ended, "limit": limit})

    async def watch_sessions(self, *, interval: float = 2.0) -> ControlStream:
        """Initial: active sessions. Events: {"type": "started"|"ended", "session"},
        {"type": "counters", "sessions"} every `interval` seconds, {"type": "snapshot", "sessions"}."""
        return await self._open_stream("sessions.watch", {"interval": interval})

    async def session_events(self, session_id: str, *, follow: bool = True) -> ControlStream:
        """Initial: {"session", "header", "live"}. Events: the recording's events [t_us, kind, ...] from the
        start, then (with `follow`) the live tail until the session ends."""
        return await self._open_stream("session.events", {"session": session_id, "follow": follow})

    async def kill_session(self, session_id: str, reason: str) -> dict[str, Any]:
        """End a session: its agent gets a FATAL error naming the caller and the reason."""
        return await self._request("sessions.kill", {"session": session_id, "reason": reason})

    # -- approvals ------------------------------------------------------------------------------------------

    async def list_approvals(
        self, states: Sequence[str] = ("pending",), *, limit: int = 200
    ) -> list[dict[str, Any]]:
        return await self._request("approvals.list", {"states": list(states), "limit": limit})

    async def watch_approvals(self) -> ControlStream:
        """Initial: pending requests. Events: each request as it is created or decided, on any gateway."""
        return await self._open_stream("approvals.watch", {})

    async def decide(self, request_id: str, *, approve: bool, reason: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"request": request_id, "approve": approve}
        if reason is not None:
            fields["reason"] = reason
        return await self._request("approvals.decide", fields)

    async def approve(self, request_id: str, reason: str | None = None) -> dict[str, Any]:
        return await self.decide(request_id, approve=True, reason=reason)

    async def deny(self, request_id: str, reason: str) -> dict[str, Any]:
        return await self.decide(request_id, approve=False, reason=reason)

    # -- grants ---------------------------------------------------------------------------------------------

    async def add_grant(
        self, group: str, connection: str, allow: Sequence[str], duration_seconds: float
    ) -> dict[str, Any]:
        fields = {
            "group": group,
            "connection": connection,
            "allow": list(allow),
            "duration": duration_seconds,
        }
        return await self._request("grants.add", fields)

    async def list_grants(self) -> list[dict[str, Any]]:
        return await self._request("grants.list", {})

    async def revoke_grant(self, grant_id: str) -> dict[str, Any]:
        return await self._request("grants.revoke", {"grant": grant_id})
