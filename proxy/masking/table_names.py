"""Which table and column a RowDescription field comes from: the upstream's OIDs resolved to names."""

# PostgreSQL names a result column's table only by OID (and the column by its number: the field's own name is
# whatever the query called it). Column rules such as "users.ssn" need the names, so
# the gateway loads the upstream's catalog of relations once per connection (TABLE_NAMES_SQL in
# proxy/gateway_queries.py) and refreshes it after a TTL, or sooner once a session meets an OID it does not
# know (a table created since). Until then that column matches rules by its name alone: masking more, never
# less.

from __future__ import annotations

import time
from collections.abc import Iterable

# How long a connection's catalog of table names is trusted before the next session reloads it, and how soon
# after a load an unknown OID may make the next session load it again (temporary tables come and go).
TABLE_NAMES_TTL = 300.0
STALE_RELOAD_AFTER = 5.0


class TableNames:
    """OID → (schema, table) and (OID, column number) → column name for one upstream connection; shared by
    its sessions, replaced whole."""

    __slots__ = ("_columns", "_names", "loaded_at", "stale")

    def __init__(self) -> None:
        self._names: dict[int, tuple[str, str]] = {}
        self._columns: dict[tuple[int, int], str] = {}
        self.loaded_at: float | None = None
        self.stale = False  # an unknown OID was met: reload at the next session (see refresh_due)

    def replace(self, rows: Iterable[tuple[str | None, ...]]) -> None:
        """Rows of (oid, schema, table, column number, column name) as text, from TABLE_NAMES_SQL (the last
        two NULL for a relation without columns)."""
        names: dict[int, tuple[str, str]] = {}
        columns: dict[tuple[int, int], str] = {}
        for row in rows:
            if len(row) != 5:
                continue
            oid_text, schema, table, number, column = row
            if oid_text is None or schema is None or table is None:
                continue
            try:
                oid = int(oid_text)
                names[oid] = (schema, table)
                if number is not None and column is not None:
                    columns[(oid, int(number))] = column
            except ValueError:
                continue
        self._names = names
        self._columns = columns
        self.loaded_at = time.monotonic()
        self.stale = False

    def refresh_due(self, now: float | None = None) -> bool:
        if self.loaded_at is None:
            return True
        age = (time.monotonic() if now is None else now) - self.loaded_at
        return age > (STALE_RELOAD_AFTER if self.stale else TABLE_NAMES_TTL)

    def resolve(self, oid: int) -> tuple[str, str] | None:
        """The (schema, table) of relation `oid`; None for computed columns (OID 0) and unknown OIDs."""
        if not oid:
            return None
        found = self._names.get(oid)
        if found is None and self.loaded_at is not None:
            self.stale = True
        return found

    def column_name(self, oid: int, number: int) -> str | None:
        """The name of column `number` of relation `oid` (what the query may have renamed), if known."""
        return self._columns.get((oid, number))
