"""Which table and column a RowDescription field comes from: the upstream's OIDs resolved to names."""

# PostgreSQL names a result column's table only by OID (and the column by its number: the field's own name is
# whatever the query called it). Column rules such as "users.ssn" need the names, so the gateway loads the
# upstream's catalog per connection (CATALOG_SQL in proxy/gateway_queries.py) and, at every session start
# of a policy with column rules, compares a fingerprint of it (CATALOG_FINGERPRINT_SQL): any table created,
# dropped, renamed, re-parented or re-columned since reloads it before the session relays a byte.
#
# A partition or inheritance child is also known by its ancestors (a rule naming the parent applies to it).
# A view or materialized view is left unresolved: its columns are not the base table's in the catalog's
# terms, so rules apply to them by column name alone, like computed columns: more masking, never less.

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# relkind values whose columns are a table's own columns (tables, partitioned tables, foreign tables).
_TABLE_KINDS = frozenset({"r", "p", "f"})


@dataclass(frozen=True, slots=True)
class Relation:
    """A table as column rules see it: its own (schema, name) first, then those of its ancestors."""

    names: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]  # every live column, for a whole-row value (`SELECT t FROM t`)


class TableNames:
    """The catalog of one upstream connection; shared by its sessions, replaced whole on reload."""

    __slots__ = ("_columns", "_relations", "fingerprint")

    def __init__(self) -> None:
        self._relations: dict[int, Relation] = {}
        self._columns: dict[tuple[int, int], str] = {}
        self.fingerprint: str | None = None  # of the catalog loaded; None before the first load

    def refresh_due(self, fingerprint: str | None) -> bool:
        return self.fingerprint is None or fingerprint != self.fingerprint

    def replace(self, rows: Iterable[tuple[str | None, ...]], fingerprint: str | None) -> None:
        """Rows of CATALOG_SQL: ("t", oid, schema, name, relkind) per relation, ("c", oid, number, name,
        NULL) per column, ("a", oid, ancestor schema, ancestor name, depth) per ancestor. Rows that do not
        read are skipped: their table stays unknown (rules then match by column name)."""
        own: dict[int, tuple[str, str]] = {}
        kinds: dict[int, str] = {}
        ancestors: dict[int, list[tuple[int, tuple[str, str]]]] = {}
        columns: dict[tuple[int, int], str] = {}
        for row in rows:
            if len(row) != 5 or None in row[:4]:
                continue
            kind, oid_text, first, second, third = row
            try:
                oid = int(oid_text)  # type: ignore[arg-type]
                if kind == "t" and third is not None:
                    own[oid] = (first, second)  # type: ignore[assignment]
                    kinds[oid] = third
                elif kind == "c":
                    columns[(oid, int(first))] = second  # type: ignore[arg-type]
                elif kind == "a" and third is not None:
                    ancestors.setdefault(oid, []).append((int(third), (first, second)))  # type: ignore[arg-type]
            except ValueError:
                continue
        by_relation: dict[int, list[str]] = {}
        for (oid, _number), name in sorted(columns.items()):
            by_relation.setdefault(oid, []).append(name)
        self._relations = {
            oid: Relation(
                (names, *(name for _, name in sorted(ancestors.get(oid, ())))),
                tuple(by_relation.get(oid, ())),
            )
            for oid, names in own.items()
            if kinds.get(oid) in _TABLE_KINDS
        }
        self._columns = columns
        self.fingerprint = fingerprint

    def resolve(self, oid: int) -> Relation | None:
        """The table behind a field's table OID; None for computed columns (OID 0), views and unknown OIDs."""
        return self._relations.get(oid) if oid else None

    def column_name(self, oid: int, number: int) -> str | None:
        """The name of column `number` of relation `oid` (what the query may have renamed), if known."""
        return self._columns.get((oid, number))
