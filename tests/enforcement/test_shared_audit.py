"""The shared audit table: refusals and session events reach the store every gateway of a fleet reads;
allowed statements stay in the per-process files only."""

from __future__ import annotations

import time

import asyncpg
import pytest

from tests.conftest import RunningGateway


def shared_records(running: RunningGateway, want: int, action: str, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        records = running.thread.call(running.gateway.store.list_audit())  # type: ignore[attr-defined]
        matching = [record for record in records if record.action == action]
        if len(matching) >= want or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


async def test_a_denied_statement_is_in_the_shared_audit_and_an_allowed_one_is_not(
    guarded: RunningGateway,
) -> None:
    token = guarded.token(subject="reader-bot", groups=("readers",))
    conn = await asyncpg.connect(guarded.url(token), ssl=False)
    try:
        await conn.fetch("SELECT 'allowed-marker'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM victims WHERE id = 1")
    finally:
        await conn.close()
    records = shared_records(guarded, 1, "session.end")
    statements = [record for record in records if record.action == "statement"]
    assert [record.detail["decision"] for record in statements] == ["deny"]
    (denied,) = statements
    assert denied.actor == "reader-bot"
    assert denied.connection == "appdb"
    assert denied.session_id
    assert "DELETE FROM victims" in denied.detail["statement"]
    assert "allowed-marker" not in str([record.detail for record in records])
    assert {"session.start", "session.end"} <= {record.action for record in records}
