"""Builds the configured store backend from the `gateway.store` setting."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.store.base import Store
from proxy.store.postgres import PostgresStore
from proxy.store.sqlite import DATABASE_FILE, SqliteStore

PASSWORD_ENV = "HOOP_STORE_PASSWORD"


def open_store(url: str, state_dir: Path, gateway_id: str) -> Store:
    """The store for `url`, not yet connected: call `await store.open()` next (and `close()` at shutdown).

    "sqlite" means `<state_dir>/hoop.db`; a "postgresql://user@host[:port]/db" URL means the shared PostgreSQL
    store, whose password, if any, comes from the HOOP_STORE_PASSWORD environment variable (never the URL).
    """
    if url == "sqlite":
        return SqliteStore(Path(state_dir) / DATABASE_FILE, gateway_id)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, gateway_id, password=os.environ.get(PASSWORD_ENV) or None)
    raise ValueError('the store must be "sqlite" or a "postgresql://user@host/db" URL')
