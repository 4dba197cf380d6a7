"""Pieces without a database: migration lists and rules, the watch queue's bound, input checks, layering."""

from __future__ import annotations

import subprocess
import sys
import weakref
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.store.base import AuditRecord, GrantRecord, check_decision, check_grant
from proxy.store.feed import WATCH_QUEUE_SIZE, ApprovalWatch
from proxy.store.migrations import Migration, SchemaTooNew, latest_version, migrations_after
from proxy.store.migrations.postgres import MIGRATIONS as PG_MIGRATIONS
from proxy.store.migrations.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from tests.store.helpers import approval

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("migrations", [SQLITE_MIGRATIONS, PG_MIGRATIONS], ids=["sqlite", "postgres"])
def test_migration_versions_are_contiguous_from_one(migrations: tuple[Migration, ...]) -> None:
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.statements and m.description for m in migrations)


def test_migrations_after_picks_the_missing_ones_and_refuses_newer_schemas() -> None:
    steps = (Migration(1, "a", ("x",)), Migration(2, "b", ("y",)), Migration(3, "c", ("z",)))
    assert [m.version for m in migrations_after(0, steps)] == [1, 2, 3]
    assert [m.version for m in migrations_after(2, steps)] == [3]
    assert migrations_after(3, steps) == []
    assert latest_version(steps) == 3 and latest_version(()) == 0
    with pytest.raises(SchemaTooNew, match=r"version 4, newer than .* \(version 3\)"):
        migrations_after(4, steps)


async def test_a_watcher_that_stops_reading_keeps_only_the_newest_changes() -> None:
    registry: weakref.WeakSet[ApprovalWatch] = weakref.WeakSet()
    watch = ApprovalWatch(registry)
    records = [approval(f"r{n}") for n in range(WATCH_QUEUE_SIZE + 5)]
    for record in records:
        watch.push(record)
    assert (await anext(watch)).id == "r5"
    await watch.aclose()
    assert watch not in registry
    drained = [record.id async for record in watch]
    assert len(drained) == WATCH_QUEUE_SIZE - 1 and drained[-1] == records[-1].id


def test_input_checks_name_the_problem() -> None:
    with pytest.raises(ValueError, match="decider"):
        check_decision("approved", "", None, 1.0)
    with pytest.raises(ValueError, match="finite"):
        check_decision("approved", "alice", None, float("inf"))
    with pytest.raises(ValueError, match="NUL"):
        check_decision("denied", "alice", "bad\x00reason", 1.0)
    good = GrantRecord("g", "ci", "appdb", ("write",), "alice", 1.0, 2.0)
    check_grant(good)
    with pytest.raises(ValueError, match="tuple"):
        check_grant(replace(good, allow="write"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tuple"):
        check_grant(replace(good, allow=["write"]))  # type: ignore[arg-type]
    assert AuditRecord(None, 1.0, "a", "b", None, None).detail == {}


def test_the_store_never_imports_textual() -> None:
    code = (
        "import sys, proxy.store.factory, proxy.store.sqlite, proxy.store.postgres;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'hoop_tui')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
