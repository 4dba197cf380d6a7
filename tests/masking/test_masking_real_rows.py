"""RowMasker on values a real PostgreSQL sent, text and binary format, checked with psycopg's loaders."""

from __future__ import annotations

import struct

import psycopg
import pytest
from psycopg.adapt import Transformer
from psycopg.pq import Format

from proxy.masking.columns import ColumnRules
from proxy.masking.masker import Masker
from proxy.masking.pgrows import ColumnInfo, RowMasker
from tests.pg_fixture import UpstreamPostgres

QUERY = """
SELECT 42::int8 AS id,
       'Alice'::text AS name,
       'alice@example.com'::varchar AS email,
       '2024-01-15 10:30:00+00'::timestamptz AS created_at,
       '{"contact": {"email": "bob@example.com"}, "password": "hunter2", "n": 1.10}'::jsonb AS profile,
       '{"ssn": "123-45-6789", "note": "call (415) 555-2671"}'::json AS raw,
       ARRAY['carol@example.com', NULL, 'plain']::text[] AS tags,
       'dave@example.com'::char(20) AS fixed,
       '550e8400-e29b-41d4-a716-446655440000'::uuid AS uid,
       NULL::text AS nothing,
       '123-45-6789'::text AS ssn
"""


def fetch(conn: psycopg.Connection, binary: bool) -> tuple[list[ColumnInfo], list[bytes | None]]:
    result = conn.pgconn.exec_params(QUERY.encode(), [], result_format=int(binary))
    columns = [
        ColumnInfo(result.fname(i).decode(), "public.people", result.ftype(i), result.fformat(i))
        for i in range(result.nfields)
    ]
    return columns, [result.get_value(0, i) for i in range(result.nfields)]


def datarow(values: list[bytes | None]) -> bytes:
    parts = [struct.pack(">h", len(values))]
    for value in values:
        parts.append(struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value)
    return b"".join(parts)


def split(body: bytes) -> list[bytes | None]:
    (count,) = struct.unpack_from(">h", body, 0)
    position, values = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", body, position)
        position += 4
        values.append(None if length == -1 else body[position : position + length])
        position += max(length, 0)
    assert position == len(body)
    return values


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_masked_real_rows_still_load_with_the_driver(upstream: UpstreamPostgres, binary: bool) -> None:
    masker = Masker(["email", "phone", "us_ssn", "secret"])
    with psycopg.connect(upstream.dsn()) as conn:
        columns, values = fetch(conn, binary)
        row_masker = RowMasker(masker, columns, ColumnRules(["people.ssn=us_ssn"]))
        result = row_masker.mask_datarow(datarow(values))
        assert result is not None
        masked, counts = result
        transformer = Transformer(conn)
        fmt = Format.BINARY if binary else Format.TEXT
        loaded = {
            column.name: None if raw is None else transformer.get_loader(column.type_oid, fmt).load(raw)
            for column, raw in zip(columns, split(masked), strict=True)
        }
        original = {
            column.name: None if raw is None else transformer.get_loader(column.type_oid, fmt).load(raw)
            for column, raw in zip(columns, values, strict=True)
        }
    assert loaded["id"] == 42 and loaded["name"] == "Alice" and loaded["email"] == "[EMAIL]"
    assert loaded["created_at"] == original["created_at"]
    assert loaded["profile"] == {"contact": {"email": "[EMAIL]"}, "password": "[SECRET]", "n": 1.1}
    assert loaded["raw"] == {"ssn": "[US_SSN]", "note": "call [PHONE]"}
    assert loaded["tags"] == ["[EMAIL]", None, "plain"]
    assert loaded["fixed"].rstrip() == "[EMAIL]"
    assert loaded["uid"] == original["uid"] and loaded["nothing"] is None
    assert loaded["ssn"] == "[US_SSN]"
    assert counts == {"email": 4, "phone": 1, "us_ssn": 2, "secret": 1}
