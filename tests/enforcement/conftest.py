"""A gateway whose `readers` group may only read, and a database seeded with things worth attacking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ALL_SQL_KINDS, RunningGateway, start_gateway
from tests.pg_fixture import UpstreamPostgres

READ_ONLY_POLICY = """
[[policies]]
groups = ["readers"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility", "copy_out"]
deny = ["write", "ddl", "drop", "truncate", "dcl", "copy_in", "copy_program", "dangerous_function", "opaque"]

[[policies]]
groups = ["writers"]
connections = ["appdb"]
allow = ["read", "transaction", "session", "utility", "write"]
deny = ["drop", "truncate", "ddl", "dcl", "copy_program", "dangerous_function", "opaque"]

[[policies]]
groups = ["ci-agents"]
connections = ["*"]
allow = [ALL]
""".replace("ALL", ", ".join(f'"{k}"' for k in ALL_SQL_KINDS))

SEED = """
DROP TABLE IF EXISTS victims CASCADE;
DROP TABLE IF EXISTS stolen, evil CASCADE;
DROP SEQUENCE IF EXISTS victim_seq;
DROP FUNCTION IF EXISTS bump();
DROP ROLE IF EXISTS evil;
CREATE TABLE victims (id int PRIMARY KEY, name text);
INSERT INTO victims VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
CREATE SEQUENCE victim_seq;
CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE
    AS 'INSERT INTO victims VALUES (100, ''bumped'') RETURNING 1';
GRANT ALL ON victims, victim_seq TO app;
GRANT EXECUTE ON FUNCTION bump() TO app;
"""

STATE_SQL = (
    "SELECT (SELECT count(*) || ':' || string_agg(id || '=' || name, ',' ORDER BY id) FROM victims), "
    "(SELECT last_value || '/' || is_called FROM victim_seq), "
    "(SELECT count(*) FROM pg_tables WHERE schemaname = 'public'), "
    "(SELECT count(*) FROM pg_roles WHERE rolname = 'evil'), "
    "(SELECT count(*) FROM information_schema.columns WHERE table_name = 'victims'), "
    "(SELECT count(*) FROM pg_indexes WHERE tablename = 'victims'), "
    "(SELECT obj_description('victims'::regclass))"
)


@pytest.fixture
def seeded(upstream: UpstreamPostgres) -> UpstreamPostgres:
    upstream.execute(SEED)
    return upstream


def database_state(upstream: UpstreamPostgres) -> tuple:
    return upstream.execute(STATE_SQL)[0]


@pytest.fixture
def guarded(tmp_path: Path, seeded: UpstreamPostgres) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path, seeded, policies=READ_ONLY_POLICY)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
