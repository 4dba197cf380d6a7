"""Messages between gateway worker processes sharing one port: a cancel key may land on any of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

MAX_PACKET = 300


class CancelRouter:
    """Each worker listens on `<run_dir>/cancel-<pid>.sock`; a cancel it cannot match goes to all the others.

    PostgreSQL clients send a CancelRequest on a fresh connection, which SO_REUSEPORT may hand to a
    different worker than the one that owns the session; the owner recognises its key, the rest ignore it.
    """

    def __init__(self, run_dir: Path, handle: Callable[[bytes], Awaitable[None]]) -> None:
        self.run_dir = run_dir
        self.path = run_dir / f"cancel-{os.getpid()}.sock"
        self._handle = handle
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
            packet = await asyncio.wait_for(reader.read(MAX_PACKET), 5)
            if packet:
                await self._handle(packet)
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

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
