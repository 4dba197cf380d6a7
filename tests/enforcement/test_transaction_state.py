"""After a deny, the client and the server agree on the transaction state — in both protocols."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from proxy.postgres.messages import (
    Bind,
    BindComplete,
    CommandComplete,
    ErrorResponse,
    Execute,
    Parse,
    ParseComplete,
    Query,
    ReadyForQuery,
    Sync,
)
from tests.conftest import RunningGateway
from tests.enforcement.conftest import database_state
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient


def reader_dsn(gateway: RunningGateway) -> str:
    return gateway.dsn(token=gateway.token(subject="reader-bot", groups=("readers",)))


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_deny_inside_a_transaction_block_aborts_it_upstream_too(
    guarded: RunningGateway, seeded: UpstreamPostgres, protocol: str
) -> None:
    cursor_factory = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    with psycopg.connect(reader_dsn(guarded), cursor_factory=cursor_factory) as conn:
        assert conn.execute("SELECT count(*) FROM victims").fetchone() == (3,)
        assert conn.info.transaction_status == TransactionStatus.INTRANS  # psycopg opened BEGIN
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="hoop: statement denied"):
            conn.execute("DELETE FROM victims")
        assert conn.info.transaction_status == TransactionStatus.INERROR
        # The server agrees: it refuses further statements in the failed block.
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM victims").fetchone() == (3,)


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_deny_outside_a_transaction_leaves_the_session_idle(
    guarded: RunningGateway, seeded: UpstreamPostgres, protocol: str
) -> None:
    cursor_factory = psycopg.ClientCursor if protocol == "simple" else psycopg.Cursor
    with psycopg.connect(reader_dsn(guarded), autocommit=True, cursor_factory=cursor_factory) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE victims")
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM victims").fetchone() == (3,)


def test_extended_batch_with_allowed_write_then_denied_statement_rolls_back_the_write(
    guarded: RunningGateway, seeded: UpstreamPostgres
) -> None:
    before = database_state(seeded)
    raw = RawClient(guarded.host, guarded.port)
    try:
        raw.login("appdb", guarded.token(subject="writer-bot", groups=("writers",)))
        batch = (
            Parse("", "INSERT INTO victims VALUES (50, 'batch')").encode()
            + Bind().encode()
            + Execute().encode()
            + Parse("", "DROP TABLE victims").encode()
            + Bind().encode()
            + Execute().encode()
            + Sync().encode()
        )
        raw.send(batch)
        replies = raw.read_until_ready()
        kinds = [type(m).__name__ for m in replies]
        # The client sees exactly what PostgreSQL would send had DROP itself failed at Parse.
        assert kinds == ["ParseComplete", "BindComplete", "CommandComplete", "ErrorResponse", "ReadyForQuery"]
        error = replies[3]
        assert isinstance(error, ErrorResponse) and error.sqlstate == "42501"
        assert isinstance(replies[-1], ReadyForQuery) and replies[-1].status == "I"
        # The implicit transaction of the batch was rolled back: the INSERT did not survive.
        assert database_state(seeded) == before
        # The session is in step: a pipelined follow-up gets exactly its own answers.
        raw.send(Query("SELECT 1").encode() + Parse("", "SELECT 2").encode() + Bind().encode())
        raw.send(Execute().encode() + Sync().encode())
        first, second = raw.read_until_ready(), raw.read_until_ready()
        assert [type(m).__name__ for m in first] == [
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery",
        ]
        assert [type(m).__name__ for m in second] == [
            "ParseComplete",
            "BindComplete",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery",
        ]
    finally:
        raw.close()


def test_denied_parse_after_an_earlier_error_in_the_batch(
    guarded: RunningGateway, seeded: UpstreamPostgres
) -> None:
    raw = RawClient(guarded.host, guarded.port)
    try:
        raw.login("appdb", guarded.token(subject="reader-bot", groups=("readers",)))
        raw.send(
            Parse("", "SELECT 1 / (g - 1) FROM generate_series(1, 1) g").encode()
            + Bind().encode()
            + Execute().encode()
            + Parse("", "DELETE FROM victims").encode()
            + Bind().encode()
            + Execute().encode()
            + Sync().encode()
            + Query("SELECT 'after'").encode()
        )
        batch = raw.read_until_ready()
        assert [type(m).__name__ for m in batch] == [
            "ParseComplete",
            "BindComplete",
            "ErrorResponse",
            "ReadyForQuery",
        ]
        assert isinstance(batch[2], ErrorResponse) and batch[2].sqlstate == "22012"  # division by zero
        after = raw.read_until_ready()
        assert any(isinstance(m, CommandComplete) and m.tag == "SELECT 1" for m in after)
    finally:
        raw.close()
    assert seeded.execute("SELECT count(*) FROM victims") == [(3,)]


def test_parse_describe_flush_gets_the_error_before_sync(
    guarded: RunningGateway, seeded: UpstreamPostgres
) -> None:
    """asyncpg's prepare: Parse, Describe, Flush — and it waits for the answer before sending Sync."""
    from proxy.postgres.messages import Describe, Flush

    raw = RawClient(guarded.host, guarded.port)
    try:
        raw.login("appdb", guarded.token(subject="reader-bot", groups=("readers",)))
        raw.send(
            Parse("s1", "UPDATE victims SET name = 'x'").encode()
            + Describe("S", "s1").encode()
            + Flush().encode()
        )
        error = raw.read_message()
        assert isinstance(error, ErrorResponse) and error.sqlstate == "42501"
        raw.send(Sync().encode())
        ready = raw.read_message()
        assert isinstance(ready, ReadyForQuery)
        raw.send(Parse("", "SELECT 3").encode() + Bind().encode() + Execute().encode() + Sync().encode())
        assert [type(m).__name__ for m in raw.read_until_ready()] == [
            "ParseComplete", "BindComplete", "DataRow", "CommandComplete", "ReadyForQuery",
        ]  # fmt: skip
        assert ParseComplete and BindComplete  # imported for readers of the expected sequences
    finally:
        raw.close()
    assert seeded.execute("SELECT count(*) FROM victims") == [(3,)]


def test_startup_options_cannot_lift_the_read_only_session(
    guarded: RunningGateway, seeded: UpstreamPostgres
) -> None:
    token = guarded.token(subject="reader-bot", groups=("readers",))
    dsn = guarded.dsn(token=token, options="'-c default_transaction_read_only=off -c search_path=evil'")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert "evil" not in conn.execute("SHOW search_path").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET default_transaction_read_only = off")
