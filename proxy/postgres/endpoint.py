"""One socket of a session as an asyncio Protocol: buffered reads while handshaking, direct callbacks after.

The relay's speed comes from here: once a session is established, `data_received` hands each buffer
straight to the relay function, which writes to the peer transport in the same callback — no stream
reader, no task switch, no per-message await.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable


class PeerClosed(ConnectionError):
    """The other end went away during a handshake."""


class Endpoint(asyncio.Protocol):
    __slots__ = ("_inbox", "_lost", "_wakeup", "on_lost", "peer", "relay", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.relay: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[Exception | None], None] | None = None
        self.peer: asyncio.Transport | None = None  # paused when our own write buffer fills
        self._inbox = bytearray()
        self._wakeup: asyncio.Future[None] | None = None
        self._lost = False

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        relay = self.relay
        if relay is not None:
            relay(data)
            return
        self._inbox += data
        self._wake()

    def eof_received(self) -> bool:
        return False  # half-closed PostgreSQL connections are not a thing: close fully

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()
        callback = self.on_lost
        if callback is not None:
            self.on_lost = None
            callback(exc)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    # ---------------------------------------------------------------- handshake-phase reads

    def _wake(self) -> None:
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._lost

    async def receive(self) -> bytes:
        """Bytes received since the last call; waits for some. Raises PeerClosed when the socket is gone."""
        while not self._inbox:
            if self._lost:
                raise PeerClosed("connection closed")
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def unread(self) -> bytes:
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._lost:
            self.transport.write(data)

    async def start_tls(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        """Upgrade in place; any plaintext bytes already buffered would be injectable, so they are refused."""
        if self._inbox:
            raise ConnectionError("unencrypted data received before the TLS handshake")
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        new_transport = await loop.start_tls(
            self.transport,
            self,
            context,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=15.0,
        )
        if new_transport is None:
            raise PeerClosed("connection closed during the TLS handshake")
        self.transport = new_transport  # type: ignore[assignment]

    def start_relay(self, relay: Callable[[bytes], None]) -> None:
        """Switch to direct callbacks; whatever arrived during the handshake goes through the relay first."""
        self.relay = relay
        if self._inbox:
            relay(self.unread())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_tls(self) -> bool:
        return self.transport is not None and self.transport.get_extra_info("sslcontext") is not None

    def peername(self) -> str:
        if self.transport is None:
            return ""
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return str(peer or "")
