"""One agent's SSH connection to the gateway: who it is, what it may use, and its shared upstream login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncssh

from proxy.identity.model import Identity
from proxy.masking.masker import Masker
from proxy.ssh.upstream import SshUpstreamError, SshUpstreamTarget, connect_ssh_upstream

if TYPE_CHECKING:
    from proxy.control.grant_policy import GrantedPolicy
    from proxy.gateway import Gateway
    from proxy.policy.engine import SessionPolicy

log = logging.getLogger("hoop.ssh")


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
    _upstream: asyncio.Task[asyncssh.SSHClientConnection] | None = field(default=None, repr=False)
    _closed: bool = False

    async def upstream(self) -> asyncssh.SSHClientConnection:
        """The upstream login, made once and shared by the channels of this connection.

        Raises SshUpstreamError (a message for the agent). A failed login is not cached: the next channel
        tries again.
        """
        if self._closed:
            raise SshUpstreamError("the connection is closing")
        assert self.target is not None
        task = self._upstream
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
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
