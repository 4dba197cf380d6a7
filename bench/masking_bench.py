"""Masking throughput: mask_bytes on values, RowMasker on DataRows and COPY, StreamMasker on output."""

# Run from the repository root: python bench/masking_bench.py [--seconds 1.0] [--values 3000]
# Prints one table. Values are synthetic but shaped like real result sets: names, addresses, product text,
# order numbers, ISO timestamps, UUIDs, amounts; the "mix" has PII in one value of three.

from __future__ import annotations

import argparse
import hashlib
import json
import random
import struct
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

from proxy.masking.columns import ColumnRules
from proxy.masking.framescan import FrameScan
from proxy.masking.masker import Masker
from proxy.masking.pgrows import ColumnInfo, RowMasker, build_copydata, build_datarow
from proxy.masking.stream import StreamMasker

ALL_ENTITIES = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
TEXT, INT4, TIMESTAMPTZ, JSONB = 25, 23, 1184, 3802

_FIRST = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Fatima", "Gustav", "Hiroshi", "Ines", "José", "Zoë"]
_LAST = ["Smith", "Johnson", "Müller", "García", "Nakamura", "O'Brien", "Kowalski", "Dubois", "Rossi"]
_WORDS = [
    "shipped",
    "pending",
    "refunded",
    "order",
    "invoice",
    "delivery",
    "warehouse",
    "customer",
    "premium",
    "standard",
    "express",
    "returned",
    "backordered",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "with",
    "a",
    "blue",
    "widget",
    "and",
    "two",
    "red",
    "gadgets",
]
_CITIES = ["Berlin", "Paris", "São Paulo", "Tokyo", "Springfield", "Zürich", "New York", "Lagos"]


def clean_value(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if kind == 1:
        return f"{rng.randrange(1, 999)} {rng.choice(_WORDS).title()} Street, {rng.choice(_CITIES)}"
    if kind == 2:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 14)))
    if kind == 3:
        return f"ORD-{rng.randrange(2020, 2026)}-{rng.randrange(10**6):06d} {rng.choice(_WORDS)}"
    if kind == 4:
        day = f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        return f"updated at {day} 10:{rng.randrange(60):02d}"
    if kind == 5:
        return f"request {uuid.UUID(int=rng.getrandbits(128))} done"
    if kind == 6:
        return f"total {rng.randrange(10**5)}.{rng.randrange(100):02d} EUR, {rng.randrange(1, 9)} items"
    return f"{rng.choice(_WORDS).title()} in {rng.choice(_CITIES)}: v{rng.randrange(9)}.{rng.randrange(20)}"


def pii_value(rng: random.Random) -> str:
    name = f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}".replace("'", "")
    choices = [
        f"contact {name}@example.com for details",
        f"call +1 415 555 {rng.randrange(1000, 9999)} after 5pm",
        "card 4242 4242 4242 4242 on file",
        "ssn 123-45-6789 verified",
        "IBAN GB82 WEST 1234 5698 7654 32",
        f"password={rng.getrandbits(64):x}",
        f"{name}@example.org",
    ]
    return rng.choice(choices)


def measure(function: Callable[[], int], seconds: float) -> float:
    """Units per CPU second: `function` does one pass and returns how many units it handled. CPU time of this
    process, not wall time, so that other work on a shared machine does not count against the masker."""
    function()  # warm caches
    done = 0
    started = time.process_time()
    while True:
        done += function()
        elapsed = time.process_time() - started
        if elapsed >= seconds:
            return done / elapsed


def datarow(values: Sequence[bytes | None]) -> bytes:
    parts = [struct.pack(">h", len(values))]
    for value in values:
        parts.append(struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value)
    return b"".join(parts)


def row_values(rng: random.Random, index: int, binary: bool, with_email: bool) -> list[bytes | None]:
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    email = f"{name.lower().replace(' ', '.')}{index}@example.com" if with_email else "no email on file"
    document = {"plan": rng.choice(_WORDS), "seats": rng.randrange(100), "active": True}
    json_text = json.dumps(document).encode()
    return [
        struct.pack(">i", index) if binary else str(index).encode(),
        name.encode(),
        email.encode(),
        struct.pack(">q", 757_382_400_000_000 + index) if binary else b"2024-01-01 10:30:00.123456+00",
        (b"\x01" + json_text) if binary else json_text,
    ]


def bench_values(masker: Masker, values: list[bytes], seconds: float) -> tuple[float, float]:
    total = sum(len(v) for v in values)
    mask = masker.mask_bytes

    def one_pass() -> int:
        for value in values:
            mask(value)
        return len(values)

    per_second = measure(one_pass, seconds)
    return per_second * total / len(values) / 1e6, 1e9 / per_second


def bench_rows(row_masker: RowMasker, rows: list[bytes], seconds: float) -> float:
    mask = row_masker.mask_datarow

    def one_pass() -> int:
        for row in rows:
            mask(row)
        return len(rows)

    return measure(one_pass, seconds)


def frame_buffers(messages: list[bytes], size: int = 65536) -> list[tuple[bytes, list[int]]]:
    """Whole messages packed into buffers of about `size` bytes, with each message's offset: what the relay
    hands the masker per read from the upstream."""
    buffers: list[tuple[bytes, list[int]]] = []
    parts: list[bytes] = []
    starts: list[int] = []
    length = 0
    for message in messages:
        starts.append(length)
        parts.append(message)
        length += len(message)
        if length >= size:
            buffers.append((b"".join(parts), starts))
            parts, starts, length = [], [], 0
    if parts:
        buffers.append((b"".join(parts), starts))
    return buffers


def bench_frames(
    mask_frames: Callable[..., object], scan: FrameScan | None, messages: list[bytes], seconds: float
) -> float:
    """Rows per CPU second through a whole-buffer method (mask_datarow_frames / mask_copy_frames)."""
    buffers = frame_buffers(messages)

    def one_pass() -> int:
        for data, starts in buffers:
            mask_frames(data, starts, len(data), scan)
        return len(messages)

    return measure(one_pass, seconds)


def bench_walk_only(rows: list[bytes], seconds: float) -> float:
    """Baseline: walking the DataRow columns in Python without looking at any value."""
    unpack = struct.Struct(">i").unpack_from

    def one_pass() -> int:
        for row in rows:
            position = 2
            for _ in range(5):
                length = unpack(row, position)[0]
                position += 4 + max(length, 0)
        return len(rows)

    return measure(one_pass, seconds)


def bench_stream(masker: Masker, lines: list[bytes], seconds: float) -> float:
    payload = b"".join(lines)
    packets = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]

    def one_pass() -> int:
        stream = StreamMasker(masker)
        for packet in packets:
            stream.feed(packet)
        stream.flush()
        return len(payload)

    return measure(one_pass, seconds) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--values", type=int, default=3000, help="values (and rows) per corpus")
    args = parser.parse_args()
    rng = random.Random(6)
    masker = Masker(ALL_ENTITIES)
    clean = [clean_value(rng).encode() for _ in range(args.values)]
    mixed = [(pii_value(rng) if i % 3 == 0 else clean_value(rng)).encode() for i in range(args.values)]
    email_only = Masker(["email"])

    print(f"{'measurement':58} {'throughput':>16} {'per item':>12}")
    print("-" * 88)

    def report(label: str, value: float, unit: str, per_item_ns: float | None = None) -> None:
        per_item = f"{per_item_ns:,.0f} ns" if per_item_ns is not None else ""
        print(f"{label:58} {value:>11,.1f} {unit:<4} {per_item:>12}")

    average = sum(map(len, clean)) / len(clean)
    mb, ns = bench_values(masker, clean, args.seconds)
    report(f"mask_bytes, clean values (avg {average:.0f} B), all entities", mb, "MB/s", ns)
    mb, ns = bench_values(email_only, clean, args.seconds)
    report("mask_bytes, clean values, email only", mb, "MB/s", ns)
    mb, ns = bench_values(masker, mixed, args.seconds)
    report("mask_bytes, mix (1/3 with PII), all entities", mb, "MB/s", ns)

    for binary in (False, True):
        wire = "binary" if binary else "text"
        columns = [
            ColumnInfo("id", "users", INT4, int(binary)),
            ColumnInfo("name", "users", TEXT, int(binary)),
            ColumnInfo("email", "users", TEXT, int(binary)),
            ColumnInfo("created_at", "users", TIMESTAMPTZ, int(binary)),
            ColumnInfo("profile", "users", JSONB, int(binary)),
        ]
        with_email = [datarow(row_values(rng, i, binary, True)) for i in range(args.values)]
        without = [datarow(row_values(rng, i, binary, False)) for i in range(args.values)]
        row_masker = RowMasker(masker, columns, None)
        rule_masker = RowMasker(masker, columns, ColumnRules(["*.email"]))
        report(f"DataRow walk only, no masking ({wire})", bench_walk_only(with_email, args.seconds), "rows/s")
        report(
            f"mask_datarow, email in every row ({wire})",
            bench_rows(row_masker, with_email, args.seconds),
            "rows/s",
        )
        report(
            f"mask_datarow, no PII in rows ({wire})", bench_rows(row_masker, without, args.seconds), "rows/s"
        )
        report(
            f"mask_datarow, column rule *.email ({wire})",
            bench_rows(rule_masker, with_email, args.seconds),
            "rows/s",
        )

    # The rows bench/pg_bench.py streams through the gateway: g, md5(g::text), 'user' || g || '@example.com'.
    bulk_columns = [
        ColumnInfo("g", None, INT4, 0),
        ColumnInfo("md5", None, TEXT, 0),
        ColumnInfo("?column?", None, TEXT, 0),
    ]
    bulk_rows = [
        datarow(
            [
                str(g).encode(),
                hashlib.md5(str(g).encode()).hexdigest().encode(),
                f"user{g}@example.com".encode(),
            ]
        )
        for g in range(1, args.values + 1)
    ]
    report(
        "mask_datarow, pg_bench bulk rows (g, md5, email)",
        bench_rows(RowMasker(masker, bulk_columns, None), bulk_rows, args.seconds),
        "rows/s",
    )
    # As pg_bench.py streams them now (a third with an email), a 64 KiB read at a time, as the relay masks
    # them: one frame scan over the buffer, then only the rows it flags, value by value.
    third = [
        [
            str(g).encode(),
            hashlib.md5(str(g).encode()).hexdigest().encode(),
            (f"user{g}@example.com" if g % 3 == 0 else f"order-{g}").encode(),
        ]
        for g in range(1, args.values + 1)
    ]
    scan = FrameScan.for_masker(masker)
    bulk_masker = RowMasker(masker, bulk_columns, None)
    messages = [build_datarow(datarow(values)) for values in third]
    for label, frame_scan in (("frame scan", scan), ("row by row", None)):
        report(
            f"mask_datarow_frames, pg_bench rows (1/3 email), {label}",
            bench_frames(bulk_masker.mask_datarow_frames, frame_scan, messages, args.seconds),
            "rows/s",
        )
    copy_masker = RowMasker(masker, (), None)
    lines = [build_copydata(b"\t".join(values) + b"\n") for values in third]
    for label, frame_scan in (("frame scan", scan), ("line by line", None)):
        report(
            f"mask_copy_frames, pg_bench lines (1/3 email), {label}",
            bench_frames(copy_masker.mask_copy_frames, frame_scan, lines, args.seconds),
            "rows/s",
        )

    log_lines = [
        f"2024-01-01T10:{i % 60:02d}:00Z INFO {clean_value(rng)}\n".encode()
        if i % 50
        else f"2024-01-01T10:{i % 60:02d}:00Z WARN login {pii_value(rng)}\n".encode()
        for i in range(args.values)
    ]
    report(
        "StreamMasker, log output in 4 KiB packets (2% PII)",
        bench_stream(masker, log_lines, args.seconds),
        "MB/s",
    )


if __name__ == "__main__":
    main()
