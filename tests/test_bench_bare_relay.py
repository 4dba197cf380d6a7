"""bench/bare_relay.py, the benchmark's floor: it must not leak connections when clients leave early."""

from __future__ import annotations

import asyncio

import pytest


async def test_bare_relay_closes_upstream_when_the_client_left_during_connect() -> None:
    """A client gone before the upstream connection is up: that upstream connection is closed, not kept."""
    from bench.bare_relay import _Client

    upstream_closed = asyncio.Event()
    upstream_opened = asyncio.Event()
    upstream_writers: list[asyncio.StreamWriter] = []

    async def upstream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writers.append(writer)
        upstream_opened.set()
        await reader.read()  # until EOF: the relay closed its side
        upstream_closed.set()

    upstream = await asyncio.start_server(upstream_handler, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    relay = await loop.create_server(lambda: _Client(("127.0.0.1", upstream_port)), "127.0.0.1", 0)
    relay_port = relay.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", relay_port)
        writer.close()  # the client gives up at once
        await asyncio.wait_for(upstream_opened.wait(), 5)
        try:
            await asyncio.wait_for(upstream_closed.wait(), 3)
        except TimeoutError:
            pytest.fail("the bare relay kept the upstream connection of a departed client open")
    finally:
        for upstream_writer in upstream_writers:
            upstream_writer.close()
        await asyncio.sleep(0.05)
        relay.close()
        upstream.close()
