"""The floor for a Python relay: bytes forwarded both ways in `data_received`, nothing parsed or recorded.

Not part of the gateway. `pg_bench.py` runs it beside pgbouncer and the gateway so that every run shows what
Python + uvloop cost on that machine before any gateway feature: the gap between this row and the gateway's
is what the features cost; the gap between this row and pgbouncer's is the language and the event loop.

    python bench/bare_relay.py --listen 127.0.0.1:0 --upstream 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import sys


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()

    # The client reads slower than the upstream sends (a bulk read): stop reading upstream meanwhile.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


class _Client(asyncio.Protocol):
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream_address = upstream
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []  # what the client sent before the upstream connection was up
        self.gone = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        try:
            upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: _Upstream(self.transport),
                *self.upstream_address,  # type: ignore[arg-type]
            )
        except OSError:
            self.transport.close()
            return
        if self.gone:  # the client left while we connected
            upstream.close()
            return
        self.upstream = upstream  # type: ignore[assignment]
        upstream.writelines(self.early)
        self.early = []

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self.upstream is not None:
            self.upstream.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Client(upstream), *listen)
    port = server.sockets[0].getsockname()[1]
    print(f"bare relay listening on {listen[0]}:{port}", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--upstream", type=_address, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # the gateway uses uvloop when installed; so does its floor
        asyncio.run(_serve(args.listen, args.upstream))
    else:
        uvloop.run(_serve(args.listen, args.upstream))


if __name__ == "__main__":
    sys.exit(main())
