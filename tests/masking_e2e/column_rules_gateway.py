"""A gateway whose policy has column rules over a schema of its own, and ways to read rows through it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from tests.conftest import RunningGateway, start_gateway
from tests.pg_fixture import UpstreamPostgres


@contextlib.contextmanager
def rules_gateway_over(
    tmp_path: Path, upstream: UpstreamPostgres, *, schema_sql: str, policies: str, drop_sql: str
) -> Iterator[RunningGateway]:
    """Run `schema_sql` upstream, start a gateway with `policies`; at the end stop it and run `drop_sql`."""
    upstream.execute(schema_sql)
    running = start_gateway(tmp_path, upstream, policies=policies)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
        upstream.execute(drop_sql)


async def fetch_row(gateway: RunningGateway, sql: str) -> dict[str, object]:
    """The first row of `sql`, through the gateway in a session of its own (asyncpg, binary formats)."""
    conn = await asyncpg.connect(gateway.url(), ssl=False)
    try:
        row = await conn.fetchrow(sql)
        assert row is not None
        return dict(row)
    finally:
        await conn.close()
