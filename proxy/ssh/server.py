"""The SSH listener: `ssh -p 2222 <connection>@gateway`, the OIDC token as password or keyboard-interactive
answer, then one ChannelRelay per session channel. Forwarding, agent forwarding and X11 are refused here."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from proxy.identity.model import TokenRejected
from proxy.ssh.algorithms import LISTENER_CIPHERS, MACS
from proxy.ssh.channel import ChannelRelay
from proxy.ssh.decide import PORT_FORWARD, allowed_by_name
from proxy.ssh.host_key import load_or_create_host_key
from proxy.ssh.link import SshLink
from proxy.ssh.tunnel import Tunnel
from proxy.ssh.upstream import SshUpstreamError, SshUpstreamTarget

if TYPE_CHECKING:
    from proxy.gateway import Gateway

log = logging.getLogger("hoop.ssh")

TOKEN_PROMPT = "hoop token: "
LOGIN_TIMEOUT = 30.0  # seconds a client has to authenticate
MAX_UNAUTHENTICATED = 64  # connections still logging in at once; more are dropped at once
EXPIRY_CLOSE_DELAY = 1.0  # after the token's end: the channels' own expiry messages go first
# A token is a JWT: anything longer is not one, and is not worth verifying.
MAX_TOKEN_LENGTH = 16 * 1024


class _AgentConnection(asyncssh.SSHServer):
    """asyncssh's per-connection callbacks for one agent."""

    def __init__(self, listener: SshListener) -> None:
        self._listener = listener
        self._gateway = listener.gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self._client_address = ""
        self.link: SshLink | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._client_address = f"{peer[0]}:{peer[1]}" if peer else "unknown"
        self._listener.connections.add(self)
        unauthenticated = sum(1 for connection in self._listener.connections if connection.link is None)
        if unauthenticated > MAX_UNAUTHENTICATED:
            # Like OpenSSH's MaxStartups: logins that never finish cannot pile up without bound.
            log.warning(
                "ssh: %d connections have not logged in; refusing %s", unauthenticated, self._client_address
            )
            conn.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        if self._expiry is not None:
            self._expiry.cancel()
        if self.link is not None:
            self.link.close()

    def auth_completed(self) -> None:
        """The whole connection (forwarded tunnels included) ends when the token does; its channels say why
        themselves a moment before (each has its own expiry timer)."""
        link = self.link
        if link is None or self._conn is None:
            return
        grace = self._gateway.config.identity.expiry_grace_seconds
        delay = max(0.0, link.identity.expires_at + grace - time.time()) + EXPIRY_CLOSE_DELAY
        self._expiry = asyncio.get_running_loop().call_later(delay, self._conn.close)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # ---------------------------------------------------------------- authentication: the token

    def begin_auth(self, username: str) -> bool:
        return True  # every login needs the token

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._sign_in(username, password)

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        return ("hoop-tui gateway", "Paste your access token.", "", [(TOKEN_PROMPT, False)])

    async def validate_kbdint_response(self, username: str, responses: Any) -> bool:
        if len(responses) != 1:
            return False
        return await self._sign_in(username, responses[0])

    async def _sign_in(self, username: str, token: str) -> bool:
        """True when the token is valid. Whether this identity may use the connection it named is settled
        here too, but told per channel (see SshLink.refusal): the agent then reads why, not just "denied"."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        gateway = self._gateway
        try:
            identity = await gateway.verifier.verify(token.strip())
        except TokenRejected as rejected:
            log.info("ssh login refused for %r from %s: %s", username, self._client_address, rejected.detail)
            gateway.audit(
                None,
                {
                    "action": "ssh.login_refused",
                    "connection": username,
                    "client": self._client_address,
                    "reason": "token rejected",
                },
            )
            return False
        link = SshLink(gateway, identity, username, self._client_address, username)
        connection = gateway.ssh_connection(username)
        if connection is None:
            link.refusal = f'connection "{username}" is not configured on this gateway'
        else:
            policy = gateway.policy_for(identity, username)
            if policy is None:
                groups = ", ".join(identity.groups) or "none"
                link.refusal = (
                    f'no policy allows "{identity.subject}" (groups: {groups}) to use connection "{username}"'
                )
            else:
                link.policy = policy
                link.target = SshUpstreamTarget.from_connection(connection)
                masking = gateway.masking_for(policy)
                link.masker = masking.masker if masking is not None else None
        if link.refusal:
            gateway.audit(
                None,
                {
                    "action": "ssh.login_refused",
                    "identity": identity.subject,
                    "connection": username,
                    "client": self._client_address,
                    "reason": link.refusal,
                },
            )
        self.link = link
        return True

    # ---------------------------------------------------------------- channels

    def session_requested(self) -> ChannelRelay | bool:
        link = self.link
        if link is None or not link.channel_opened():
            return False  # OpenSSH says "open failed": this connection already has MAX_CHANNELS open
        return ChannelRelay(link)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        """`ssh -L` / `-W`: through the upstream host, only when the policy allows port_forward by name."""
        link = self.link
        if link is None or link.policy is None or link.expired():
            return False
        allowed, decision = allowed_by_name(link.policy, PORT_FORWARD)
        self._gateway.audit(
            None,
            {
                "action": "ssh.port_forward",
                "identity": link.identity.subject,
                "connection": link.connection,
                "destination": f"{dest_host}:{dest_port}",
                "decision": "allow" if allowed else "deny",
                "rule": decision.rule,
            },
        )
        if not allowed:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "hoop: port forwarding is not allowed by policy"
            )
        return self._forward_through_upstream(link, dest_host, dest_port, orig_host, orig_port)

    async def _forward_through_upstream(
        self, link: SshLink, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        # The connection is opened by the upstream host (a direct-tcpip channel of the gateway's login),
        # never by the gateway itself: the gateway's own network stays out of reach.
        tunnel = Tunnel(link, f"{dest_host}:{dest_port}")
        try:
            return await tunnel.open(dest_host, dest_port, orig_host, orig_port)
        except SshUpstreamError as error:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, f"hoop: {error}") from None

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        """`ssh -R`: a listener on the gateway would be a door into the gateway's network. Always refused."""
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class SshListener:
    """Accepts agents' SSH connections for one gateway process."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.connections: set[_AgentConnection] = set()
        self._server: asyncssh.SSHAcceptor | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        settings = self.gateway.settings
        # asyncssh logs ~15 INFO lines per connection; the gateway logs sessions itself. Kept unless the
        # operator configured the "asyncssh" logger's level explicitly.
        library_log = logging.getLogger("asyncssh")
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.WARNING)
        host_key = await asyncio.to_thread(load_or_create_host_key, settings.state_dir, settings.ssh_host_key)
        self._server = await asyncssh.create_server(
            lambda: _AgentConnection(self),
            host,
            port,
            server_host_keys=[host_key],
            reuse_port=reuse_port or None,
            # Bytes both ways, no server-side line editing (the upstream's pty does that), and nothing that
            # could bypass the relay: agent forwarding, X11 and scp/sftp are off (a policy may allow sftp).
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            login_timeout=LOGIN_TIMEOUT,
            keepalive_interval=30,
            server_version="hoop-tui",
            encryption_algs=list(LISTENER_CIPHERS),
            mac_algs=list(MACS),
        )
        sockets = self._server.sockets
        address = sockets[0].getsockname()
        return address[0], address[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self.connections):
            connection.close()
