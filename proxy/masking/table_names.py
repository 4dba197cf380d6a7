"""Which table and column a RowDescription field comes from: the upstream's OIDs resolved to names."""

# PostgreSQL names a result column's table only by OID (and the column by its number: the field's own name is
# whatever the query called it). Column rules such as "users.ssn" need the names, so the gateway loads the
# upstream's catalog per connection (CATALOG_SQL in proxy/gateway_queries.py) and, at every session start
# of a policy with column rules, compares a fingerprint of it (CATALOG_FINGERPRINT_SQL): any table created,
# dropped, renamed, re-parented or re-columned since reloads it before the session relays a byte.
#
# A table is known by its own name, its ancestors' (a rule naming a parent applies to a partition read on its
# own) and its descendants' (a rule naming a partition applies to its rows read through the parent): more
# masking, never less. A view or materialized view is not resolved to a table (its fields carry the view's
# OID), so rules apply to its columns by name, the view's own column names and the names the query gave
# them both counting.
#
# Only a catalog verified in the last FRESH_SECONDS resolves anything: a session that outlives that with no
# other session starting (a pooled connection) would otherwise keep names from before a table swap. Past it,
# new result shapes are matched by column name alone until the next session start verifies the catalog.

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

FRESH_SECONDS = 10.0
# relkind values whose columns are a table's own columns (tables, partitioned tables, foreign tables).
_TABLE_KINDS = frozenset({"r", "p", "f"})


@dataclass(frozen=True, slots=True)
class Relation:
    """A table as column rules see it: its own (schema, name) first, then its ancestors' and descendants'."""

    names: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]  # every live column, for a whole-row value (`SELECT t FROM t`)


class TableNames:
    """The catalog of one upstream connection; shared by its sessions, replaced whole on reload."""

    __slots__ = ("_columns", "_loads", "_relation_columns", "_relations", "fingerprint", "generation",
                 "verified_at")  # fmt: skip

    def __init__(self) -> None:
        self._relations: dict[int, Relation] = {}
        self._columns: dict[tuple[int, int], str] = {}
        self._relation_columns: dict[int, tuple[str, ...]] = {}  # views' too
        self.fingerprint: str | None = None  # of the catalog loaded; None before the first load
        self.generation = 0  # bumped by every load applied
        self._loads = 0  # load tickets handed out (see begin_load)
        self.verified_at = 0.0

    # ---------------------------------------------------------------- loading, at session start

    def check(self, fingerprint: str) -> bool:
        """A session start read `fingerprint`: True when the catalog must be reloaded, else it is verified."""
        if self.fingerprint is not None and fingerprint == self.fingerprint:
            self.verified_at = time.monotonic()
            return False
        self.verified_at = 0.0  # known to be out of date: resolve nothing until a load is applied
        return True

    def begin_load(self) -> int:
        """A ticket for a load about to run: of two loads that overlap, the one begun later wins."""
        self._loads += 1
        return self._loads

    def replace(self, rows: Iterable[tuple[str | None, ...]], fingerprint: str, ticket: int) -> None:
        """Rows of CATALOG_SQL: ("t", oid, schema, name, relkind) per relation, ("c", oid, number, name,
        NULL) per column, ("a", oid, parent oid, NULL, NULL) per direct parent. Rows that do not read are
        skipped: their table stays unknown (rules then match by column name)."""
        if ticket < self._loads:
            return  # a load begun later is running or done: it read a newer catalog than this one
        own: dict[int, tuple[str, str]] = {}
        kinds: dict[int, str] = {}
        parents: dict[int, list[int]] = {}
        columns: dict[tuple[int, int], str] = {}
        for row in rows:
            if len(row) != 5 or None in row[:3]:
                continue
            kind, oid_text, first, second, third = row
            try:
                oid = int(oid_text)  # type: ignore[arg-type]
                if kind == "t" and second is not None and third is not None:
                    own[oid] = (first, second)  # type: ignore[assignment]
                    kinds[oid] = third
                elif kind == "c" and second is not None:
                    columns[(oid, int(first))] = second  # type: ignore[arg-type]
                elif kind == "a":
                    parents.setdefault(oid, []).append(int(first))  # type: ignore[arg-type]
            except ValueError:
                continue
        by_relation: dict[int, list[str]] = {}
        for (oid, _number), name in sorted(columns.items()):
            by_relation.setdefault(oid, []).append(name)
        children: dict[int, list[int]] = {}
        for child, direct in parents.items():
            for parent in direct:
                children.setdefault(parent, []).append(child)
        self._relations = {
            oid: Relation(
                tuple(own[other] for other in _family(oid, parents, children) if other in own),
                tuple(by_relation.get(oid, ())),
            )
            for oid in own
            if kinds.get(oid) in _TABLE_KINDS
        }
        self._relation_columns = {oid: tuple(names) for oid, names in by_relation.items()}
        self._columns = columns
        self.fingerprint = fingerprint
        self.generation += 1
        self.verified_at = time.monotonic()

    # ---------------------------------------------------------------- resolving, per result shape

    def fresh(self) -> bool:
        """Whether the catalog was verified recently enough to resolve anything (see the module comment)."""
        return self.fingerprint is not None and time.monotonic() - self.verified_at <= FRESH_SECONDS

    def resolve(self, oid: int) -> Relation | None:
        """The table behind a field's table OID; None for computed columns (OID 0), views and unknown OIDs."""
        return self._relations.get(oid) if oid else None

    def column_name(self, oid: int, number: int) -> str | None:
        """The name of column `number` of relation `oid` (a table's or a view's), if known."""
        return self._columns.get((oid, number))

    def relation_columns(self, oid: int) -> tuple[str, ...]:
        """Every live column of relation `oid` (a table or a view), for a whole-row value of it."""
        return self._relation_columns.get(oid, ())


def _family(oid: int, parents: dict[int, list[int]], children: dict[int, list[int]]) -> list[int]:
    """`oid`, then its ancestors, then its descendants (each once; cycles cannot loop)."""
    found = [oid]
    seen = {oid}
    for links in (parents, children):
        pending = list(links.get(oid, ()))
        while pending:
            other = pending.pop(0)
            if other in seen:
                continue
            seen.add(other)
            found.append(other)
            pending.extend(links.get(other, ()))
    return found
