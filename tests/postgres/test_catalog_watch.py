"""CatalogWatch: while sessions need it, it re-checks the catalog; when it cannot, the catalog goes stale."""

from __future__ import annotations

import asyncio

import pytest

import proxy.postgres.catalog_watch as catalog_watch
from proxy.masking.table_names import TableNames
from proxy.postgres.catalog_watch import CatalogWatch
from proxy.postgres.upstream import UpstreamLink


async def test_an_upstream_it_cannot_reach_is_retried_and_the_watch_ends_with_its_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_watch, "VERIFY_INTERVAL", 0.01)
    attempts = 0
    in_use = True

    async def connect() -> UpstreamLink:
        nonlocal attempts
        attempts += 1
        raise OSError("connection refused")

    tables = TableNames()
    watch = CatalogWatch("appdb", tables, connect, lambda: in_use, max_message_size=1 << 20)
    watch.ensure_running()
    await asyncio.sleep(0.2)
    assert attempts >= 3  # each round tries again
    assert not tables.fresh()  # nothing verified: rules match by name meanwhile
    in_use = False
    await asyncio.sleep(0.05)
    stopped = attempts
    await asyncio.sleep(0.1)
    assert attempts == stopped  # no session needs it: the watch has ended
