"""One-command throughput benchmark: pgbench -S and 1M-row bulk reads, direct vs pgbouncer vs the gateway.

Run from the repository root:  python bench/pg_bench.py [--duration 15] [--workers 1,2] [--json]
See bench/README.md for what each figure means and the DESIGN §11 targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from bench._cluster import (
    BARE_RELAY,
    UNMASKED_CONNECTION,
    BenchCluster,
    Endpoint,
    GatewayHandle,
    StartError,
    client_tool,
    pgbouncer_binary,
)

WARMUP_SECONDS = 3
BULK_TIMEOUT_SECONDS = 300
TPS_TARGET_VS_PGBOUNCER = 1.0  # DESIGN §11
BULK_TARGET_VS_DIRECT = 0.5  # DESIGN §11
MASK_PROBE = "bench.probe@example.com"

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_LATENCY = re.compile(r"latency average = ([0-9.]+) ms")
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_LOG_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |^Traceback")


@dataclass
class PgbenchResult:
    target: str
    tps: float | None = None
    latency_ms: float | None = None
    transactions: int | None = None
    failed: int | None = None
    vs_direct: float | None = None
    vs_pgbouncer: float | None = None
    error: str | None = None
    # CPU time of the proxy's processes (all threads, user + system) per transaction, and its user part.
    proxy_cpu_us: float | None = None
    proxy_user_us: float | None = None


@dataclass
class BulkRun:
    rows: int | None = None
    seconds: float | None = None
    rows_per_s: float | None = None
    vs_direct: float | None = None
    error: str | None = None
    proxy_cpu_us_per_row: float | None = None


@dataclass
class BulkResult:
    target: str
    select: BulkRun = field(default_factory=BulkRun)
    copy: BulkRun = field(default_factory=BulkRun)


@dataclass
class GatewayFacts:
    target: str
    workers: int
    masking_active: bool | None = None
    recording_files: int = 0
    recording_bytes: int = 0
    log_problems: int = 0  # WARNING/ERROR/CRITICAL lines and tracebacks in the gateway's log


# ---------------------------------------------------------------------------------------------- arguments


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def worker_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,2, got {text!r}"
        ) from None
    if not values or any(not 1 <= value <= 64 for value in values):
        raise argparse.ArgumentTypeError(f"worker counts must be 1..64, got {text!r}")
    return list(dict.fromkeys(values))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pg_bench.py",
        description="pgbench -S and bulk reads: direct, through pgbouncer, and through the gateway.",
    )
    parser.add_argument("--duration", type=positive_int, default=15, help="seconds per pgbench run")
    parser.add_argument("--clients", type=positive_int, default=8, help="pgbench -c")
    parser.add_argument("--threads", type=positive_int, default=2, help="pgbench -j")
    parser.add_argument("--scale", type=positive_int, default=10, help="pgbench -i -s")
    parser.add_argument(
        "--workers", type=worker_list, default=[1, 2], help="gateway worker counts to run, e.g. 1,2"
    )
    parser.add_argument(
        "--query-mode", choices=["simple", "extended", "prepared"], default="simple", help="pgbench -M"
    )
    parser.add_argument("--bulk-rows", type=positive_int, default=1_000_000, help="rows per bulk read")
    parser.add_argument(
        "--bulk-repeat", type=positive_int, default=3, help="bulk runs per target; the best one counts"
    )
    parser.add_argument("--skip-bulk", action="store_true", help="only run pgbench")
    parser.add_argument(
        "--no-bare-relay",
        action="store_true",
        help="leave out bench/bare_relay.py's row (Python + uvloop forwarding bytes, no gateway feature)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    if args.threads > args.clients:
        parser.error("--threads must not exceed --clients")
    return args


# ---------------------------------------------------------------------------------------------- progress

_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def last_lines(text: str, count: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


# ---------------------------------------------------------------------------------------------- pgbench


def pgbench_init(pgbench: str, endpoint: Endpoint, scale: int) -> None:
    result = subprocess.run(
        [pgbench, "-i", "-q", "-s", str(scale)],
        env=endpoint.libpq_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise StartError(f"pgbench -i failed:\n{last_lines(result.stderr)}")


def run_pgbench(pgbench: str, endpoint: Endpoint, args: argparse.Namespace, seconds: int) -> PgbenchResult:
    """One `pgbench -S` run; a non-zero exit or a missing tps line is an error carrying pgbench's words."""
    argv = [pgbench, "-S", "-n", "-M", args.query_mode, "-c", str(args.clients), "-j", str(args.threads)]
    argv += ["-T", str(seconds)]
    outcome = PgbenchResult(endpoint.name)
    try:
        result = subprocess.run(
            argv, env=endpoint.libpq_env(), capture_output=True, text=True, timeout=seconds + 60
        )
    except subprocess.TimeoutExpired:
        outcome.error = f"pgbench did not finish within {seconds + 60}s"
        return outcome
    output = result.stdout + result.stderr
    if (found := _TPS.search(output)) is not None:
        outcome.tps = float(found.group(1))
    if (found := _LATENCY.search(output)) is not None:
        outcome.latency_ms = float(found.group(1))
    if (found := _PROCESSED.search(output)) is not None:
        outcome.transactions = int(found.group(1))
    if (found := _FAILED.search(output)) is not None:
        outcome.failed = int(found.group(1))
    if result.returncode != 0 or outcome.tps is None:
        outcome.error = f"pgbench exited {result.returncode}: {last_lines(result.stderr or result.stdout)}"
    elif outcome.failed:
        outcome.error = f"{outcome.failed} failed transactions"
    return outcome


# ---------------------------------------------------------------------------------------------- bulk


def bulk_select_sql(rows: int) -> str:
    """A third of the rows carry an email address (personal data the gateway masks)."""
    pii = "CASE WHEN g % 3 = 0 THEN 'user' || g || '@example.com' ELSE 'order-' || g END"
    return f"SELECT g, md5(g::text), {pii} FROM generate_series(1, {rows}) g"


def bulk_copy_command(rows: int) -> str:
    """psql's `\\copy ... TO '/dev/null'` sends the server exactly `COPY (...) TO STDOUT` and, unlike a plain
    COPY TO STDOUT, sets ROW_COUNT afterwards, so the count is checked without piping the data anywhere."""
    return f"\\copy ({bulk_select_sql(rows)}) TO '/dev/null'"


def run_bulk(psql: str, endpoint: Endpoint, command: str) -> BulkRun:
    """Run one psql command whose result goes to /dev/null and time it; psql reports the row count on stderr
    (`\\warn :ROW_COUNT`) so a stream cut short is an error, not a fast run."""
    argv = [psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", command, "-c", "\\warn :ROW_COUNT"]
    outcome = BulkRun()
    started = time.perf_counter()
    try:
        result = subprocess.run(
            argv,
            env=endpoint.libpq_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=BULK_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        outcome.error = f"psql did not finish within {BULK_TIMEOUT_SECONDS}s"
        return outcome
    elapsed = time.perf_counter() - started
    reported = result.stderr.strip().splitlines()
    if result.returncode != 0 or not reported or not reported[-1].isdigit():
        outcome.error = f"psql exited {result.returncode}: {last_lines(result.stderr)}"
        return outcome
    outcome.rows = int(reported[-1])
    outcome.seconds = elapsed
    outcome.rows_per_s = outcome.rows / elapsed
    return outcome


def masking_active(psql: str, endpoint: Endpoint) -> bool | None:
    """Whether an e-mail address comes back masked through this endpoint (None: the probe failed)."""
    result = subprocess.run(
        [psql, "-X", "-A", "-t", "-c", f"SELECT '{MASK_PROBE}'"],
        env=endpoint.libpq_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return None
    return MASK_PROBE not in result.stdout


# ---------------------------------------------------------------------------------------------- facts


def machine_facts(
    pgbench: str, pgbouncer: str | None, server_version: str, load_before: float | None
) -> dict[str, Any]:
    uvloop_version = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop_version = uvloop.__version__
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "uvloop": uvloop_version,
        "postgres": server_version,
        "pgbench": tool_version([pgbench, "--version"]),
        "pgbouncer": tool_version([pgbouncer, "--version"]) if pgbouncer else None,
        # Other work on the machine skews every ratio; a 1-minute load well above 0 before the run says so.
        "load_before": load_before,
        "load_after": load_average(),
    }


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def tool_version(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    lines = result.stdout.strip().splitlines()
    return lines[0] if lines else None


def gateway_facts(handle: GatewayHandle, masked: bool | None) -> GatewayFacts:
    files = list(handle.recordings_dir.rglob("*.hrec")) if handle.recordings_dir.exists() else []
    try:
        log = handle.log_path.read_text(errors="replace")
    except OSError:
        log = ""
    problems = sum(1 for line in log.splitlines() if _LOG_PROBLEM.search(line))
    return GatewayFacts(
        target=handle.endpoint.name,
        workers=handle.workers,
        masking_active=masked,
        recording_files=len(files),
        recording_bytes=sum(path.stat().st_size for path in files),
        log_problems=problems,
    )


# ---------------------------------------------------------------------------------------------- ratios


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def fill_ratios(tps: list[PgbenchResult], bulk: list[BulkResult]) -> None:
    by_name = {result.target: result for result in tps}
    direct = by_name.get("direct")
    bouncer = by_name.get("pgbouncer")
    for result in tps:
        result.vs_direct = ratio(result.tps, direct.tps if direct else None)
        result.vs_pgbouncer = ratio(result.tps, bouncer.tps if bouncer else None)
    bulk_direct = next((result for result in bulk if result.target == "direct"), None)
    for result in bulk:
        if bulk_direct is not None:
            result.select.vs_direct = ratio(result.select.rows_per_s, bulk_direct.select.rows_per_s)
            result.copy.vs_direct = ratio(result.copy.rows_per_s, bulk_direct.copy.rows_per_s)


def target_verdicts(tps: list[PgbenchResult], bulk: list[BulkResult]) -> list[dict[str, Any]]:
    """Each gateway's figures against DESIGN §11: TPS ≥ pgbouncer's, bulk ≥ half of direct."""
    verdicts = []
    for result in tps:
        if result.target.startswith("gateway"):
            verdicts.append(
                verdict(
                    result.target, "pgbench TPS vs pgbouncer", result.vs_pgbouncer, TPS_TARGET_VS_PGBOUNCER
                )
            )
    for result in bulk:
        # The target is with masking on; the unmasked runs are there for the on/off comparison.
        if result.target.startswith("gateway") and not result.target.endswith("unmasked"):
            for label, run in (("bulk SELECT", result.select), ("bulk COPY", result.copy)):
                verdicts.append(
                    verdict(result.target, f"{label} vs direct", run.vs_direct, BULK_TARGET_VS_DIRECT)
                )
    return verdicts


def verdict(target: str, measure: str, value: float | None, minimum: float) -> dict[str, Any]:
    met = None if value is None else value >= minimum
    return {"target": target, "measure": measure, "value": value, "minimum": minimum, "met": met}


# ---------------------------------------------------------------------------------------------- report


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def text_report(report: dict[str, Any]) -> str:
    settings = report["settings"]
    lines = [
        f"pgbench -S -n -M {settings['query_mode']} -c {settings['clients']} -j {settings['threads']} "
        f"-T {settings['duration']}  (scale {settings['scale']}, {WARMUP_SECONDS}s warm-up each, TLS off)",
        f"{'target':<14}{'TPS':>12}{'vs direct':>11}{'vs pgbouncer':>14}{'latency ms':>12}{'failed':>8}"
        f"{'proxy CPU us/txn (user)':>26}",
    ]
    for row in report["pgbench"]:
        cpu = (
            f"{fmt_number(row['proxy_cpu_us'], 1)} ({fmt_number(row['proxy_user_us'], 1)})"
            if row["proxy_cpu_us"] is not None
            else ""
        )
        lines.append(
            f"{row['target']:<14}{fmt_number(row['tps'], 1):>12}{fmt_ratio(row['vs_direct']):>11}"
            f"{fmt_ratio(row['vs_pgbouncer']):>14}{fmt_number(row['latency_ms'], 3):>12}"
            f"{fmt_number(row['failed']):>8}{cpu:>26}"
        )
        if row["error"]:
            lines.append(f"    error: {row['error']}")
    if report["bulk"]:
        lines += [
            "",
            f"bulk: {settings['bulk_rows']:,} rows streamed by psql to /dev/null, best of "
            f"{settings['bulk_repeat']} (SELECT g, md5(g::text), an e-mail address in every third row ...; "
            "and COPY (same) TO STDOUT via \\copy)",
            f"{'target':<14}{'SELECT rows/s':>15}{'vs direct':>11}{'COPY rows/s':>15}{'vs direct':>11}"
            f"{'proxy CPU us/row SELECT, COPY':>32}",
        ]
        for row in report["bulk"]:
            select, copy = row["select"], row["copy"]
            per_row = (select["proxy_cpu_us_per_row"], copy["proxy_cpu_us_per_row"])
            cpu = "" if per_row == (None, None) else ", ".join(fmt_number(value, 2) for value in per_row)
            lines.append(
                f"{row['target']:<14}{fmt_number(select['rows_per_s']):>15}{fmt_ratio(select['vs_direct']):>11}"
                f"{fmt_number(copy['rows_per_s']):>15}{fmt_ratio(copy['vs_direct']):>11}{cpu:>32}"
            )
            for label, run in (("SELECT", select), ("COPY", copy)):
                if run["error"]:
                    lines.append(f"    {label} error: {run['error']}")
    if report["gateways"]:
        lines.append("")
        for facts in report["gateways"]:
            masking = {True: "on", False: "OFF", None: "probe failed"}[facts["masking_active"]]
            lines.append(
                f"{facts['target']}: masking {masking}; {facts['recording_files']} recordings, "
                f"{facts['recording_bytes']:,} bytes; {facts['log_problems']} warning/error lines in its log"
            )
    if report["targets"]:
        lines += ["", "DESIGN §11 targets:"]
        for item in report["targets"]:
            state = {True: "met", False: "MISSED", None: "not measured"}[item["met"]]
            lines.append(
                f"  {item['target']:<12} {item['measure']:<26} {fmt_ratio(item['value']):>7} "
                f"(>= {item['minimum']:.2f}x)  {state}"
            )
    machine = report["machine"]
    lines += [
        "",
        f"machine: {machine['cores']} cores ({machine['usable_cores']} usable) {machine['cpu'] or ''}; "
        f"{machine['platform']}",
        f"python {machine['python']}; uvloop {machine['uvloop'] or 'absent'}; "
        f"PostgreSQL {machine['postgres']}; {machine['pgbench']}; "
        f"{machine['pgbouncer'] or 'pgbouncer absent'}",
        f"1-minute load average: {machine['load_before']} before the run, {machine['load_after']} after",
        f"command: {report['command']}",
    ]
    if report["notes"]:
        lines += ["", *(f"note: {note}" for note in report["notes"])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the cleanup, like Ctrl-C


# ---------------------------------------------------------------------------------------------- proxy CPU
#
# Ratios of throughput move with whatever else runs on the machine; the CPU time a proxy spends per
# transaction (or per row) moves much less, and it is what a proxy takes from PostgreSQL on a small machine.
# Read from /proc (Linux); elsewhere the figures are left out.


def session_pids(marker: str) -> list[int]:
    """Every process in the sessions of the processes whose command line names `marker` (a proxy started by
    the cluster is a session leader; its workers share its session)."""
    proc = Path("/proc")
    sessions: set[int] = set()
    stats: dict[int, list[str]] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        stats[int(entry.name)] = stat
        if marker.encode() in cmdline:
            sessions.add(int(stat[3]))  # field 6 of /proc/<pid>/stat: the session id
    return [pid for pid, stat in stats.items() if int(stat[3]) in sessions]


def cpu_seconds(pids: list[int]) -> tuple[float, float] | None:
    """(user, system) CPU seconds used so far by `pids`, all their threads included; None without /proc."""
    if not pids:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(stat[11])
        system += int(stat[12])
    return user / ticks, system / ticks


def cpu_since(pids: list[int], before: tuple[float, float] | None) -> tuple[float, float] | None:
    after = cpu_seconds(pids)
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]


def measure_tps(
    pgbench: str, targets: list[Endpoint], args: argparse.Namespace, cpu_markers: dict[str, str]
) -> list[PgbenchResult]:
    results = []
    for endpoint in targets:
        progress(f"pgbench {endpoint.name}: {WARMUP_SECONDS}s warm-up, then {args.duration}s")
        warmup = run_pgbench(pgbench, endpoint, args, WARMUP_SECONDS)
        if warmup.tps is None:  # it could not run at all: the measured run would only repeat that
            result = PgbenchResult(endpoint.name, error=f"warm-up: {warmup.error}")
        else:
            marker = cpu_markers.get(endpoint.name)
            pids = session_pids(marker) if marker else []
            before = cpu_seconds(pids)
            result = run_pgbench(pgbench, endpoint, args, args.duration)
            used = cpu_since(pids, before)
            if used is not None and result.transactions:
                result.proxy_cpu_us = (used[0] + used[1]) / result.transactions * 1e6
                result.proxy_user_us = used[0] / result.transactions * 1e6
            if result.error is None and warmup.error is not None:
                result.error = f"warm-up: {warmup.error}"
        progress(f"  tps {fmt_number(result.tps, 1)}" + (f"  ERROR {result.error}" if result.error else ""))
        results.append(result)
    return results


def measure_bulk(
    psql: str, targets: list[Endpoint], rows: int, repeats: int, cpu_markers: dict[str, str]
) -> list[BulkResult]:
    """Each target's best of `repeats` runs; rounds go through every target in turn, so a burst of other
    work on the machine lands on one run of each rather than on every run of one target."""
    select_sql, copy_command = bulk_select_sql(rows), bulk_copy_command(rows)
    results = {endpoint.name: BulkResult(endpoint.name, BulkRun(), BulkRun()) for endpoint in targets}
    for round_number in range(1, repeats + 1):
        for endpoint in targets:
            progress(f"bulk {endpoint.name}: SELECT and COPY of {rows:,} rows ({round_number}/{repeats})")
            result = results[endpoint.name]
            marker = cpu_markers.get(endpoint.name)
            pids = session_pids(marker) if marker else []
            runs = []
            for command, label in ((select_sql, "SELECT"), (copy_command, "COPY")):
                before = cpu_seconds(pids)
                run = checked(run_bulk(psql, endpoint, command), rows, label)
                used = cpu_since(pids, before)
                if used is not None and run.error is None and run.rows:
                    run.proxy_cpu_us_per_row = (used[0] + used[1]) / run.rows * 1e6
                runs.append(run)
            result.select = better(result.select, runs[0])
            result.copy = better(result.copy, runs[1])
    return list(results.values())


def checked(run: BulkRun, expected_rows: int, label: str) -> BulkRun:
    if run.error is None and run.rows != expected_rows:
        run.error = f"{label} returned {run.rows} rows, expected {expected_rows}"
    return run


def better(kept: BulkRun, new: BulkRun) -> BulkRun:
    """The faster run; an error in any round sticks, since a stream that failed once is not to be trusted."""
    if kept.error is not None:
        return kept
    if new.error is not None or kept.rows_per_s is None:
        return new
    return new if (new.rows_per_s or 0) > kept.rows_per_s else kept


def gateway_notes(
    gateways: list[GatewayHandle], facts: list[GatewayFacts], failed_targets: set[str]
) -> list[str]:
    """A gateway's log tail whenever something through it failed or it logged a problem."""
    return [
        f"{handle.endpoint.name} log tail:\n{handle.log_tail(15)}"
        for handle, fact in zip(gateways, facts, strict=True)
        if fact.log_problems or handle.endpoint.name in failed_targets
    ]


def failed_target_names(tps: list[PgbenchResult], bulk: list[BulkResult]) -> set[str]:
    """The targets with any failed measurement."""
    return {row.target for row in tps if row.error} | {
        row.target for row in bulk if row.select.error or row.copy.error
    }


def run(args: argparse.Namespace) -> int:
    pgbench, psql = client_tool("pgbench"), client_tool("psql")
    if pgbench is None or psql is None:
        print("pg_bench: pgbench and psql are required (PostgreSQL client tools)", file=sys.stderr)
        return 1
    load_before = load_average()
    notes: list[str] = []
    bouncer_binary = pgbouncer_binary()
    if bouncer_binary is None:
        notes.append("pgbouncer is not installed (apt-get install pgbouncer); its column is skipped")
        progress(notes[-1])

    with BenchCluster() as cluster:
        progress(f"starting PostgreSQL in {cluster.root}")
        direct = cluster.start_postgres()
        progress(f"pgbench -i -s {args.scale}")
        pgbench_init(pgbench, direct, args.scale)
        targets = [direct]
        if bouncer_binary is not None:
            progress("starting pgbouncer (session pooling)")
            try:
                targets.append(cluster.start_pgbouncer(direct, bouncer_binary))
            except StartError as error:
                notes.append(f"pgbouncer skipped: {error}")
                progress(notes[-1])
        if not args.no_bare_relay:
            progress("starting the bare relay (the floor for a Python relay)")
            try:
                targets.append(cluster.start_bare_relay(direct))
            except StartError as error:
                notes.append(f"bare relay skipped: {error}")
                progress(notes[-1])
        gateways: list[GatewayHandle] = []
        for workers in args.workers:
            progress(f"starting the gateway with workers={workers}")
            try:
                gateways.append(cluster.start_gateway(direct, workers))
            except StartError as error:
                print(f"pg_bench: the gateway (workers={workers}) failed to start: {error}", file=sys.stderr)
                return 1
        targets += [handle.endpoint for handle in gateways]

        # What names each proxy's processes on their command lines, for their CPU time.
        cpu_markers = {handle.endpoint.name: str(handle.directory / "hoop.toml") for handle in gateways}
        cpu_markers["pgbouncer"] = str(cluster.root / "pgbouncer" / "pgbouncer.ini")
        cpu_markers[BARE_RELAY] = "bare_relay.py"  # its command line; one runs per benchmark
        tps_results = measure_tps(pgbench, targets, args, cpu_markers)
        # Bulk also runs through each gateway with masking off (same upstream, a policy without `mask`).
        unmasked = [
            dataclasses.replace(h.endpoint, name=f"{h.endpoint.name} unmasked", database=UNMASKED_CONNECTION)
            for h in gateways
        ]
        bulk_targets = targets + unmasked
        for handle, endpoint in zip(gateways, unmasked, strict=True):
            cpu_markers[endpoint.name] = cpu_markers[handle.endpoint.name]
        bulk_results = (
            []
            if args.skip_bulk
            else measure_bulk(psql, bulk_targets, args.bulk_rows, args.bulk_repeat, cpu_markers)
        )
        facts = [gateway_facts(handle, masking_active(psql, handle.endpoint)) for handle in gateways]
        failed_targets = failed_target_names(tps_results, bulk_results)
        notes += gateway_notes(gateways, facts, failed_targets)
        fill_ratios(tps_results, bulk_results)
        report = {
            "command": shlex.join(sys.orig_argv),
            "settings": {
                "duration": args.duration,
                "clients": args.clients,
                "threads": args.threads,
                "scale": args.scale,
                "workers": args.workers,
                "query_mode": args.query_mode,
                "bulk_rows": None if args.skip_bulk else args.bulk_rows,
                "bulk_repeat": args.bulk_repeat,
            },
            "machine": machine_facts(pgbench, bouncer_binary, cluster.server_version(), load_before),
            "pgbench": [asdict(result) for result in tps_results],
            "bulk": [asdict(result) for result in bulk_results],
            "gateways": [asdict(fact) for fact in facts],
            "targets": target_verdicts(tps_results, bulk_results),
            "notes": notes,
        }
        progress("stopping everything")
    print(json.dumps(report, indent=2) if args.json else text_report(report))
    return 1 if failed_targets else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # pgserver's import asks platformdirs for a runtime dir that containers often lack; none is needed here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # A shell starts background jobs with SIGINT ignored; `kill -INT` must still stop a run cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        return run(args)
    except StartError as error:
        print(f"pg_bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pg_bench: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
