"""Review findings: encodings that split one string two ways, text in notifications and parameter reports,
binary composites, and statements too big to classify."""

from __future__ import annotations

import time

import asyncpg
import pytest

from proxy.postgres.framing import StartupMessage
from proxy.postgres.messages import (
    ErrorResponse,
    NotificationResponse,
    ParameterStatus,
    Query,
)
from proxy.postgres.protocol import PROTOCOL_3_0
from tests.conftest import RunningGateway
from tests.masking_e2e.test_masking_through_gateway import masked_gateway  # noqa: F401 - fixture
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient


def test_non_utf8_client_encoding_is_refused(masked_gateway: RunningGateway) -> None:  # noqa: F811
    raw = RawClient(masked_gateway.host, masked_gateway.port)
    try:
        raw.send(
            StartupMessage(
                PROTOCOL_3_0, {"user": "x", "database": "appdb", "client_encoding": "SJIS"}
            ).encode()
        )
        error = raw.read_message()  # refused before any password is asked for
        assert isinstance(error, ErrorResponse) and error.fields["S"] == "FATAL"
        assert "only relays UTF8 sessions" in error.message
    finally:
        raw.close()


def test_invalid_utf8_statement_is_never_run(
    masked_gateway: RunningGateway,  # noqa: F811
    upstream: UpstreamPostgres,
) -> None:
    raw = RawClient(masked_gateway.host, masked_gateway.port)
    try:
        raw.login("appdb", masked_gateway.token())
        body = b"SELECT E'\x81\\'; DELETE FROM pii; -- '\x00"
        raw.send(b"Q" + (len(body) + 4).to_bytes(4, "big") + body)
        replies = raw.read_until_ready()
        errors = [m for m in replies if isinstance(m, ErrorResponse)]
        assert errors and "not valid UTF-8" in errors[0].message
    finally:
        raw.close()
    assert upstream.execute("SELECT count(*) > 0 FROM pii") == [(True,)]


def test_notifications_and_parameter_reports_are_masked(masked_gateway: RunningGateway) -> None:  # noqa: F811
    raw = RawClient(masked_gateway.host, masked_gateway.port)
    try:
        raw.login("appdb", masked_gateway.token())
        raw.send(Query("LISTEN leak").encode())
        raw.read_until_ready()
        raw.send(Query("SELECT pg_notify('leak', 'mail zoe.leak@example.com')").encode())
        replies = raw.read_until_ready()
        raw.send(Query("SELECT set_config('application_name', 'zoe.leak@example.com', false)").encode())
        replies += raw.read_until_ready()
    finally:
        raw.close()
    notes = [m for m in replies if isinstance(m, NotificationResponse)]
    statuses = [m for m in replies if isinstance(m, ParameterStatus) and m.name == "application_name"]
    assert notes and notes[0].payload == "mail [EMAIL]"
    assert statuses and statuses[0].value == "[EMAIL]"
    assert "zoe.leak@example.com" not in repr(replies)


async def test_binary_composite_results_end_the_session(masked_gateway: RunningGateway) -> None:  # noqa: F811
    conn = await asyncpg.connect(masked_gateway.url(), ssl=False)
    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.exceptions.ConnectionDoesNotExistError)) as caught:
            await conn.fetch("SELECT ROW(note, id) AS rec FROM pii ORDER BY id LIMIT 3")
        assert "zoe" not in str(caught.value)
    finally:
        await conn.close()


def test_oversized_statement_is_denied_without_stalling(masked_gateway: RunningGateway) -> None:  # noqa: F811
    raw = RawClient(masked_gateway.host, masked_gateway.port)
    try:
        raw.login("appdb", masked_gateway.token())
        huge = "SELECT " + ",".join(["1"] * 200_000)
        started = time.monotonic()
        raw.send(Query(huge).encode())
        replies = raw.read_until_ready()
        assert time.monotonic() - started < 5
        errors = [m for m in replies if isinstance(m, ErrorResponse)]
        assert errors and "not classified" in errors[0].message
    finally:
        raw.close()
