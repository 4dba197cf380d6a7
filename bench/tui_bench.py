"""Console player benchmark: time to first frame and per-step scrub latency on 1M-event recordings.

    python bench/tui_bench.py                        # 1M-event SQL recording + a terminal one, 200 steps each
    python bench/tui_bench.py --events 200000 --steps 100 --json

Synthetic recordings are written once into `<tmp>/hoop-tui-bench/` and reused by later runs (delete the
directory to rebuild them). Each is opened in the real player with `App.run_test` (headless, 120x40):

- first frame: from starting the app to the first paint of the timeline with the recording's duration
  (the player mounted, header and seal read, playhead drawn) -- target < 1 s;
- scrub step: from pressing a key (±5 s seek, next/previous statement) until the timeline has painted the
  new playhead -- target < 50 ms per step, p50 and p99 over the steps. Steps taken while the background
  scan was still indexing are reported apart, since that is when the UI competes with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual import events

from hoop_tui.screens.player import PlayerScreen
from hoop_tui.widgets.timeline import Timeline
from recordings.pgwire import encode_datarow
from recordings.writer import RecordingWriter

FIRST_FRAME_TARGET_S = 1.0
SCRUB_TARGET_MS = 50.0
SIZE = (120, 40)
SECOND = 1_000_000
SCRUB_KEYS = ("right", "right", "left", "n", "p", "n")


def sql_events(count: int, seed: int = 11) -> Iterator[list]:
    """An agent's SQL session: reads with rows, held writes, an occasional denial, and some idle pauses."""
    rng = random.Random(seed)
    t_us = 0
    produced = 0
    statement = 0
    while produced < count:
        statement += 1
        t_us += rng.randint(1_000, 40_000)
        if statement % 2_000 == 0:
            t_us += 30 * SECOND  # the agent thinks: an idle gap for skip-idle
        if statement % 9 == 4:
            sql = f"UPDATE orders SET status = 'shipped' WHERE id = {rng.randint(1, 10**6)}"
            decision = {
                "statement": sql,
                "kind": "write",
                "decision": "review",
                "rule": "ci/appdb",
                "flags": [],
            }
            request = {"id": f"req-{statement}", "statement": sql, "kind": "write", "requester": "ci-bot"}
            decided = {"id": f"req-{statement}", "state": "approved", "decider": "alice", "reason": "ok"}
            batch = [
                [t_us, "policy.decision", decision],
                [t_us, "pg.query", sql],
                [t_us + 1, "approval.requested", request],
                [t_us + 800_000, "approval.decided", decided],
                [t_us + 800_100, "pg.complete", "UPDATE 1"],
            ]
            t_us += 800_100
        elif statement % 97 == 50:
            sql = "DROP TABLE customers"
            decision = {"statement": sql, "kind": "drop", "decision": "deny", "rule": "ci/appdb", "flags": []}
            error = {"S": "ERROR", "C": "42501", "M": "hoop: denied by policy"}
            batch = [
                [t_us, "policy.decision", decision],
                [t_us, "pg.query", sql],
                [t_us + 10, "pg.error", error],
            ]
        else:
            sql = f"SELECT id, email, name FROM customers WHERE account_id = {rng.randint(1, 500)}"
            decision = {
                "statement": sql,
                "kind": "read",
                "decision": "allow",
                "rule": "ci/appdb",
                "flags": [],
            }
            rows = rng.randint(0, 5)
            raw = b"".join(
                encode_datarow([str(rng.randint(1, 99_999)).encode(), b"****@****.com", b"Ada"])
                for _ in range(rows)
            )
            batch = [
                [t_us, "policy.decision", decision],
                [t_us, "pg.query", sql],
                [t_us + 20, "pg.rowdesc", ["id", "email", "name"], [23, 25, 25]],
                [t_us + 40, "pg.rows", rows, raw],
                [t_us + 50, "pg.complete", f"SELECT {rows}"],
            ]
        yield from batch
        produced += len(batch)


def terminal_events(count: int, seed: int = 12) -> Iterator[list]:
    """A shell session: typed commands, each followed by a burst of output lines."""
    rng = random.Random(seed)
    t_us = 0
    produced = 0
    command = 0
    while produced < count:
        command += 1
        t_us += rng.randint(200_000, 3 * SECOND)
        text = rng.choice(
            ["ls -la /var/log", "tail -n 50 app.log", "ps aux", "df -h", "systemctl status web"]
        )
        yield [t_us, "ssh.input", f"{text}\r".encode()]
        produced += 1
        for line in range(rng.randint(5, 60)):
            t_us += rng.randint(100, 5_000)
            payload = f"{command:06d} {line:03d} {'x' * rng.randint(10, 70)}\r\n".encode()
            yield [t_us, "ssh.output", "stdout", payload]
            produced += 1
        yield [t_us + 10, "ssh.output", "stdout", b"web1$ "]
        produced += 1


def ensure_recording(
    directory: Path, name: str, events: Iterator[list], header: dict, terminal: bool
) -> Path:
    """The cached recording `name`, written now when missing (to a temporary name, then renamed)."""
    path = directory / name
    if path.exists():
        return path
    partial = directory / f"{name}.partial"
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    writer = RecordingWriter(
        partial, header, Ed25519PrivateKey.generate(), durability="none", terminal=terminal
    )
    writer.start()
    for number, event in enumerate(events):
        writer.append(event)
        if number % 50_000 == 0:
            while writer.pending_events > 200_000:  # keep memory bounded while the disk thread catches up
                time.sleep(0.01)
    writer.close()
    if writer.error is not None:
        raise SystemExit(f"writing {name} failed: {writer.error}")
    partial.rename(path)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return path


async def measure(path: Path, steps: int, seed: int = 5) -> dict[str, object]:
    """First frame and scrub-step latencies of the player on `path`."""
    from hoop_tui.app import make_replay_app

    rng = random.Random(seed)
    app = make_replay_app(path)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        timeline: Timeline | None = None
        while timeline is None or timeline.first_painted_at is None:
            await asyncio.sleep(0.001)
            if isinstance(app.screen, PlayerScreen) and app.screen.is_mounted:
                timeline = app.screen.query_one(Timeline)
        first_frame = timeline.first_painted_at - started
        screen = app.screen
        assert isinstance(screen, PlayerScreen)
        screen.clock.playing = False
        driver = app._driver
        assert driver is not None
        while_indexing: list[float] = []
        indexed: list[float] = []
        per_key: dict[str, list[float]] = {}
        unmoved = 0
        for step in range(steps):
            if step == steps // 2:
                # The first half scrubs while the background scan still runs; the second after it finished.
                while screen.scan_finished_at is None:
                    await pilot.pause(0.05)
            if step % 20 == 0:
                screen.seek_to(rng.randrange(screen.duration_us))  # a fresh place in the file, not timed
                await pilot.pause()
            key = SCRUB_KEYS[step % len(SCRUB_KEYS)]
            indexing = screen.scan_finished_at is None
            before = time.perf_counter()
            # What a terminal driver does with a keypress (pilot.press would also wait for the CPU to idle).
            driver.send_message(events.Key(key, None))
            if not await until_painted(screen, timeline, position_before=screen.position_us):
                unmoved += 1
                continue
            elapsed_ms = (time.perf_counter() - before) * 1000
            (while_indexing if indexing else indexed).append(elapsed_ms)
            per_key.setdefault(key, []).append(elapsed_ms)
        statements = len(screen.statements)
    everything = while_indexing + indexed
    return {
        "file": path.name,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "first_frame_s": round(first_frame, 3),
        "scrub_p50_ms": round(percentile(everything, 50), 1),
        "scrub_p99_ms": round(percentile(everything, 99), 1),
        "scrub_steps": len(everything),
        "steps_while_indexing": len(while_indexing),
        "indexing_p99_ms": round(percentile(while_indexing, 99), 1) if while_indexing else None,
        "indexed_p99_ms": round(percentile(indexed, 99), 1) if indexed else None,
        "p99_ms_by_key": {key: round(percentile(values, 99), 1) for key, values in per_key.items()},
        "statements": statements,
        "steps_that_did_not_move": unmoved,
        "full_index_s": round(await measure_index_time(path), 2),
    }


async def until_painted(screen: PlayerScreen, timeline: Timeline, position_before: int) -> bool:
    """Wait until the key has moved the playhead and the timeline has painted it; False when it did not move
    within a second (an edge of the file, or no statement after this one found yet)."""
    deadline = time.perf_counter() + 1
    while screen.position_us == position_before or timeline.painted_position_us != screen.position_us:
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.0005)
    return True


async def measure_index_time(path: Path) -> float:
    """Seconds from opening the player until the background scan has indexed every chunk, untouched."""
    from hoop_tui.app import make_replay_app

    app = make_replay_app(path)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while not isinstance(app.screen, PlayerScreen) or app.screen.scan_finished_at is None:
            await pilot.pause(0.02)
        return app.screen.scan_finished_at - started


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1] if pct < 100 else max(values)


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in each synthetic recording")
    parser.add_argument(
        "--terminal-events", type=int, default=None, help="events in the terminal one (default: --events)"
    )
    parser.add_argument("--steps", type=int, default=200, help="timed scrub steps per recording")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hoop-tui-bench")
    parser.add_argument("--json", action="store_true", help="JSON on stdout instead of the table")
    options = parser.parse_args()
    options.cache.mkdir(parents=True, exist_ok=True)
    terminal_count = options.terminal_events or options.events
    base = {"connection": "appdb", "identity": "ci-bot", "groups": ["ci-agents"], "gateway_id": "bench"}
    sql = ensure_recording(
        options.cache,
        f"sql-{options.events}.hrec",
        sql_events(options.events),
        {**base, "session_id": "bench-sql", "protocol": "postgres"},
        terminal=False,
    )
    shell = ensure_recording(
        options.cache,
        f"terminal-{terminal_count}.hrec",
        terminal_events(terminal_count),
        {
            **base,
            "session_id": "bench-ssh",
            "protocol": "ssh",
            "connection": "web1",
            "terminal_size": [120, 30],
        },
        terminal=True,
    )
    results = [asyncio.run(measure(path, options.steps)) for path in (sql, shell)]
    if options.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        first = float(result["first_frame_s"])  # type: ignore[arg-type]
        p99 = float(result["scrub_p99_ms"])  # type: ignore[arg-type]
        print(f"{result['file']} ({result['file_mb']} MB, {result['statements']} statements)")
        print(
            f"  first frame     {first * 1000:8.0f} ms   target < {FIRST_FRAME_TARGET_S * 1000:.0f} ms  "
            f"{verdict(first, FIRST_FRAME_TARGET_S)}"
        )
        print(
            f"  scrub step p50  {result['scrub_p50_ms']:8} ms   p99 {p99} ms   "
            f"target < {SCRUB_TARGET_MS:.0f} ms  "
            f"{verdict(p99, SCRUB_TARGET_MS)}  ({result['scrub_steps']} steps, "
            f"{result['steps_while_indexing']} while indexing: p99 {result['indexing_p99_ms']} ms; "
            f"{result['steps_that_did_not_move']} did not move)"
        )
        print(f"  after indexing p99 {result['indexed_p99_ms']} ms; p99 by key {result['p99_ms_by_key']}")
        print(f"  full marker index ready after {result['full_index_s']} s (background, nobody scrubbing)")


if __name__ == "__main__":
    main()
