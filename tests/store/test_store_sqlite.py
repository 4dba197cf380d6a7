"""SQLite specifics: another process's decision releases a waiter here, WAL and file mode, unusable files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from proxy.store.base import StoreUnavailable
from proxy.store.sqlite import SqliteStore
from tests.store.helpers import approval

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run in a separate interpreter: opens the same file, files a request of its own, decides ours, and reports
# the wall-clock time at which its decision was committed.
OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from proxy.store.sqlite import SqliteStore
    from tests.store.helpers import approval

    async def main(path, approval_id):
        store = SqliteStore(Path(path), "gw-other-process")
        await store.open()
        try:
            await store.create_approval(approval("from-other-process", gateway_id="gw-other-process"))
            await store.decide_approval(
                approval_id, state="approved", decider="alice", justification="ok", now=time.time()
            )
            print(time.time(), flush=True)
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_a_decision_from_another_process_releases_the_waiter(tmp_path: Path) -> None:
    path = tmp_path / "hoop.db"
    store = SqliteStore(path, "gw-here")
    await store.open()
    try:
        watch = store.watch_approvals()
        record = approval(gateway_id="gw-here")
        await store.create_approval(record)
        waiting = asyncio.create_task(store.wait_for_decision(record.id, timeout=30))

        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OTHER_PROCESS, str(path), record.id,
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        released = await asyncio.wait_for(waiting, 30)
        released_at = time.time()
        stdout, stderr = await asyncio.wait_for(child.communicate(), 30)
        assert child.returncode == 0, stderr.decode()

        assert (released.state, released.decider, released.justification) == ("approved", "alice", "ok")
        latency = released_at - float(stdout.decode().strip())
        print(
            f"\nsqlite across processes: waiter released {latency * 1000:.1f} ms after the other one decided"
        )
        assert latency < 1.0

        # The watcher here saw the other process's creation and decision too.
        seen = [await asyncio.wait_for(anext(watch), 5) for _ in range(3)]
        assert [(r.id, r.state) for r in seen] == [
            (record.id, "pending"),
            ("from-other-process", "pending"),
            (record.id, "approved"),
        ]
    finally:
        await store.close()


async def test_wal_mode_and_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "dir" / "hoop.db"
    store = SqliteStore(path, "gw-a")
    await store.open()
    try:
        await store.create_approval(approval())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_an_unusable_path_or_file_fails_closed(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StoreUnavailable, match="cannot be opened"):
        await SqliteStore(blocker / "hoop.db", "gw-a").open()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database at all" * 200)
    with pytest.raises(StoreUnavailable, match="not a database"):
        await SqliteStore(garbage, "gw-a").open()


async def test_a_write_lock_held_too_long_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "hoop.db"
    store = SqliteStore(path, "gw-a", busy_timeout=0.2)
    await store.open()
    hog = sqlite3.connect(path, isolation_level=None)
    try:
        hog.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.create_approval(approval())
        hog.execute("ROLLBACK")
        await store.create_approval(approval("after"))
        assert (await store.get_approval("after")) is not None
    finally:
        hog.close()
        await store.close()
