"""Keeping a connection's catalog of table names verified while its sessions run."""

# See proxy/masking/table_names.py. A catalog is checked at every session start. Sessions that stay open (a
# pool) with no new one starting would see it go stale after FRESH_SECONDS and fall back to matching column
# rules by name alone; so while a connection has sessions, one task per connection logs in upstream with
# the gateway's credential and checks the fingerprint every VERIFY_INTERVAL (reloading when it changed). If
# it cannot, nothing is lost: the catalog goes stale and rules match by name, masking more.

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from proxy.gateway_queries import CATALOG_FINGERPRINT_SQL, CATALOG_SQL
from proxy.masking.table_names import TableNames
from proxy.postgres.upstream import UpstreamError, UpstreamLink, run_query

log = logging.getLogger("hoop.catalog")

VERIFY_INTERVAL = 4.0  # well inside table_names.FRESH_SECONDS
QUERY_TIMEOUT = 30.0
_FAILURE_LOG_INTERVAL = 300.0


async def verify_catalog(link: UpstreamLink, tables: TableNames, *, max_message_size: int) -> None:
    """Check the catalog's fingerprint on an idle upstream link and reload the catalog when it changed."""
    rows = await run_query(link, CATALOG_FINGERPRINT_SQL, max_message_size=max_message_size)
    fingerprint = rows[0][0] if rows and rows[0] else None
    if fingerprint is None:
        raise UpstreamError("the catalog fingerprint query returned no value")
    if tables.check(fingerprint):
        ticket = tables.begin_load()
        catalog = await run_query(link, CATALOG_SQL, max_message_size=max_message_size)
        tables.replace(catalog, fingerprint, ticket)


class CatalogWatch:
    """One connection's watcher task: runs while `in_use()` says sessions need the catalog."""

    def __init__(
        self,
        name: str,
        tables: TableNames,
        connect: Callable[[], Awaitable[UpstreamLink]],
        in_use: Callable[[], bool],
        *,
        max_message_size: int,
    ) -> None:
        self.name = name
        self._tables = tables
        self._connect = connect
        self._in_use = in_use
        self._max_message_size = max_message_size
        self._task: asyncio.Task[None] | None = None
        self._last_failure_log = 0.0

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"catalog-watch-{self.name}"
            )

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        link: UpstreamLink | None = None
        try:
            while True:
                await asyncio.sleep(VERIFY_INTERVAL)
                if not self._in_use():
                    return
                try:
                    if link is None or link.endpoint.closed:
                        link = await asyncio.wait_for(self._connect(), QUERY_TIMEOUT)
                    await asyncio.wait_for(
                        verify_catalog(link, self._tables, max_message_size=self._max_message_size),
                        QUERY_TIMEOUT,
                    )
                except (UpstreamError, OSError, TimeoutError) as error:
                    self._log_failure(error)
                    if link is not None:
                        link.endpoint.abort()
                    link = None
        finally:
            if link is not None:
                link.endpoint.write(b"X\x00\x00\x00\x04")  # Terminate: the backend exits cleanly
                link.endpoint.close()

    def _log_failure(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL:
            self._last_failure_log = now
            log.warning(
                "connection %s: cannot verify the catalog for column rules (%s); until it can, they match "
                "columns by name alone",
                self.name,
                error,
            )
