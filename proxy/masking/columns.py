"""Column rules from policy `mask_columns`: globs over [schema.]table.column naming columns masked whole."""

#     mask_columns = ["*.email", "users.ssn=us_ssn", "public.users.*", "notes"]
#
# A rule is `column`, `table.column` or `schema.table.column`, each part a glob (`*`, `?`, `[..]`), matched
# case-insensitively as PostgreSQL folds unquoted identifiers. An optional `=entity` names the entity whose
# token and strategy replace the value ("[US_SSN]"); without one the entity is "masked" ("[MASKED]").
#
# A result column's table comes from the upstream's catalog (proxy/masking/table_names.py). Fail closed
# where it does not: a field computed by an expression has no table, and a table created after the catalog
# was loaded is not in it yet, so a rule that names a table still applies to a column of that name. A table
# given without a schema matches any schema.

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate

from proxy.masking.entities import BUILTIN_ENTITIES, COLUMN_RULE_ENTITY, CUSTOM_PREFIX


@dataclass(frozen=True, slots=True)
class ColumnRule:
    pattern: str
    schema: re.Pattern[str] | None
    table: re.Pattern[str] | None
    column: re.Pattern[str]
    entity: str

    def matches(self, schema: str | None, table: str | None, column: str) -> bool:
        if not self.column.match(column):
            return False
        if table is None:
            return True
        if self.table is not None and not self.table.match(table):
            return False
        return schema is None or self.schema is None or self.schema.match(schema) is not None


def _glob(part: str, rule: str) -> re.Pattern[str]:
    if not part:
        raise ValueError(f"mask_columns rule {rule!r} has an empty name part")
    return re.compile(translate(part.lower()))


def parse_column_rule(text: str) -> ColumnRule:
    """Parse one `mask_columns` entry; a malformed one is a single clear error."""
    body, _, entity = text.strip().partition("=")
    body = body.strip()
    entity = entity.strip().lower() or COLUMN_RULE_ENTITY
    if (
        entity not in BUILTIN_ENTITIES
        and entity != COLUMN_RULE_ENTITY
        and not entity.startswith(CUSTOM_PREFIX)
    ):
        raise ValueError(f"mask_columns rule {text!r} names unknown entity {entity!r}")
    parts = body.split(".")
    if len(parts) > 3:
        raise ValueError(f"mask_columns rule {text!r} must be column, table.column or schema.table.column")
    globs = [_glob(part, text) for part in parts]
    schema = globs[0] if len(globs) == 3 else None
    table = globs[-2] if len(globs) >= 2 else None
    return ColumnRule(text, schema, table, globs[-1], entity)


class ColumnRules:
    """The compiled `mask_columns` rules of one policy."""

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):
            raise ValueError("mask_columns must be a list of patterns, not one string")
        self._rules = tuple(parse_column_rule(p) for p in patterns)

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(rule.entity for rule in self._rules)

    def matches(self, table: str | None, column: str) -> bool:
        """True when a rule names this column. `table` may be schema-qualified ("public.users") or None."""
        return self.entity_for(table, column) is not None

    def entity_for(self, table: str | None, column: str, *, schema: str | None = None) -> str | None:
        """The entity of the first rule naming this column, or None. With `schema`, `table` is the bare
        table name (as resolved from the catalog: it may itself hold a dot)."""
        if schema is not None and table is not None:
            schema, table_name = schema.lower(), table.lower()
        else:
            schema, table_name = _split_table(table)
        column = column.lower()
        for rule in self._rules:
            if rule.matches(schema, table_name, column):
                return rule.entity
        return None


def _split_table(table: str | None) -> tuple[str | None, str | None]:
    if table is None:
        return None, None
    schema, dot, name = table.lower().rpartition(".")
    return (schema, name) if dot else (None, name)
