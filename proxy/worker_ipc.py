"""Messages between gateway worker processes sharing one port: cancel keys, and operator kills of sessions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("hoop.workers")

MAX_PACKET = 4096
# A kill is told apart from a CancelRequest (whose first byte, of its length, is always 0) by this prefix.
KILL_PREFIX = b"hoop-kill\x00"


class CancelRouter:
    """Each worker listens on `<run_dir>/cancel-<pid>.sock`; a cancel it cannot match goes to all the others.

    PostgreSQL clients send a CancelRequest on a fresh connection, which SO_REUSEPORT may hand to a
    different worker than the one that owns the session; the owner recognises its key, the rest ignore it.
    """

    def __init__(
        self,
        run_dir: Path,
        handle: Callable[[bytes], Awaitable[None]],
        on_kill: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.path = run_dir / f"cancel-{os.getpid()}.sock"
        self._handle = handle
        self._on_kill = on_kill  # (session id, message to its client) -> whether this worker owned it
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._on_peer, path=str(self.path))
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _on_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                packet = await _read_to_end(reader)
            if packet.startswith(KILL_PREFIX):
                self._kill(packet.removeprefix(KILL_PREFIX))
            elif packet:
                await self._handle(packet)
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    def _kill(self, payload: bytes) -> None:
        if self._on_kill is None:
            return
        try:
            order = json.loads(payload)
            session_id, message = order["session"], order["message"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed kill message from a sibling worker")
            return
        if isinstance(session_id, str) and isinstance(message, str) and self._on_kill(session_id, message):
            log.info("session %s ended on a sibling worker's request", session_id)

    async def broadcast_kill(self, session_id: str, message: str) -> None:
        """Ask every other worker to end `session_id` with `message`; the one that owns it does."""
        body = json.dumps({"session": session_id, "message": message[:1000]}).encode()
        await self.broadcast(KILL_PREFIX + body)

    async def broadcast(self, packet: bytes) -> None:
        for peer in self.run_dir.glob("cancel-*.sock"):
            if peer == self.path:
                continue
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    _, writer = await asyncio.open_unix_connection(str(peer))
                    writer.write(packet)
                    await writer.drain()
                    writer.close()


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    """What the peer sent before closing, at most MAX_PACKET bytes (more is not a message of ours)."""
    data = bytearray()
    while len(data) <= MAX_PACKET:
        chunk = await reader.read(MAX_PACKET + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data) if len(data) <= MAX_PACKET else b""
