"""One agent's SSH connection to the gateway: who it is, what it may use, and its shared upstream login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncssh

from proxy.identity.model import Identity
from proxy.masking.masker import Masker
from proxy.sessions import Session, new_session_id
from proxy.ssh.upstream import SshUpstreamError, SshUpstreamTarget, connect_ssh_upstream

if TYPE_CHECKING:
    from proxy.control.grant_policy import GrantedPolicy
    from proxy.gateway import Gateway
    from proxy.policy.engine import SessionPolicy

log = logging.getLogger("hoop.ssh")

# Session channels one agent connection may have open at once (OpenSSH's MaxSessions default): each is a
# decision, a possible approval request and an open recording.
MAX_CHANNELS = 10


@dataclass(eq=False)
class SshLink:
    """Set up when the agent's token is accepted. `refusal` is set instead of a policy when the agent is who
    it says but may not use the connection it named: each channel it opens then gets that message and ends,
    which OpenSSH shows plainly (an auth failure would only say "Permission denied")."""

    gateway: Gateway
    identity: Identity
    connection: str
    client_address: str
    client_user: str
    policy: SessionPolicy | GrantedPolicy | None = None
    target: SshUpstreamTarget | None = None
    refusal: str = ""
    masker: Masker | None = None  # the policy's masker, shared by the channels; None when nothing is masked
    open_channels: int = 0
    _upstream: asyncio.Task[asyncssh.SSHClientConnection] | None = field(default=None, repr=False)
    _closed: bool = False

    def channel_opened(self) -> bool:
        """Count a new session channel; False when this connection already has MAX_CHANNELS open."""
        if self.open_channels >= MAX_CHANNELS:
            return False
        self.open_channels += 1
        return True

    def channel_closed(self) -> None:
        self.open_channels = max(0, self.open_channels - 1)

    def new_session(self, terminal_size: tuple[int, int] | None = None) -> Session:
        """A gateway session for one channel or tunnel of this connection."""
        return Session(
            id=new_session_id(),
            protocol="ssh",
            connection=self.connection,
            identity=self.identity,
            client_address=self.client_address,
            client_user=self.client_user,
            terminal_size=terminal_size,
        )

    def expired(self) -> bool:
        """The token's deadline (plus the configured grace) has passed."""
        grace = self.gateway.config.identity.expiry_grace_seconds
        return time.time() > self.identity.expires_at + grace

    async def upstream(self) -> asyncssh.SSHClientConnection:
        """The upstream login, made once and shared by the channels of this connection.

        Raises SshUpstreamError (a message for the agent). A failed or dropped login is not reused: the next
        channel logs in again.
        """
        if self._closed:
            raise SshUpstreamError("the connection is closing")
        assert self.target is not None
        task = self._upstream
        # A failed login is not kept, and neither is one the upstream has since dropped.
        if task is None or (
            task.done() and (task.cancelled() or task.exception() is not None or task.result().is_closed())
        ):
            task = asyncio.get_running_loop().create_task(connect_ssh_upstream(self.target))
            self._upstream = task
        try:
            return await asyncio.shield(task)
        except SshUpstreamError as error:
            log.warning("ssh upstream %s: %s (%s)", self.connection, error, error.__cause__)
            raise

    def close(self) -> None:
        self._closed = True
        task = self._upstream
        if task is None:
            return
        if not task.done():
            task.cancel()
            return
        with contextlib.suppress(BaseException):
            task.result().close()

    def describe(self) -> dict[str, Any]:
        return {
            "identity": self.identity.subject,
            "connection": self.connection,
            "client": self.client_address,
        }
