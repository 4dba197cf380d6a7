"""Attacks on per-execution review found in review: re-Parse after approval, SQL PREPARE + protocol Bind."""

from __future__ import annotations

import time

from proxy.postgres.messages import (
    Bind,
    CommandComplete,
    ErrorResponse,
    Execute,
    NoticeResponse,
    Parse,
    Query,
    Sync,
)
from tests.approvals.conftest import decide, person, wait_for_pending
from tests.conftest import RunningGateway
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient

ONCALL = person("alice", "oncall")
INSERT = "INSERT INTO victims VALUES (nextval('victim_seq') + 1000, 'smuggled')"


def smuggled(upstream: UpstreamPostgres) -> int:
    return upstream.execute("SELECT count(*) FROM victims WHERE name = 'smuggled'")[0][0]


def run_held_and_approve(gateway: RunningGateway, raw: RawClient, batch: bytes) -> list[object]:
    raw.send(batch)
    notice = raw.read_message()
    assert isinstance(notice, NoticeResponse) and "held for review" in notice.message
    (request,) = wait_for_pending(gateway)
    decide(gateway, request.id, ONCALL, approve=True)
    return raw.read_until_ready()


def test_reparse_of_an_approved_name_does_not_unlock_it(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    raw = RawClient(reviewing.host, reviewing.port)
    try:
        raw.login("appdb", reviewing.token())
        replies = run_held_and_approve(
            reviewing,
            raw,
            Parse("s1", INSERT).encode() + Bind("", "s1").encode() + Execute().encode() + Sync().encode(),
        )
        assert any(isinstance(m, CommandComplete) for m in replies)
        assert smuggled(seeded) == 1
        # Re-Parse the same name: the server refuses (42P05) and keeps the approved INSERT.
        raw.send(Parse("s1", "SELECT 1").encode() + Sync().encode())
        refused = raw.read_until_ready()
        assert any(isinstance(m, ErrorResponse) and m.sqlstate == "42P05" for m in refused)
        # Executing s1 again is a new execution of the INSERT: held again, not run.
        raw.send(Bind("", "s1").encode() + Execute().encode() + Sync().encode())
        notice = raw.read_message()
        assert isinstance(notice, NoticeResponse) and "held for review" in notice.message
        (request,) = wait_for_pending(reviewing)
        decide(reviewing, request.id, ONCALL, approve=False, reason="no repeats")
        replies = raw.read_until_ready()
        assert any(isinstance(m, ErrorResponse) and m.sqlstate == "42501" for m in replies)
    finally:
        raw.close()
    assert smuggled(seeded) == 1


def test_approval_ends_with_the_batch_even_when_a_query_ends_it(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    from proxy.postgres.messages import Flush

    raw = RawClient(reviewing.host, reviewing.port)
    try:
        raw.login("appdb", reviewing.token())
        raw.send(
            Parse("s2", INSERT).encode() + Bind("", "s2").encode() + Execute().encode() + Flush().encode()
        )
        notice = raw.read_message()
        assert isinstance(notice, NoticeResponse)
        (request,) = wait_for_pending(reviewing)
        decide(reviewing, request.id, ONCALL, approve=True)
        raw.send(Query("SELECT 'later'").encode())
        later = raw.read_until_ready()
        assert any(isinstance(m, CommandComplete) and m.tag == "INSERT 0 1" for m in later)
        raw.send(Bind("", "s2").encode() + Execute().encode() + Flush().encode())
        notice = raw.read_message()
        assert isinstance(notice, NoticeResponse) and "held for review" in notice.message
    finally:
        raw.close()
    time.sleep(0.3)
    assert smuggled(seeded) <= 1  # the approved execution at most; the second one was held, never run


def test_sql_prepare_then_protocol_bind_is_refused(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    raw = RawClient(reviewing.host, reviewing.port)
    try:
        raw.login("appdb", reviewing.token())
        run_held_and_approve(reviewing, raw, Query(f"PREPARE foo AS {INSERT}").encode())
        raw.send(Bind("", "foo").encode() + Execute().encode() + Sync().encode())
        replies = raw.read_until_ready()
        errors = [m for m in replies if isinstance(m, ErrorResponse)]
        assert errors and errors[0].sqlstate == "42501"
        assert 'prepared statement "foo" was not prepared through the gateway' in errors[0].message
    finally:
        raw.close()
    assert smuggled(seeded) == 0
