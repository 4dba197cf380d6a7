"""Versioned schema migrations for each store backend, and the rules for applying them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: the statements taking the previous version to this one, run in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


def latest_version(migrations: Sequence[Migration]) -> int:
    return migrations[-1].version if migrations else 0


def migrations_after(current: int, migrations: Sequence[Migration]) -> list[Migration]:
    """What to apply to a schema at `current`; refuses a schema newer than this code understands."""
    latest = latest_version(migrations)
    if current > latest:
        raise SchemaTooNew(
            f"the state store's schema is version {current}, newer than this hoop-tui understands "
            f"(version {latest}); upgrade hoop-tui"
        )
    return [migration for migration in migrations if migration.version > current]


class SchemaTooNew(Exception):
    """The database was migrated by a newer release."""
