"""Recording benchmarks: write throughput, size on disk, seek and terminal-frame latency on a big file.

    python bench/recordings_bench.py                 # quick: a 128 MB one-hour recording
    python bench/recordings_bench.py --size-mb 1024  # the budget in DESIGN.md section 11: 1 GB, one hour

Everything is written to a temporary directory that is removed afterwards. Latencies are measured twice:
"warm" (the file is in the page cache, as right after writing) and "cold" (the file's pages are dropped with
posix_fadvise before each operation, where the platform allows it).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.pgwire import encode_datarow
from recordings.reader import RecordingReader
from recordings.writer import RecordingWriter

HOUR_US = 3600 * 1_000_000
BACKPRESSURE_BYTES = 64 << 20

FIRST = ["Ada", "Linus", "Grace", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia"]
LAST = ["Lovelace", "Torvalds", "Hopper", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Dijkstra"]
STATUSES = ["active", "pending", "suspended", "closed", "trial"]
ORDER_STATES = ["new", "paid", "shipped", "delivered", "refunded", "cancelled"]
CITIES = ["Berlin", "Lisbon", "Austin", "Osaka", "Nairobi", "Toronto", "Lyon", "Perth"]


# -- realistic sessions --------------------------------------------------------------------------------------


def _decision(sql: str, kind: str, decision: str) -> list:
    detail = {"statement": sql, "kind": kind, "decision": decision, "rule": f"ci-agents/appdb#{decision}"}
    return ["policy.decision", {**detail, "flags": []}]


def _approval(request: str, sql: str) -> Iterator[list]:
    yield [
        "approval.requested",
        {"id": request, "statement": sql, "kind": "write", "rule": "ci-agents/appdb#review",
         "requester": "ci-bot", "expires_at": "2030-01-01T00:05:00Z"},
    ]  # fmt: skip
    yield [
        "approval.decided",
        {"id": request, "state": "approved", "decider": "oncall-alice", "reason": "cleanup",
         "decided_at": "2030-01-01T00:01:00Z"},
    ]  # fmt: skip


class SqlWorkload:
    """An agent poking at a production database: the same tables, similar queries, overlapping rows."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.customers = [
            [
                str(n).encode(),
                b"********@****.***",  # masked by the storage policy before it reaches the writer
                rng.choice(FIRST).encode(),
                rng.choice(LAST).encode(),
                rng.choice(STATUSES).encode(),
                rng.choice(CITIES).encode(),
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}+00".encode(),
            ]
            for n in range(1, 3001)
        ]
        self.orders = [
            [
                str(100000 + n).encode(),
                str(rng.randint(1, 3000)).encode(),
                f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}".encode(),
                b"EUR" if rng.random() < 0.7 else b"USD",
                rng.choice(ORDER_STATES).encode(),
                f"2025-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d}".encode(),
            ]
            for n in range(20000)
        ]

    def session(self) -> Iterator[list]:
        """Events without time; the caller stamps ``t_us``. Endless."""
        rng = self.rng
        number = 0
        while True:
            number += 1
            pick = rng.random()
            if pick < 0.45:
                account = rng.randint(1, 2990)
                sql = (
                    "SELECT id, email, first_name, last_name, status, city, created_at FROM customers "
                    f"WHERE id BETWEEN {account} AND {account + 10} ORDER BY id"
                )
                rows = self.customers[account - 1 : account + rng.randint(0, 10)]
                columns = ["id", "email", "first_name", "last_name", "status", "city", "created_at"]
                yield from self._select(
                    sql, columns, [23, 25, 25, 25, 25, 25, 1184], rows, {"email": len(rows)}
                )
            elif pick < 0.85:
                customer = rng.randint(1, 3000)
                state = rng.choice(ORDER_STATES)
                sql = (
                    "SELECT o.id, o.customer_id, o.amount, o.currency, o.state, o.created_on FROM orders o "
                    f"WHERE o.customer_id = {customer} AND o.state = '{state}' "
                    "ORDER BY o.created_on DESC LIMIT 50"
                )
                start = rng.randint(0, len(self.orders) - 60)
                rows = self.orders[start : start + rng.randint(0, 40)]
                columns = ["id", "customer_id", "amount", "currency", "state", "created_on"]
                yield from self._select(sql, columns, [20, 20, 1700, 25, 25, 1082], rows, {})
            elif pick < 0.97:
                order = rng.randint(100000, 120000)
                sql = f"UPDATE orders SET state = 'shipped', updated_at = now() WHERE id = {order}"
                yield _decision(sql, "write", "allow")
                yield ["pg.query", sql]
                yield ["pg.complete", "UPDATE 1"]
            else:
                sql = f"DELETE FROM sessions WHERE expires_at < now() - interval '{rng.randint(1, 30)} days'"
                request = f"apr-{number}"
                yield _decision(sql, "write", "review")
                yield ["pg.query", sql]
                yield from _approval(request, sql)
                yield ["pg.complete", f"DELETE {rng.randint(0, 400)}"]

    @staticmethod
    def _select(sql: str, columns: list[str], oids: list[int], rows: list, masked: dict) -> Iterator[list]:
        yield _decision(sql, "read", "allow")
        yield ["pg.query", sql]
        yield ["pg.rowdesc", columns, oids]
        if rows:
            yield ["pg.rows", len(rows), b"".join(encode_datarow(row) for row in rows)]
        yield ["pg.complete", f"SELECT {len(rows)}"]
        if masked and rows:
            yield ["mask.summary", masked]


class TerminalWorkload:
    """An interactive shell: coloured prompts, echoed keystrokes, listings, logs, and a `top` screen."""

    PROMPT = "\x1b[1;32mdeploy@web1\x1b[0m:\x1b[1;34m~/app\x1b[0m$ "

    def __init__(self, seed: int = 2) -> None:
        self.rng = random.Random(seed)
        self.processes = [
            (
                self.rng.randint(100, 999),
                self.rng.randint(10, 99),
                self.rng.choice(["python", "nginx", "node"]),
            )
            for _ in range(20)
        ]

    def session(self) -> Iterator[list]:
        rng = self.rng
        log_line = 0
        while True:
            pick = rng.random()
            command = rng.choice(
                ["ls -la", "git log --oneline -20", "tail -n 200 log/app.log", "top", "df -h"]
            )
            if pick < 0.2:
                command = "top"
            yield ["ssh.output", "stdout", self.PROMPT.encode()]
            for char in command + "\r":
                yield ["ssh.input", char.encode()]
                yield ["ssh.output", "stdout", (char if char != "\r" else "\r\n").encode()]
            if command.startswith("tail"):
                for _ in range(20):
                    lines = []
                    for _ in range(10):
                        log_line += 1
                        level = rng.choice(["INFO", "INFO", "INFO", "WARN", "ERROR"])
                        lines.append(
                            f"2025-05-01T12:{log_line // 60 % 60:02d}:{log_line % 60:02d}."
                            f"{rng.randint(0, 999):03d}Z {level} request id={rng.getrandbits(32):08x} "
                            f"path=/api/v1/orders/{rng.randint(1, 99999)} "
                            f"status={rng.choice([200, 200, 201, 404, 500])} dur={rng.randint(1, 900)}ms\r\n"
                        )
                    yield ["ssh.output", "stdout", "".join(lines).encode()]
            elif command == "top":
                for frame in range(15):
                    rows = [
                        f"\x1b[Htop - 12:{frame:02d}:01 up 12 days,  "
                        f"load average: 0.{rng.randint(10, 99)}\x1b[K\r\n"
                    ]
                    rows.append(
                        "\x1b[7m  PID USER      PR  NI    VIRT    RES  %CPU  %MEM COMMAND\x1b[0m\x1b[K\r\n"
                    )
                    for pid, (virtual, resident, program) in enumerate(self.processes):
                        busy = rng.random() < 0.2  # most processes sit idle between refreshes
                        cpu = rng.random() * 30 if busy else 0.0
                        rows.append(
                            f"{1000 + pid:5d} deploy    20   0 {virtual:6d}m {resident:5d}m "
                            f"{cpu:5.1f} {resident / 160:5.1f} {program}\x1b[K\r\n"
                        )
                    yield ["ssh.output", "stdout", "".join(rows).encode()]
                yield ["ssh.output", "stdout", b"\x1b[2J\x1b[H"]
            elif command.startswith("git"):
                text = "".join(
                    f"\x1b[33m{rng.getrandbits(28):07x}\x1b[m fix: handle "
                    f"{rng.choice(['retries', 'timeouts'])} in {rng.choice(['orders', 'billing'])}\r\n"
                    for _ in range(20)
                )
                yield ["ssh.output", "stdout", text.encode()]
            else:
                text = "".join(
                    f"-rw-r--r-- 1 deploy deploy {rng.randint(100, 99999):6d} May  1 12:00 "
                    f"{rng.choice(['app', 'config', 'data'])}_{n}.{rng.choice(['py', 'toml', 'md'])}\r\n"
                    for n in range(rng.randint(5, 30))
                )
                yield ["ssh.output", "stdout", text.encode()]


# -- measuring -----------------------------------------------------------------------------------------------


def _payload(event: list) -> int:
    return len(msgpack.packb(event, use_bin_type=True))


def write_session(
    path: Path,
    key: Ed25519PrivateKey,
    source: Iterator[list],
    *,
    header: dict,
    stop: Callable[[int, int], bool],
    step_us: Callable[[], int],
    terminal: bool = False,
    durability: str = "none",
) -> dict:
    """Stream events into a writer until ``stop(events, payload_bytes)``; returns the measurements."""
    writer = RecordingWriter(path, header, key, durability=durability, terminal=terminal)
    writer.start()
    events = payload = 0
    t_us = 0
    append_time = 0.0
    started = time.perf_counter()
    for template in source:
        t_us += step_us()
        event = [t_us, *template]
        payload += _payload(event)
        before = time.perf_counter()
        writer.append(event)
        append_time += time.perf_counter() - before
        events += 1
        if events % 4096 == 0:
            while writer.pending_bytes > BACKPRESSURE_BYTES:
                time.sleep(0.01)
            if stop(events, payload):
                break
        elif stop(events, payload) and events % 64 == 0:
            break
    writer.close([t_us, "session.end", {"reason": "benchmark"}])
    elapsed = time.perf_counter() - started
    if writer.error is not None:
        raise SystemExit(f"writer failed: {writer.error}")
    size = path.stat().st_size
    return {
        "events": events,
        "payload": payload,
        "size": size,
        "seconds": elapsed,
        "append_ns": append_time / max(events, 1) * 1e9,
        "duration_us": t_us,
    }


def _drop_cache(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms  max {ordered[-1] * 1e3:6.2f} ms"


def _timed(
    operation: Callable[[], object], before: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """``(first, best)`` wall time of ``operation`` over ``repeats`` runs, ``before`` run untimed each time.

    The first run is what a user gets; the best of several filters out other processes on a shared host.
    """
    timings = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        operation()
        timings.append(time.perf_counter() - start)
    return timings[0], min(timings)


def _report(first: list[float], best: list[float]) -> str:
    return f"{_percentiles(first)}\n  {'':<52} best of 3: {_percentiles(best)}"


def measure_seek(path: Path, duration_us: int, samples: int, cold: bool) -> tuple[str, str]:
    rng = random.Random(5)
    prepare = (lambda: _drop_cache(path)) if cold else (lambda: None)
    seek_first, seek_best, open_first, open_best = [], [], [], []
    with RecordingReader(path) as reader:
        for _ in range(samples):
            instant = rng.randint(0, duration_us)
            first, best = _timed(lambda at=instant: next(reader.seek(at), None), prepare, 3)
            seek_first.append(first)
            seek_best.append(best)

    def open_and_seek(instant: int) -> None:
        with RecordingReader(path) as reader:
            next(reader.seek(instant), None)

    for _ in range(max(samples // 4, 5)):
        instant = rng.randint(0, duration_us)
        first, best = _timed(lambda at=instant: open_and_seek(at), prepare, 3)
        open_first.append(first)
        open_best.append(best)
    return _report(seek_first, seek_best), _report(open_first, open_best)


def measure_screen_at(path: Path, duration_us: int, samples: int, cold: bool) -> str:
    rng = random.Random(6)
    first_times, best_times = [], []
    with RecordingReader(path) as reader:

        def prepare() -> None:
            reader.clear_cache()  # every frame decodes its chunk, as a random seek in the player would
            if cold:
                _drop_cache(path)

        for _ in range(samples):
            instant = rng.randint(0, duration_us)
            first, best = _timed(lambda at=instant: reader.screen_at(at), prepare, 3)
            first_times.append(first)
            best_times.append(best)
    return _report(first_times, best_times)


def _header(protocol: str, **extra: object) -> dict:
    header = {
        "session_id": f"bench-{protocol}",
        "protocol": protocol,
        "connection": "appdb" if protocol == "postgres" else "web1",
        "identity": {"subject": "ci-bot"},
        "groups": ["ci-agents"],
        "gateway_id": "bench",
        "storage_masking": {"mask": ["email"]},
    }
    header.update(extra)
    return header


def _row(label: str, value: str) -> None:
    print(f"  {label:<52} {value}")


def _throughput(result: dict) -> str:
    megabytes = result["payload"] / result["seconds"] / 1e6
    return f"{megabytes:7.1f} MB/s payload, {result['events'] / result['seconds']:,.0f} events/s"


def _one_hour_step(sample: dict, target_bytes: int) -> int:
    """Microseconds between events so that a file of ``target_bytes`` spans one hour."""
    ratio = sample["size"] / sample["payload"]
    events_needed = target_bytes / ratio / (sample["payload"] / sample["events"])
    return max(1, int(HOUR_US / max(events_needed, 1)))


def _size_reached(path: Path, target_bytes: int, sample: dict) -> Callable[[int, int], bool]:
    """Stop once the file, or the payload still queued at the sample's ratio, reaches ``target_bytes``."""
    ratio = sample["size"] / sample["payload"]
    return lambda _events, payload: payload * ratio >= target_bytes or path.stat().st_size >= target_bytes


def _latencies(label: str, path: Path, measure: Callable[[bool], list[tuple[str, str]]]) -> None:
    for cold in (False, True):
        if cold and not _drop_cache(path):
            continue
        for name, value in measure(cold):
            _row(f"{name} ({'cold' if cold else 'warm'})", value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=128, help="size of the big one-hour SQL recording")
    parser.add_argument("--term-mb", type=int, default=16, help="size of the big one-hour terminal recording")
    parser.add_argument("--samples", type=int, default=200, help="seeks and frames measured")
    parser.add_argument("--keep", type=Path, help="write into this directory and keep the files")
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        print(f"recording benchmark (zstd level 6; 64 KiB / 1 s chunks); load average {load[0]:.1f}")

        print("\n1. SQL session, 40 MB of event payload, durability=chunk (fsync per chunk)")
        sql = write_session(
            directory / "sql.hrec",
            key,
            SqlWorkload().session(),
            header=_header("postgres"),
            stop=lambda _events, payload: payload >= 40 << 20,
            step_us=lambda: 2000,
            durability="chunk",
        )
        _row("events", f"{sql['events']:,}")
        _row("write throughput (append -> sealed on disk)", _throughput(sql))
        _row("append() on the event loop", f"{sql['append_ns']:7.0f} ns per event")
        _row("bytes on disk per byte of payload", f"{sql['size'] / sql['payload']:7.3f}  (budget 0.200)")

        print("\n2. Terminal session (prompts, keystroke echo, logs, git log, top), 16 MB of payload")
        term = write_session(
            directory / "term.hrec",
            key,
            TerminalWorkload().session(),
            header=_header("ssh", terminal_size=[120, 40]),
            stop=lambda _events, payload: payload >= 16 << 20,
            step_us=lambda: 20000,
            terminal=True,
        )
        _row("events", f"{term['events']:,}")
        _row("write throughput (with screen keyframes)", _throughput(term))
        _row("bytes on disk per byte of payload", f"{term['size'] / term['payload']:7.3f}  (budget 0.200)")

        big_path = directory / "big.hrec"
        print(f"\n3. Big SQL recording: {args.size_mb} MB on disk over one hour")
        step = _one_hour_step(sql, args.size_mb << 20)
        big = write_session(
            big_path,
            key,
            SqlWorkload(seed=9).session(),
            header=_header("postgres"),
            stop=_size_reached(big_path, args.size_mb << 20, sql),
            step_us=lambda: step,
        )
        with RecordingReader(big_path) as reader:
            chunks = len(reader.chunks)
        hours = big["duration_us"] / HOUR_US
        _row(
            "file", f"{big['size'] / 1e6:,.0f} MB, {chunks:,} chunks, {hours:.2f} h, {big['events']:,} events"
        )
        _row("write throughput (durability=none)", _throughput(big))

        def seeks(cold: bool) -> list[tuple[str, str]]:
            seek, open_seek = measure_seek(big_path, big["duration_us"], args.samples, cold)
            return [("seek to a random instant", seek), ("open + seek (budget 50 ms)", open_seek)]

        _latencies("seek", big_path, seeks)

        # A crash leaves no seal: the reader then indexes the file by walking the chunk prefixes.
        with RecordingReader(big_path) as reader:
            last = reader.chunks[-1]
        os.truncate(big_path, last.offset + 9 + last.length)

        def unsealed_seeks(cold: bool) -> list[tuple[str, str]]:
            _, open_seek = measure_seek(big_path, big["duration_us"], max(args.samples // 10, 8), cold)
            return [("open + seek, seal cut off (chunk scan)", open_seek)]

        _latencies("unsealed", big_path, unsealed_seeks)

        term_path = directory / "bigterm.hrec"
        print(f"\n4. Big terminal recording: {args.term_mb} MB on disk over one hour")
        term_step = _one_hour_step(term, args.term_mb << 20)
        big_term = write_session(
            term_path,
            key,
            TerminalWorkload(seed=11).session(),
            header=_header("ssh", terminal_size=[120, 40]),
            stop=_size_reached(term_path, args.term_mb << 20, term),
            step_us=lambda: term_step,
            terminal=True,
        )
        _row("file", f"{big_term['size'] / 1e6:,.0f} MB, {big_term['events']:,} events")

        def frames(cold: bool) -> list[tuple[str, str]]:
            timing = measure_screen_at(term_path, big_term["duration_us"], args.samples, cold)
            return [("screen_at a random instant (budget 20 ms)", timing)]

        _latencies("frames", term_path, frames)


if __name__ == "__main__":
    main()
