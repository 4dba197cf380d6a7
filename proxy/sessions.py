"""Live sessions: what the gateway knows about each connected agent, and the registry that lists them."""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.identity.model import Identity


def new_session_id() -> str:
    """Time-ordered and unguessable: 12 hex digits of milliseconds, then 10 random hex digits."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


@dataclass(eq=False)
class Session:
    id: str
    protocol: str  # "postgres" | "ssh"
    connection: str
    identity: Identity
    client_address: str
    client_user: str  # what the client claimed; recorded, never trusted
    started_at: float = field(default_factory=time.time)
    state: str = "active"
    end_reason: str = ""
    counters: Any = None  # the relay's SessionCounters
    held: int = 0
    recording_path: str = ""
    terminal_size: tuple[int, int] | None = None  # (cols, rows) of an SSH session with a pty
    # Ends the session from outside (operator kill, token expiry): terminate(message, sqlstate_or_code).
    terminate: Callable[[str, str], None] | None = None

    @functools.cached_property
    def audit_context(self) -> dict[str, Any]:
        """What every audit record of this session carries (built once, merged on the audit thread)."""
        return {
            "session": self.id,
            "identity": self.identity.subject,
            "groups": list(self.identity.groups),
            "connection": self.connection,
        }

    def summary(self) -> dict[str, Any]:
        counters = self.counters
        return {
            "id": self.id,
            "identity": self.identity.subject,
            "groups": list(self.identity.groups),
            "connection": self.connection,
            "protocol": self.protocol,
            "client_address": self.client_address,
            "client_user": self.client_user,
            "started_at": self.started_at,
            "state": self.state,
            "end_reason": self.end_reason,
            "statements": counters.statements if counters else 0,
            "rows": counters.rows if counters else 0,
            "bytes": (counters.bytes_from_client + counters.bytes_from_server) if counters else 0,
            "held": self.held,
            "recording": self.recording_path,
            "gateway_pid": os.getpid(),
        }


class SessionRegistry:
    """Sessions of this gateway process; listeners are told of every add and end."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._listeners: list[Callable[[str, Session], None]] = []

    def add(self, session: Session) -> None:
        self._sessions[session.id] = session
        self._notify("started", session)

    def end(self, session: Session, reason: str) -> None:
        if self._sessions.pop(session.id, None) is None:
            return
        session.state = "ended"
        session.end_reason = reason
        self._notify("ended", session)

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def list(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: s.started_at)

    def __len__(self) -> int:
        return len(self._sessions)

    def subscribe(self, listener: Callable[[str, Session], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, event: str, session: Session) -> None:
        for listener in list(self._listeners):
            listener(event, session)
