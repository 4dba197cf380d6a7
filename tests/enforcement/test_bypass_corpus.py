"""A deny-writes policy against a corpus of bypass attempts, through real psql and asyncpg.

Each attempt must be refused, and the database is compared before and after: not the error alone.
"""

from __future__ import annotations

import shutil
import subprocess

import asyncpg
import pytest

from tests.conftest import RunningGateway
from tests.enforcement.conftest import database_state
from tests.pg_fixture import UpstreamPostgres

BYPASS_CORPUS = [
    "INSERT INTO victims VALUES (99, 'x')",
    "insert into victims values (99, 'x')",
    "/* harmless */ INSERT INTO victims VALUES (99, 'x')",
    "-- comment\nINSERT INTO victims VALUES (99, 'x')",
    "UPDATE victims SET name = 'pwned'",
    "UPDATE victims SET name = 'pwned' WHERE id = 1",
    "DELETE FROM victims",
    'DELETE FROM "victims" WHERE id = 1',
    'UpDaTe "public"."victims" SET name = \'x\'',
    "WITH d AS (DELETE FROM victims RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE victims SET name = 'x' RETURNING 1) SELECT count(*) FROM u",
    "WITH i AS (INSERT INTO victims VALUES (5, 'y') RETURNING id) SELECT id FROM i",
    "EXPLAIN ANALYZE DELETE FROM victims",
    "EXPLAIN (ANALYZE, COSTS OFF) UPDATE victims SET name = 'x'",
    "SELECT * INTO stolen FROM victims",
    "CREATE TABLE stolen AS SELECT * FROM victims",
    "CREATE TABLE evil (id int)",
    "DROP TABLE victims",
    "TRUNCATE victims",
    "TRUNCATE TABLE victims CASCADE",
    "ALTER TABLE victims ADD COLUMN x int",
    "ALTER TABLE victims DROP COLUMN name",
    "PREPARE p AS DELETE FROM victims",
    "PREPARE q AS SELECT 1; EXECUTE q",
    "EXECUTE p",
    "DO $$BEGIN DELETE FROM victims; END$$",
    "DO 'BEGIN DELETE FROM victims; END'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT length(pg_read_file('/etc/hostname'))",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT (SELECT pg_read_file('/etc/passwd'))",
    "SELECT 1 ORDER BY pg_read_file('/etc/passwd')",
    "SELECT CASE WHEN true THEN pg_read_file('/etc/passwd') END",
    "SELECT nextval('victim_seq')",
    "SELECT setval('victim_seq', 100)",
    "SELECT bump()",
    "SELECT * FROM victims WHERE bump() IS NULL",
    "SELECT lo_import('/etc/passwd')",
    "COPY victims FROM PROGRAM 'echo 1'",
    "COPY victims TO PROGRAM 'cat > /tmp/hoop_exfil'",
    "COPY victims FROM '/etc/passwd'",
    "COPY (SELECT 1) TO '/tmp/hoop_exfil'",
    "SELECT 1; DELETE FROM victims",
    "SELECT 1; SELECT 2; UPDATE victims SET name = 'x'",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "ALTER SYSTEM SET log_statement = 'none'",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "BEGIN READ WRITE; INSERT INTO victims VALUES (98, 'z'); COMMIT",
    "START TRANSACTION READ WRITE",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "GRANT ALL ON victims TO PUBLIC",
    "REVOKE ALL ON victims FROM app",
    "CREATE ROLE evil",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE INDEX ON victims (id, name)",
    "COMMENT ON TABLE victims IS 'owned'",
    "MERGE INTO victims v USING (SELECT 1 AS id) s ON v.id = s.id WHEN MATCHED THEN DELETE",
    "INSERT INTO victims SELECT id + 10, name FROM victims",
    "UPDATE victims SET name = name || '!' RETURNING *",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT query_to_xml('DELETE FROM victims RETURNING 1', true, true, '')",
    "DELET FROM victims",
    'DELETE FROM U&"\\0076ictims"',
    "SELECT E'\\x3b'; DELETE FROM victims",
    "SELECT $$;DELETE FROM victims;$$; DELETE FROM victims",
    "SELECT 'a' ; ; ; DELETE FROM victims",
    "CALL some_procedure()",
    "SELECT 1 FROM victims FOR UPDATE; UPDATE victims SET name = 'x'",
]


def test_corpus_is_large_enough() -> None:
    assert len(BYPASS_CORPUS) >= 60


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")
def test_psql_bypass_corpus_writes_nothing(guarded: RunningGateway, seeded: UpstreamPostgres) -> None:
    before = database_state(seeded)
    token = guarded.token(subject="reader-bot", groups=("readers",))
    refused = []
    for statement in BYPASS_CORPUS:
        result = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", guarded.dsn(token=token), "-c", statement],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0 and "hoop: statement denied by policy" in result.stderr:
            refused.append(statement)
        assert database_state(seeded) == before, f"{statement!r} changed the database"
    missed = [s for s in BYPASS_CORPUS if s not in refused]
    assert not missed, f"not refused by the gateway: {missed}"
    # Reads still work for the same identity.
    ok = subprocess.run(
        ["psql", "-X", "-A", "-t", guarded.dsn(token=token), "-c", "SELECT name FROM victims ORDER BY id"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.stdout.split() == ["alice", "bob", "carol"]


async def test_asyncpg_bypass_corpus_writes_nothing(
    guarded: RunningGateway, seeded: UpstreamPostgres
) -> None:
    before = database_state(seeded)
    token = guarded.token(subject="reader-bot", groups=("readers",))
    conn = await asyncpg.connect(guarded.url(token=token), ssl=False)
    try:
        for statement in BYPASS_CORPUS:
            # asyncpg's execute() without arguments uses the simple protocol; fetch() uses Parse/Bind/Execute.
            for run in (conn.execute, conn.fetch):
                if run is conn.fetch and ";" in statement.replace("';'", ""):
                    continue  # the extended protocol takes one statement per Parse
                with pytest.raises(asyncpg.PostgresError) as caught:
                    await run(statement)
                assert caught.value.sqlstate == "42501", f"{statement!r}: {caught.value}"
                assert "hoop: statement denied by policy" in str(caught.value)
        assert await conn.fetchval("SELECT count(*) FROM victims") == 3
    finally:
        await conn.close()
    assert database_state(seeded) == before
