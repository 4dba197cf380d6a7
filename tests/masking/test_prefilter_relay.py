"""Masked results through PgRelay: the same bytes however the upstream's stream is cut into reads."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.masking.masker import Masker
from proxy.postgres.messages import (
    CommandComplete,
    CopyData,
    CopyDone,
    DataRow,
    FieldDescription,
    Query,
    ReadyForQuery,
    RowDescription,
)
from proxy.postgres.protocol import DEFAULT_MAX_MESSAGE_SIZE
from proxy.postgres.relay import PgRelay
from proxy.postgres.session_masking import SessionMasking
from tests.codec.relay_harness import FakeEndpoint
from tests.masking.masking_corpus import PLANTED

ALL = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
MASKER = Masker(ALL)
# Values whose whole text is what must go: they may sit anywhere in a value, a row or a read.
WHOLE = [p.text for p in PLANTED if p.hidden == p.text]
CLEAN = ["order-17", "70efdf2ec9b086079795c442636b55fb", "2024-01-15 10:30", "", "x" * 60]


def _relay() -> tuple[PgRelay, FakeEndpoint, list[list[Any]]]:
    client, server = FakeEndpoint(), FakeEndpoint()
    records: list[list[Any]] = []
    relay = PgRelay(
        client,  # type: ignore[arg-type]
        server,  # type: ignore[arg-type]
        max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
        record=records.append,
        on_close=lambda reason: None,
        masking=SessionMasking(MASKER, None),
    )
    relay.start()
    relay.from_client(Query("SELECT ...").encode())
    return relay, client, records


def _stream(rows: list[tuple[str, str, str]], copy: bool) -> bytes:
    if copy:
        head = b"H" + (13).to_bytes(4, "big") + b"\x00" + (3).to_bytes(2, "big") + b"\x00\x00" * 3
        lines = [CopyData(f"{a}\t{b}\t{c}\n".encode()).encode() for a, b, c in rows]
        return head + b"".join(lines) + CopyDone().encode() + CommandComplete(f"COPY {len(rows)}").encode()
    fields = tuple(
        FieldDescription(name, 0, 0, oid, -1, -1, 0) for name, oid in (("id", 20), ("a", 25), ("b", 25))
    )
    body = [DataRow([a.encode(), b.encode(), c.encode()]).encode() for a, b, c in rows]
    return RowDescription(fields).encode() + b"".join(body) + CommandComplete(f"SELECT {len(rows)}").encode()


ROWS = st.lists(
    st.tuples(
        st.sampled_from(["1", "4111111111111111", "123456789", "42"]),
        st.sampled_from(WHOLE + CLEAN),
        st.sampled_from(WHOLE + CLEAN),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(rows=ROWS, copy=st.booleans(), cuts=st.lists(st.integers(1, 400), max_size=6))
def test_masked_output_does_not_depend_on_how_the_stream_is_cut(
    rows: list[tuple[str, str, str]], copy: bool, cuts: list[int]
) -> None:
    stream = _stream(rows, copy) + ReadyForQuery("I").encode()
    whole_relay, whole_client, _ = _relay()
    whole_relay.from_server(stream)
    expected = bytes(whole_client.transport.sent)

    relay, client, records = _relay()
    position = 0
    for cut in sorted(set(cuts)):
        if cut < len(stream):
            relay.from_server(stream[position:cut])
            position = cut
    relay.from_server(stream[position:])
    sent = bytes(client.transport.sent)
    assert sent == expected
    recorded = b"".join(event[3] for event in records if event[1] in ("pg.rows", "pg.copy"))
    for text in WHOLE:
        assert text.encode() not in sent
        assert text.encode() not in recorded
    for row in rows:  # what was clean comes through
        for value in row:
            if value in CLEAN and value:
                assert value.encode() in sent


def test_mask_summary_of_a_result_is_recorded_before_its_completion() -> None:
    relay, _client, records = _relay()
    rows = [("1", "alice@example.com", "order-17"), ("2", "order-18", "+1 415 555 2671")]
    relay.from_server(_stream(rows, copy=False) + ReadyForQuery("I").encode())
    kinds = [event[1] for event in records]
    assert kinds.index("pg.rows") < kinds.index("mask.summary") < kinds.index("pg.complete")
    summary = records[kinds.index("mask.summary")][2]
    assert summary == {"email": 1, "phone": 1}


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(st.binary(max_size=40), min_size=1, max_size=6), copy=st.booleans())
def test_garbage_rows_end_the_session_with_one_error_or_pass_through(bodies: list[bytes], copy: bool) -> None:
    # Well-framed messages with random bodies, some flagged by the frame scan (an '@' in them): a row that
    # does not parse ends the session with one FATAL error; nothing raises out of the relay.
    relay, client, _records = _relay()
    head = _stream([("1", "a", "b")], copy)[: -len(CommandComplete("SELECT 1").encode())]
    type_byte = b"d" if copy else b"D"
    frames = b"".join(
        type_byte + (len(b"@x" + body) + 4).to_bytes(4, "big") + b"@x" + body for body in bodies
    )
    relay.from_server(head + frames + ReadyForQuery("I").encode())
    sent = bytes(client.transport.sent)
    assert relay._closed == (b"upstream protocol error" in sent)
