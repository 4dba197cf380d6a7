"""Render-time masking by role: an auditor who is not an admin gets a session's events masked further for
`auditor_mask`, on the gateway, before they leave it; an admin sees what was stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from proxy.control.client import ControlClient
from proxy.control.viewer_masking import EventMasker, viewer_entities
from recordings.pgwire import decode_datarows, encode_datarow
from tests.conftest import RunningGateway, start_gateway
from tests.control.conftest import REVIEW_POLICY, control_address
from tests.pg_fixture import UpstreamPostgres

PHONE = "+1 415 555 2671"
# Storage masks emails only: the phone number is in the recording, and only the auditor's view hides it.
POLICY = REVIEW_POLICY + 'mask = ["email"]\n'


@pytest.fixture
def gateway(tmp_path: Path, seeded: UpstreamPostgres) -> Iterator[RunningGateway]:
    extra = (
        f'control = "unix:{tmp_path}/control.sock"\n'
        'admin_groups = ["admins"]\nauditor_groups = ["auditors"]\nauditor_mask = ["phone"]\n'
    )
    running = start_gateway(tmp_path, seeded, policies=POLICY, extra=extra)
    try:
        yield running
    finally:
        running.thread.stop()  # type: ignore[attr-defined]


async def events_seen_by(gateway: RunningGateway, groups: tuple[str, ...], session_id: str) -> list[list]:
    client = await ControlClient.connect(
        control_address(gateway), gateway.token(subject="viewer", groups=groups)
    )
    try:
        stream = await client.session_events(session_id, follow=False)
        seen: list[list] = []
        async with asyncio.timeout(10):
            async for event in stream:
                seen.append(event)
        return seen
    finally:
        await client.close()


async def test_an_auditor_sees_less_than_an_admin_and_never_more_than_was_stored(gateway: RunningGateway):
    agent = await psycopg.AsyncConnection.connect(gateway.dsn(), autocommit=True)
    try:
        await agent.execute(f"SELECT '{PHONE}' AS phone, 'dana@example.com' AS email")
        client = await ControlClient.connect(
            control_address(gateway), gateway.token(subject="a", groups=("auditors",))
        )
        (session,) = await client.list_sessions()
        assert (await client.whoami())["render_mask"] == ["phone"]
        await client.close()
    finally:
        await agent.close()
    await asyncio.sleep(1.5)  # the writer lands the chunk

    def texts(events: list[list]) -> str:
        parts = []
        for event in events:
            if event[1] == "pg.rows":
                parts += [value.decode() for row in decode_datarows(event[3]) for value in row if value]
            elif event[1] == "pg.query":
                parts.append(event[2])
        return " | ".join(parts)

    admin_view = texts(await events_seen_by(gateway, ("admins",), session["id"]))
    auditor_view = texts(await events_seen_by(gateway, ("auditors",), session["id"]))
    assert PHONE in admin_view and "[EMAIL]" in admin_view and "dana@" not in admin_view
    assert PHONE not in auditor_view and "[PHONE]" in auditor_view
    assert "[EMAIL]" in auditor_view and "dana@" not in auditor_view


def test_admins_are_never_masked_further() -> None:
    assert viewer_entities({"admin", "auditor"}, ["phone"]) == frozenset()
    assert viewer_entities({"auditor"}, ["phone"]) == frozenset({"phone"})
    assert EventMasker.for_entities(frozenset()) is None


def test_every_text_an_event_carries_is_masked() -> None:
    masker = EventMasker.for_entities(frozenset({"phone", "email"}))
    assert masker is not None
    rows = encode_datarow([PHONE.encode(), None, b"42"])
    assert masker.event([1, "pg.rows", 1, rows]) == [
        1,
        "pg.rows",
        1,
        encode_datarow([b"[PHONE]", None, b"42"]),
    ]
    assert masker.event([2, "ssh.output", "stdout", f"call {PHONE}\n".encode()])[3] == b"call [PHONE]\n"
    assert masker.event([3, "pg.error", {"M": "dup", "D": f"Key (phone)=({PHONE}) exists"}])[2]["D"] == (
        "Key (phone)=([PHONE]) exists"
    )
    decision = masker.event([4, "policy.decision", {"statement": f"SELECT '{PHONE}'", "decision": "allow"}])
    assert decision[2] == {"statement": "SELECT '[PHONE]'", "decision": "allow"}
    assert masker.event([5, "ssh.exit", 0]) == [5, "ssh.exit", 0]
    assert masker.event([6, "pg.rows", 1, b"garbage"])[3] == b"", "rows it cannot read are not shown"
