"""Planted personal data through the real gateway: rows, JSON, COPY, errors, notices, big results.

Not one planted value may reach the client or the recording file; look-alikes must come through as-is.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgpack
import pytest

from proxy.masking.entities import BUILTIN_ENTITIES
from recordings.reader import RecordingReader
from tests.conftest import RunningGateway, start_gateway
from tests.masking.masking_corpus import LOOK_ALIKES, PLANTED
from tests.pg_fixture import UpstreamPostgres

ENTITIES = ", ".join(f'"{e}"' for e in sorted(BUILTIN_ENTITIES))
MASKING_POLICY = f"""
[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "write", "transaction", "session", "utility", "copy_out"]
mask = [{ENTITIES}]
"""
HIDDEN = sorted({p.hidden for p in PLANTED}, key=len, reverse=True)
FILLER_ROWS = 20000  # a result far larger than one socket read, so rows straddle buffer boundaries


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture
def masked_gateway(tmp_path: Path, upstream: UpstreamPostgres) -> Iterator[RunningGateway]:
    values = [p.text for p in PLANTED]
    rows = []
    for index, text in enumerate(values):
        multi = f"first line\\n{text}\\nlast line"
        rows.append(
            f"({index}, {sql_literal(text)}, jsonb_build_object('v', {sql_literal(text)}, 'n', {index}), "
            f"json_build_object('v', {sql_literal(text)}), E{sql_literal(multi)})"
        )
    look = [f"({100000 + i}, {sql_literal(v)}, '{{}}', '{{}}', '')" for i, v in enumerate(LOOK_ALIKES)]
    upstream.execute(
        "DROP TABLE IF EXISTS pii, pii_unique CASCADE; DROP FUNCTION IF EXISTS shout(text);"
        "CREATE TABLE pii (id int, note text, doc jsonb, doc_json json, lines text);"
        f"INSERT INTO pii VALUES {', '.join(rows + look)};"
        f"INSERT INTO pii SELECT 200000 + g, CASE WHEN g % 997 = 0 THEN {sql_literal(values[0])} "
        f"ELSE repeat('x', 40) END, '{{}}', '{{}}', '' FROM generate_series(1, {FILLER_ROWS}) g;"
        "CREATE TABLE pii_unique (email text PRIMARY KEY);"
        "CREATE FUNCTION shout(t text) RETURNS int LANGUAGE plpgsql VOLATILE AS "
        "$$BEGIN RAISE NOTICE 'contact %', t; RETURN 1; END$$;"
        "GRANT ALL ON pii, pii_unique TO app; GRANT EXECUTE ON FUNCTION shout(text) TO app;"
    )
    running = start_gateway(tmp_path, upstream, policies=MASKING_POLICY)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]


def assert_nothing_planted(text: str, where: str) -> None:
    leaked = [hidden for hidden in HIDDEN if hidden in text]
    assert not leaked, f"{len(leaked)} planted values reached {where}, e.g. {leaked[:3]}"


def recorded_bytes(gateway: RunningGateway) -> bytes:
    deadline = time.monotonic() + 15
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = sorted(gateway.recordings_dir.rglob("*.hrec"))
        if files and all(RecordingReader(f).sealed for f in files):
            break
        time.sleep(0.1)
    assert files, "sessions were recorded"
    blobs = []
    for path in files:
        for event in RecordingReader(path).iter_events():
            blobs.append(msgpack.packb(event, use_bin_type=True))
    return b"\n".join(blobs)


def test_corpus_is_large_enough() -> None:
    assert len(PLANTED) >= 100 and len(LOOK_ALIKES) >= 20


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")
def test_psql_rows_json_copy_errors_and_notices_are_masked(masked_gateway: RunningGateway) -> None:
    def psql(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["psql", "-X", "-A", "-t", masked_gateway.dsn(), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    rows = psql("-c", "SELECT id, note, doc, doc_json, lines FROM pii ORDER BY id").stdout
    assert len(rows.splitlines()) >= len(PLANTED) + FILLER_ROWS
    assert_nothing_planted(rows, "psql rows")
    for look_alike in LOOK_ALIKES:
        assert look_alike in rows, f"look-alike {look_alike!r} was masked"
    assert "[EMAIL]" in rows

    copied = psql("-c", "\\copy (SELECT note, doc, lines FROM pii ORDER BY id) TO STDOUT").stdout
    assert_nothing_planted(copied, "COPY output")
    assert "[EMAIL]" in copied

    psql("-c", "INSERT INTO pii_unique VALUES ('dup.person@example.com')")
    duplicate = psql("-c", "INSERT INTO pii_unique VALUES ('dup.person@example.com')", check=False)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    assert "dup.person@example.com" not in duplicate.stderr

    noticed = psql("-c", "SELECT shout('call +1 415 555 2671 or write carol.notice@example.com')")
    assert "contact" in noticed.stderr
    assert "carol.notice@example.com" not in noticed.stderr and "555 2671" not in noticed.stderr

    recording = recorded_bytes(masked_gateway)
    assert_nothing_planted(recording.decode("utf-8", "replace"), "the recordings")
    for secret in (b"dup.person@example.com", b"carol.notice@example.com"):
        assert secret not in recording
    assert b"mask.summary" in recording


async def test_asyncpg_binary_rows_and_prepared_statements_are_masked(masked_gateway: RunningGateway) -> None:
    conn = await asyncpg.connect(masked_gateway.url(), ssl=False)
    try:
        statement = await conn.prepare(
            "SELECT id, note, doc, doc_json, lines FROM pii WHERE id < $1 ORDER BY id"
        )
        for _ in range(3):  # later executions carry no RowDescription: the shape must still be known
            records = await statement.fetch(100000)
            assert_nothing_planted(repr([tuple(r) for r in records]), "asyncpg rows")
        everything = await conn.fetch("SELECT note FROM pii ORDER BY id")
        text = repr([r["note"] for r in everything])
        assert_nothing_planted(text, "asyncpg rows")
        for look_alike in LOOK_ALIKES:
            assert look_alike in text
    finally:
        await conn.close()


async def test_sessions_of_one_policy_share_one_masker(masked_gateway: RunningGateway) -> None:
    for _ in range(3):
        conn = await asyncpg.connect(masked_gateway.url(), ssl=False)
        await conn.fetchval("SELECT 'x'")
        await conn.close()
    assert len(masked_gateway.gateway._maskers) == 1, "a Masker is built per policy, not per session"
