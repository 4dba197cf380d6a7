"""One session's masking: which rows, notices, COPY lines and statement texts to rewrite, and the counts."""

from __future__ import annotations

import dataclasses
import os
import secrets
import struct
import weakref
from collections import OrderedDict, deque
from pathlib import Path

from proxy.masking.columns import ColumnRules
from proxy.masking.framescan import FrameScan
from proxy.masking.masker import Masker
from proxy.masking.pgrows import ColumnInfo, RowMasker
from proxy.masking.pgtypes import ARRAY_ELEMENT_OIDS, BYTEA, JSON, JSONB, NO_TEXT_OIDS, TEXT_BINARY_OIDS
from proxy.masking.strategies import parse_strategy
from proxy.masking.table_names import TableNames
from proxy.policy.engine import SessionPolicy
from proxy.postgres.frame_fields import cstring_at
from proxy.postgres.protocol import ProtocolError

_FIELD_TAIL = struct.Struct("!IhIhih")
_unpack_i32 = struct.Struct("!i").unpack_from
_pack_i32 = struct.Struct("!i").pack
_MAX_CACHED_RESULT_SHAPES = 256
# Maskers are shared by the sessions of one policy; so is their frame scan (compiled once).
_frame_scans: weakref.WeakKeyDictionary[Masker, FrameScan | None] = weakref.WeakKeyDictionary()


# Binary-format result columns the masker can read (text-like types, json/jsonb, arrays of text) or that
# cannot carry text at all. Anything else in binary format (records, composites, enums, extension types)
# would pass unread, so it ends the session instead.
_READABLE_BINARY = frozenset({*TEXT_BINARY_OIDS, JSON, JSONB, BYTEA, *ARRAY_ELEMENT_OIDS, *NO_TEXT_OIDS})


class UnmaskableOutput(ProtocolError):
    """The upstream is sending what masking cannot read: the session ends, nothing leaks."""


def load_or_create_mask_secret(state_dir: Path) -> bytes:
    """The gateway's HMAC key for the `hash` strategy (equal values stay joinable, never revealed)."""
    path = state_dir / "keys" / "mask.key"
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


def build_masker(policy: SessionPolicy, secret: bytes) -> Masker:
    strategies = {entity: parse_strategy(text) for entity, text in policy.mask_strategies.items()}
    return Masker(
        policy.mask_entities, strategies=strategies, secret=secret, custom_rules=dict(policy.mask_rules)
    )


def columns_of(row_description_body: bytes, tables: TableNames | None = None) -> list[ColumnInfo]:
    """Masking's view of a RowDescription body, each field's table and own column name resolved through
    `tables` (None: nothing resolved). A field whose table is not resolved has none: column rules then match
    it by name (its own and, for a view's column, the view's), which masks more, never less."""
    count = struct.unpack_from("!H", row_description_body, 0)[0]
    offset = 2
    columns = []
    for _ in range(count):
        stop = row_description_body.index(b"\0", offset)
        name = row_description_body[offset:stop].decode("utf-8", "replace")
        table_oid, number, type_oid, _size, _modifier, fmt = _FIELD_TAIL.unpack_from(
            row_description_body, stop + 1
        )
        offset = stop + 1 + _FIELD_TAIL.size
        if tables is None or not table_oid:
            columns.append(ColumnInfo(name, None, type_oid, fmt))
            continue
        source = tables.column_name(table_oid, number) if number > 0 else None
        row_columns = tables.relation_columns(table_oid) if number == 0 else ()
        relation = tables.resolve(table_oid)
        columns.append(
            ColumnInfo(
                name, relation.names[0][1] if relation else None, type_oid, fmt,
                tables=relation.names if relation else (),
                source_name=source if source != name else None,
                row_columns=row_columns,
            )
        )  # fmt: skip
    return columns


class SessionMasking:
    """Built once per session from its policy; the relay asks it for a RowMasker per result shape."""

    __slots__ = (
        "_by_shape",
        "_last_generation",
        "_last_rows",
        "_last_shape",
        "column_rules",
        "copy",
        "counts",
        "frame_scan",
        "masker",
        "tables",
    )

    def __init__(
        self, masker: Masker, column_rules: ColumnRules | None, tables: TableNames | None = None
    ) -> None:
        self.masker = masker
        self.tables = tables if column_rules else None  # only column rules need to know a column's table
        if masker not in _frame_scans:
            _frame_scans[masker] = FrameScan.for_masker(masker)
        self.frame_scan = _frame_scans[masker]
        self.column_rules = column_rules
        self.copy = RowMasker(masker, (), column_rules)  # COPY text lines: every field scanned
        # Keyed by (catalog generation, RowDescription body, formats); rows_unknown's by column count.
        self._by_shape: OrderedDict[object, RowMasker | None] = OrderedDict()
        self.counts: dict[str, int] = {}  # masked entities since the last statement summary
        self._last_shape: bytes | None = None
        self._last_generation = -1
        self._last_rows: RowMasker | None = None

    @classmethod
    def for_policy(cls, policy: SessionPolicy, secret: bytes) -> SessionMasking | None:
        if not policy.mask_entities and not policy.mask_columns:
            return None
        rules = ColumnRules(policy.mask_columns) if policy.mask_columns else None
        return cls(build_masker(policy, secret), rules)

    def rows_unknown(self, column_count: int) -> RowMasker:
        """For rows whose RowDescription the relay could not place: every column scanned as text. With column
        rules that cannot do: which columns the rules name is not known (the session ends, nothing leaks)."""
        if self.column_rules:
            raise UnmaskableOutput(
                "rows arrived for a statement the client never described, so this session's mask_columns "
                "rules cannot be applied; describe the statement or portal before executing it"
            )
        key = ("?", column_count)
        masker = self._by_shape.get(key)
        if masker is None:
            columns = [ColumnInfo(f"column{i}", None, 25, 0) for i in range(column_count)]
            masker = RowMasker(self.masker, columns, self.column_rules)
            self._by_shape[key] = masker
        return masker

    def rows(self, row_description_body: bytes, formats: tuple[int, ...] | None = None) -> RowMasker | None:
        """The RowMasker for this result shape, or None when no column of it can need masking. `formats` are
        a Bind's result format codes, when the shape comes from a statement's Describe (which always says
        text: the format is only chosen at Bind)."""
        tables = self.tables
        if tables is not None and not tables.fresh():
            tables = None  # not verified lately: rules match by column name alone
        # What a shape resolves to depends on the catalog it was resolved with (-1: none).
        generation = tables.generation if tables is not None else -1
        if (
            row_description_body == self._last_shape and generation == self._last_generation and not formats
        ):  # a session repeats one shape
            return self._last_rows
        found = self._rows(row_description_body, formats, tables, generation)
        if not formats:
            self._last_shape, self._last_generation, self._last_rows = row_description_body, generation, found
        return found

    def _rows(
        self,
        row_description_body: bytes,
        formats: tuple[int, ...] | None,
        tables: TableNames | None,
        generation: int,
    ) -> RowMasker | None:
        cache = self._by_shape
        key = (generation, row_description_body, formats or ())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        columns = columns_of(row_description_body, tables)
        if formats:
            chosen = formats * len(columns) if len(formats) == 1 else formats
            columns = [
                dataclasses.replace(column, format=chosen[i] if i < len(chosen) else 0)
                for i, column in enumerate(columns)
            ]
        for column in columns:
            if column.format == 1 and column.type_oid not in _READABLE_BINARY:
                raise UnmaskableOutput(
                    f'column "{column.name}" (type OID {column.type_oid}) cannot be masked in binary format; '
                    "ask for text format results"
                )
        masker = RowMasker(self.masker, columns, self.column_rules)
        found = masker if masker.active else None
        cache[key] = found
        if len(cache) > _MAX_CACHED_RESULT_SHAPES:
            cache.popitem(last=False)
        return found

    def text(self, text: str) -> str:
        """A statement's text as it may be stored or shown (recordings, approval requests)."""
        if not self.masker.enabled:
            return text
        masked, _counts = self.masker.mask_text(text)
        return masked

    def text_of(self, text: str, data: bytes, start: int, end: int) -> str:
        """`text` as it may be stored or shown, `text` being the UTF-8 decoding of data[start:end] (or of a
        prefix of it): one prefilter over the bytes clears most statements before any text is scanned."""
        masker = self.masker
        if not masker.enabled or not masker.might_match_bytes(data[start:end]):
            return text
        masked, _counts = masker.mask_text(text)
        return masked

    def add(self, counts: dict[str, int]) -> None:
        total = self.counts
        for entity, count in counts.items():
            total[entity] = total.get(entity, 0) + count

    def take_counts(self) -> dict[str, int] | None:
        if not self.counts:
            return None
        counts, self.counts = self.counts, {}
        return counts


class ResultShapes:
    """Which RowDescription applies to the DataRows the server is sending now.

    Extended-protocol clients (asyncpg, psycopg) describe a statement once and then execute it many times:
    its DataRows come with no RowDescription in front. So the client's Parse/Bind/Describe/Execute/Close/
    Sync/Query messages are queued as they pass, and consumed in order as the server answers them, which
    keeps the bookkeeping right under pipelining. A row whose shape is still unknown is masked as if every
    column were text (more masking, never less).
    """

    __slots__ = (
        "_pending",
        "_portal_formats",
        "_portal_rows",
        "_portal_statement",
        "_statement_rows",
        "current",
    )

    def __init__(self) -> None:
        self._pending: deque[tuple[str, str, str, tuple[int, ...]]] = deque()  # (what, name, other, formats)
        self._portal_formats: dict[str, tuple[int, ...]] = {}
        self._statement_rows: dict[str, bytes | None] = {}
        self._portal_rows: dict[str, bytes | None] = {}
        self._portal_statement: dict[str, str] = {}
        self.current: bytes | None = None  # the RowDescription body of the result being streamed

    # client → server, in the order the messages are forwarded
    def client(self, what: str, name: str = "", other: str = "", formats: tuple[int, ...] = ()) -> None:
        self._pending.append((what, name, other, formats))

    # server → client
    def parse_complete(self) -> None:
        entry = self._pop_until("parse")
        if entry is not None:
            self._statement_rows.pop(entry[1], None)  # a re-parsed name is a new statement

    def bind_complete(self) -> None:
        entry = self._pop_until("bind")
        if entry is not None:
            _, portal, statement, formats = entry
            self._portal_statement[portal] = statement
            self._portal_formats[portal] = formats
            self._portal_rows.pop(portal, None)

    def close_complete(self) -> None:
        entry = self._pop_until("close")
        if entry is not None:
            _, target, name, _ = entry
            (self._statement_rows if target == "S" else self._portal_rows).pop(name, None)

    def row_description(self, body: bytes | None) -> None:
        """A RowDescription (or NoData when `body` is None): a Describe's answer, or a query result's head."""
        head = self._pending[0] if self._pending else None
        if head is not None and head[0] == "describe":
            self._pending.popleft()
            _, target, name, _ = head
            (self._statement_rows if target == "S" else self._portal_rows)[name] = body
            return
        self.current = body

    def rows_shape(self) -> tuple[bytes | None, tuple[int, ...] | None]:
        """The RowDescription body for the rows now streaming, and the Bind's result formats when that
        description came from the statement's Describe (None when it states the formats itself)."""
        if self.current is not None:
            return self.current, None
        head = self._pending[0] if self._pending else None
        if head is not None and head[0] == "execute":
            portal = head[1]
            shape = self._portal_rows.get(portal)
            if shape is not None:
                return shape, None
            statement_shape = self._statement_rows.get(self._portal_statement.get(portal, ""))
            return statement_shape, self._portal_formats.get(portal, ())
        return None, None

    def result_done(self) -> None:
        """CommandComplete, PortalSuspended or EmptyQueryResponse: one Execute (or one statement) answered."""
        self.current = None
        if self._pending and self._pending[0][0] == "execute":
            self._pending.popleft()

    def error(self) -> None:
        """An ErrorResponse. A Query's own error is followed by its ReadyForQuery; an error in extended mode
        makes the server skip everything up to Sync — Queries sent meanwhile included."""
        self.current = None
        pending = self._pending
        if pending and pending[0][0] == "query":
            return
        while pending and pending[0][0] != "sync":
            pending.popleft()

    def ready(self) -> None:
        self.current = None
        pending = self._pending
        while pending:
            what = pending.popleft()[0]
            if what in ("sync", "query"):
                return

    def _pop_until(self, what: str) -> tuple[str, str, str, tuple[int, ...]] | None:
        pending = self._pending
        while pending:
            entry = pending.popleft()
            if entry[0] == what:
                return entry
            if entry[0] in ("sync", "query"):
                pending.appendleft(entry)
                return None
        return None


# Server messages that carry free text besides rows and errors: NotificationResponse (`pg_notify(ch, email)`),
# ParameterStatus (`set_config('application_name', email, false)`), FunctionCallResponse.
_NOTIFICATION, _PARAMETER_STATUS, _FUNCTION_RESULT = b"A"[0], b"S"[0], b"V"[0]


def mask_text_message(
    masking: SessionMasking, type_byte: int, data: bytes, start: int, end: int
) -> bytes | None:
    """The message with its text fields masked, or None when nothing changed."""
    masker = masking.masker
    if not masker.might_match_bytes(data[start:end]):
        return None
    if type_byte == _FUNCTION_RESULT:
        if end - start < 4:
            raise ProtocolError("truncated FunctionCallResponse from upstream")
        length = _unpack_i32(data, start)[0]
        if length < 0:
            return None
        if start + 4 + length != end:
            # The value must fill the frame exactly: anything else would mask the next messages' bytes
            # into its place.
            raise ProtocolError("FunctionCallResponse length does not match its frame")
        masked = masker.mask_bytes(data[start + 4 : start + 4 + length])
        if masked is None:
            return None
        masking.add(masked[1])
        return b"V" + _pack_i32(len(masked[0]) + 8) + _pack_i32(len(masked[0])) + masked[0]
    offset = start + 4 if type_byte == _NOTIFICATION else start
    first, offset = cstring_at(data, offset, end)
    second, _ = cstring_at(data, offset, end)
    masked_first, counts_first = masker.mask_text(first)
    masked_second, counts_second = masker.mask_text(second)
    if not counts_first and not counts_second:
        return None
    masking.add(counts_first)
    masking.add(counts_second)
    body = (data[start : start + 4] if type_byte == _NOTIFICATION else b"") + (
        masked_first.encode() + b"\0" + masked_second.encode() + b"\0"
    )
    return bytes([type_byte]) + _pack_i32(len(body) + 4) + body
