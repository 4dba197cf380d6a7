"""Cost per statement of the SQL classifier: cold, cached by exact text, cached by literal-free shape.

Run from the repository root:  python bench/classify_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from proxy.policy.classify import SqlClassifier

PGBENCH_SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = {n}"

# A mix an agent might send: reads, writes, a transaction, session settings and a few things to refuse.
MIXED_TEMPLATES = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    "UPDATE pgbench_accounts SET abalance = abalance + {n} WHERE aid = {n}",
    "SELECT tbalance FROM pgbench_tellers WHERE tid = {n}",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({n}, 1, {n}, 5, CURRENT_TIMESTAMP)",
    "SELECT u.id, u.email, count(o.id) FROM public.users u LEFT JOIN orders o ON o.user_id = u.id "
    "WHERE u.created_at > now() - interval '{n} days' GROUP BY u.id, u.email ORDER BY 3 DESC LIMIT 50",
    "WITH recent AS (SELECT * FROM events WHERE id > {n}) SELECT kind, count(*) FROM recent GROUP BY kind",
    "DELETE FROM sessions WHERE expires_at < now() - interval '{n} minutes'",
    "BEGIN",
    "COMMIT",
    "SET statement_timeout = {n}",
    "SELECT set_config('application_name', 'agent-{n}', false)",
    "SELECT pg_read_file('/etc/passwd')",
    "COPY (SELECT * FROM orders WHERE id > {n}) TO STDOUT",
    "SELECT 1; UPDATE t SET a = {n} WHERE id = {n}",
)


def per_statement_us(run: Callable[[], int], rounds: int) -> float:
    """Median over rounds of microseconds per statement; ``run`` returns how many statements it classified."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        count = run()
        samples.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(samples)


def workload(templates: Sequence[str], count: int) -> list[str]:
    return [templates[i % len(templates)].format(n=i + 1) for i in range(count)]


def measure(name: str, templates: Sequence[str], count: int, rounds: int) -> None:
    varying = workload(templates, count)
    repeated = [template.format(n=1) for template in templates] * max(1, count // len(templates))

    def cold() -> int:
        classifier = SqlClassifier(cache_size=0)
        for sql in varying:
            classifier.classify(sql)
        return len(varying)

    warm_text = SqlClassifier()
    for sql in repeated:
        warm_text.classify(sql)

    def by_text() -> int:
        for sql in repeated:
            warm_text.classify(sql)
        return len(repeated)

    warm_shape = SqlClassifier(cache_size=len(varying) * 2)
    for sql in varying:  # fills the shape cache
        warm_shape.classify(sql)
    rounds_done = [0]

    def by_shape() -> int:
        # New literals every round: every string misses the text cache and takes the shape path.
        rounds_done[0] += 1
        base = rounds_done[0] * len(varying)
        shifted = [templates[i % len(templates)].format(n=base + i) for i in range(len(varying))]
        for sql in shifted:
            warm_shape.classify(sql)
        return len(shifted)

    results = {
        "cold (no cache)": per_statement_us(cold, rounds),
        "cached by text": per_statement_us(by_text, rounds),
        "cached by shape": per_statement_us(by_shape, rounds),
    }
    print(f"{name}: {count} statements, median of {rounds} rounds")
    for label, value in results.items():
        print(f"  {label:<18} {value:8.2f} us/statement  ({1e6 / value:>12,.0f} statements/s)")
    stats = warm_shape.cache_stats()
    print(f"  shape cache: {stats['shape_hits']} hits, {stats['misses']} misses (uncacheable kinds re-parse)")


def main(argv: Sequence[str] | None = None) -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--count", type=int, default=20_000, help="statements per round")
    arguments.add_argument("--rounds", type=int, default=5)
    options = arguments.parse_args(argv)
    print(f"python {sys.version.split()[0]}, pglast parser, {options.count} statements per round")
    measure("pgbench -S (aid varies)", (PGBENCH_SELECT,), options.count, options.rounds)
    measure("mixed corpus (literals vary)", MIXED_TEMPLATES, options.count, options.rounds)


if __name__ == "__main__":
    main()
