"""Masking of PostgreSQL result data: DataRow bodies, COPY text lines, and Error/Notice response fields."""

# Columns are planned once per RowDescription (see pgtypes): values of types that cannot carry text are
# skipped by their length prefix and never copied or decoded. A row's text values are joined by newlines and
# prefiltered by one scan, so a clean row costs one walk over its lengths and one regex search; a value is
# decoded only when an anchor of the scan falls inside it.
#
# The relay hands over whole runs of rows instead (`mask_datarow_frames`): a frame scan over the run's bytes
# (see framescan) flags the rows that may hold an entity, and only those are walked and masked value by value,
# starting with the value the scan's first hit falls in.

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.masking.columns import ColumnRules
from proxy.masking.copytext import FIELD_SEPARATOR, NULL_FIELD, escape_field, unescape_field
from proxy.masking.masker import Counts, Masker, merge_counts
from proxy.masking.pgtypes import (
    JSONB_BINARY_VERSION,
    TEXT_FORMAT,
    Plan,
    element_plan,
    rule_plan,
    scan_plan,
)

if TYPE_CHECKING:
    from proxy.masking.framescan import FrameScan

_INT16 = struct.Struct(">h").unpack_from
_INT32 = struct.Struct(">i").unpack_from
_PACK_INT32 = struct.Struct(">i").pack
_NULL_LENGTH = _PACK_INT32(-1)
_JSONB_PREFIX = bytes((JSONB_BINARY_VERSION,))
_ARRAY_HEADER = struct.Struct(">iii")
_ARRAY_DIMENSION = struct.Struct(">ii")
_MAX_ARRAY_DIMENSIONS = 6  # PostgreSQL's MAXDIM


class MalformedMessage(ValueError):
    """A DataRow or array value whose lengths do not add up: a protocol error for the session."""


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One RowDescription field, as far as masking needs it. `table_name` is the resolved (optionally
    schema-qualified) name of the field's table, or None for computed columns or when unresolved."""

    name: str
    table_name: str | None
    type_oid: int
    format: int = TEXT_FORMAT
    # From the upstream's catalog (proxy/masking/table_names.py), when the field's table is known there:
    tables: tuple[tuple[str, str], ...] = ()  # (schema, table) of its table, then of that table's ancestors
    source_name: str | None = None  # the table column's own name when the query renamed it (`ssn AS s`)
    row_columns: tuple[str, ...] = ()  # a whole-row value (`SELECT t FROM t`): every column it carries


def _rule_entity(rules: ColumnRules, column: ColumnInfo) -> str | None:
    """The entity of the first rule naming this column: by the name it has in the result or, when the query
    renamed it, by its own name, in its table or any ancestor of it; a whole-row value by any column it
    carries. A column whose table is unknown is matched by its name in any table (fail closed)."""
    names = [column.name]
    if column.source_name is not None:
        names.append(column.source_name)
    names += column.row_columns
    if not column.tables:  # a computed column, a view's or an unknown table's: by name in any table
        for name in names:
            entity = rules.entity_for(column.table_name, name)
            if entity is not None:
                return entity
        return None
    for schema, table in column.tables:
        for name in names:
            entity = rules.entity_for(table, name, schema=schema)
            if entity is not None:
                return entity
    return None


def build_datarow(body: bytes) -> bytes:
    """A whole DataRow message: b"D", the int32 length (which counts itself), then `body`."""
    return b"D" + _PACK_INT32(len(body) + 4) + body


def build_copydata(payload: bytes) -> bytes:
    """A whole CopyData message around `payload`."""
    return b"d" + _PACK_INT32(len(payload) + 4) + payload


class RowMasker:
    """Masks the DataRows (and COPY text lines) of one result set."""

    def __init__(
        self, masker: Masker, columns: Sequence[ColumnInfo], column_rules: ColumnRules | None
    ) -> None:
        self._masker = masker
        self._columns = tuple(columns)
        rules = column_rules if column_rules else None
        entities = [_rule_entity(rules, c) if rules else None for c in self._columns]
        self._rule_entities = tuple(entities)
        self._plans = tuple(
            _plan(masker, column.type_oid, column.format, entity)
            for column, entity in zip(self._columns, entities, strict=True)
        )
        self._array_element_plans = {
            index: element_plan(column.type_oid)
            for index, (column, plan) in enumerate(zip(self._columns, self._plans, strict=True))
            if plan is Plan.TEXT_ARRAY_BINARY
        }
        # COPY text carries every column in text form, whatever the RowDescription formats were.
        self._copy_plans = tuple(
            _plan(masker, column.type_oid, TEXT_FORMAT, entity)
            for column, entity in zip(self._columns, entities, strict=True)
        )
        # A redacted (or NULLed) column-rule value does not depend on the value: compute it once.
        self._constant_rule_values = {
            index: _apply_rule(masker, plan, entity, b"")
            for index, (plan, entity) in enumerate(zip(self._plans, entities, strict=True))
            if entity is not None and (plan is Plan.RULE_NULL or masker.strategy_for(entity).kind == "redact")
        }
        self._active = any(self._plans)
        # One prefilter over all of a row's scanned values is sound only when every planned column is scanned
        # (a column rule replaces values whatever they hold).
        self._row_prefilter = self._active and all(plan <= Plan.TEXT_ARRAY_BINARY for plan in self._plans)
        self._json_plans = any(
            plan in (Plan.JSON, Plan.JSONB_BINARY, Plan.TEXT_ARRAY_BINARY) for plan in self._plans
        )
        self._copy_active = masker.enabled or any(self._copy_plans)

    @property
    def active(self) -> bool:
        """False when no column can need masking: the relay may forward DataRows without calling us."""
        return self._active

    # --- runs of whole messages -----------------------------------------------------------------------------

    def mask_datarow_frames(
        self, data: bytes, starts: list[int], stop: int, scan: FrameScan | None
    ) -> tuple[list[tuple[int, int, bytes]], Counts] | None:
        """Mask a run of whole DataRow messages of `data`: `starts` are their offsets (type byte included),
        the last ends at `stop`. Only the rows `scan` flags are masked (every row without a scan, or when a
        column rule replaces values whatever they hold), each value on its own. Returns the replaced
        messages as (start, end, new message), in order, and the counts; None when nothing changed."""
        if not self._active:
            return None
        replaced: list[tuple[int, int, bytes]] = []
        counts: Counts = {}
        last = len(starts) - 1
        if scan is None or not self._row_prefilter:
            for index, start in enumerate(starts):
                end = starts[index + 1] if index < last else stop
                result = self.mask_datarow(data[start + 5 : end])
                if result is not None:
                    replaced.append((start, end, build_datarow(result[0])))
                    merge_counts(counts, result[1])
        else:
            for index, first_hit in scan.hit_frames(data, starts, stop):
                start = starts[index]
                end = starts[index + 1] if index < last else stop
                message = self._mask_frame_from(data, start, end, first_hit, counts)
                if message is not None:
                    replaced.append((start, end, message))
        return (replaced, counts) if replaced else None

    def _mask_frame_from(
        self, data: bytes, start: int, end: int, first_hit: int, counts: Counts
    ) -> bytes | None:
        """The DataRow message at data[start:end] with its planned values that end after `first_hit` masked
        one by one (those before are clean: the frame scan found nothing there); None when unchanged."""
        plans = self._plans
        mask_bytes = self._masker.mask_bytes
        text = Plan.TEXT
        if end - start < 7:
            raise MalformedMessage("DataRow has no column count")
        count = _INT16(data, start + 5)[0]
        if count != len(plans):
            raise MalformedMessage(f"DataRow has {count} columns but its RowDescription has {len(plans)}")
        pieces: list[bytes] | None = None
        copied = start + 5
        position = start + 7
        # Lengths are checked once, at the end: a value that runs past the frame leaves `position` off its
        # end, and nothing read meanwhile is used before that check.
        try:
            for index in range(count):
                length = _INT32(data, position)[0]
                position += 4
                if length < 0:
                    if length != -1:
                        raise MalformedMessage(f"DataRow column length {length}")
                    continue
                value_end = position + length
                plan = plans[index]
                if plan and value_end > first_hit:
                    if plan is text:
                        result = mask_bytes(data[position:value_end])
                    else:
                        result = self._mask_value(index, plan, data[position:value_end])
                    if result is not None:
                        replacement, found = result
                        if pieces is None:
                            pieces = []
                        pieces.append(data[copied : position - 4])
                        if replacement is None:
                            pieces.append(_NULL_LENGTH)
                        else:
                            pieces.append(_PACK_INT32(len(replacement)) + replacement)
                        copied = value_end
                        for entity, number in found.items():
                            counts[entity] = counts.get(entity, 0) + number
                position = value_end
        except struct.error:
            raise MalformedMessage("DataRow ends inside a column length") from None
        if position != end:
            raise MalformedMessage("DataRow columns do not add up to its length")
        if pieces is None:
            return None
        pieces.append(data[copied:end])
        return b"".join((b"D", _PACK_INT32(sum(map(len, pieces)) + 4), *pieces))

    def mask_copy_frames(
        self, data: bytes, starts: list[int], stop: int, scan: FrameScan | None
    ) -> tuple[list[tuple[int, int, bytes]], Counts] | None:
        """`mask_datarow_frames` for a run of CopyData messages of COPY TO STDOUT text output."""
        if not self._copy_active:
            return None
        plans_scanned = all(plan <= Plan.TEXT_ARRAY_BINARY for plan in self._copy_plans)
        last = len(starts) - 1
        if scan is not None and plans_scanned:
            candidates: Iterable[tuple[int, int]] = scan.hit_frames(data, starts, stop)
        else:
            candidates = ((index, start) for index, start in enumerate(starts))
        replaced: list[tuple[int, int, bytes]] = []
        counts: Counts = {}
        for index, first_hit in candidates:
            start = starts[index]
            end = starts[index + 1] if index < last else stop
            result = self.mask_copy_line(data[start + 5 : end], first_hit - start - 5)
            if result is not None:
                replaced.append((start, end, build_copydata(result[0])))
                merge_counts(counts, result[1])
        return (replaced, counts) if replaced else None

    # --- DataRow --------------------------------------------------------------------------------------------

    def mask_datarow(self, body: bytes | memoryview) -> tuple[bytes, Counts] | None:
        """Mask a DataRow body (after the b"D" and length): the new body, or None when nothing changed.

        Raises MalformedMessage when the body's lengths are inconsistent or its column count differs from the
        RowDescription's."""
        if not self._active:
            return None
        if type(body) is not bytes:
            body = bytes(body)
        planned, values = self._planned_values(body)
        if not planned:
            return None
        masker = self._masker
        if not self._row_prefilter or len(values) == 1:
            return self._mask_values(body, planned, values)
        # Most rows hold nothing to mask: one prefilter over all their text instead of one per value. Values
        # that end before the next anchor of the joined text are clean and skipped.
        joined = b"\n".join(values)
        found = masker.prefilter_joined(joined)
        if self._json_plans and joined.find(b"\\u") != -1:
            return self._mask_values(body, planned, values)  # a JSON \u escape can spell an anchor character
        if found is None:
            return None
        anchor, numeric = found
        pieces: list[bytes] = []
        counts: Counts = {}
        copied = 0
        plans = self._plans
        offset = 0  # where the current value starts in `joined`
        for (index, start, end), value in zip(planned, values, strict=True):
            following = offset + len(value) + 1
            if anchor >= following:
                offset = following
                continue
            plan = plans[index]
            if plan is Plan.TEXT:
                result = masker.mask_candidate(value, max(anchor - offset, 0), numeric)
            else:
                result = self._mask_value(index, plan, value)
            if result is not None:
                replaced, found_here = result
                pieces.append(body[copied : start - 4])
                pieces.append(_NULL_LENGTH if replaced is None else _PACK_INT32(len(replaced)) + replaced)
                copied = end
                merge_counts(counts, found_here)
            offset = following
            if offset >= len(joined):
                break
            next_anchor = masker.next_anchor_joined(joined, offset, numeric)
            if next_anchor is None:
                break
            anchor = next_anchor
        if not pieces:
            return None
        pieces.append(body[copied:])
        return b"".join(pieces), counts

    def _mask_values(
        self, body: bytes, planned: list[tuple[int, int, int]], values: list[bytes]
    ) -> tuple[bytes, Counts] | None:
        """Mask each planned value on its own."""
        pieces: list[bytes] = []
        counts: Counts = {}
        copied = 0
        plans = self._plans
        for (index, start, end), value in zip(planned, values, strict=True):
            result = self._mask_value(index, plans[index], value)
            if result is not None:
                replaced, found = result
                pieces.append(body[copied : start - 4])
                pieces.append(_NULL_LENGTH if replaced is None else _PACK_INT32(len(replaced)) + replaced)
                copied = end
                merge_counts(counts, found)
        if not pieces:
            return None
        pieces.append(body[copied:])
        return b"".join(pieces), counts

    def _planned_values(self, body: bytes) -> tuple[list[tuple[int, int, int]], list[bytes]]:
        """(column index, start, end) of each non-NULL value whose column has a plan, and the values;
        validates the framing."""
        size = len(body)
        if size < 2:
            raise MalformedMessage("DataRow has no column count")
        count = _INT16(body, 0)[0]
        plans = self._plans
        if count != len(plans):
            raise MalformedMessage(f"DataRow has {count} columns but its RowDescription has {len(plans)}")
        planned: list[tuple[int, int, int]] = []
        values: list[bytes] = []
        position = 2
        for index in range(count):
            if position + 4 > size:
                raise MalformedMessage("DataRow ends inside a column length")
            length = _INT32(body, position)[0]
            position += 4
            if length < 0:
                if length != -1:
                    raise MalformedMessage(f"DataRow column length {length}")
                continue
            end = position + length
            if end > size:
                raise MalformedMessage("DataRow column runs past the message")
            if plans[index]:
                planned.append((index, position, end))
                values.append(body[position:end])
            position = end
        if position != size:
            raise MalformedMessage("DataRow has bytes after its last column")
        return planned, values

    def _mask_value(self, index: int, plan: Plan, value: bytes) -> tuple[bytes | None, Counts] | None:
        masker = self._masker
        if plan is Plan.TEXT:
            return masker.mask_bytes(value)
        if plan is Plan.JSON:
            return masker.mask_json_bytes(value)
        if plan is Plan.JSONB_BINARY:
            return _mask_jsonb_binary(masker, value)
        if plan is Plan.TEXT_ARRAY_BINARY:
            return _mask_binary_array(masker, self._array_element_plans[index], value)
        entity = self._rule_entities[index]
        assert entity is not None
        if index in self._constant_rule_values:
            return self._constant_rule_values[index], {entity: 1}
        return _apply_rule(masker, plan, entity, value), {entity: 1}

    # --- COPY -----------------------------------------------------------------------------------------------

    def mask_copy_line(self, line: bytes | memoryview, first: int = 0) -> tuple[bytes, Counts] | None:
        """Mask one line of COPY TO STDOUT text format (fields split by tabs, `\\N` for NULL, backslash
        escapes; trailing newline kept). Fields are planned by this result's columns when their number
        matches, otherwise every field is scanned as text. Fields that end at or before byte `first` are
        known to be clean (a frame scan found nothing there) and skipped. Returns the new line, or None when
        nothing changed."""
        if not self._copy_active:
            return None
        if type(line) is not bytes:
            line = bytes(line)
        newline = b"\n" if line.endswith(b"\n") else b""
        fields = (line[:-1] if newline else line).split(FIELD_SEPARATOR)
        plans = self._copy_plans if len(fields) == len(self._copy_plans) else None
        masker = self._masker
        counts: Counts = {}
        changed = False
        field_end = -1
        for index, field in enumerate(fields):
            field_end += len(field) + 1
            if field_end <= first or field == NULL_FIELD:
                continue
            if plans is not None:
                plan = plans[index]
            elif not masker.enabled:
                plan = Plan.SKIP
            else:
                # Columns unknown (a bare COPY): a field that looks like JSON is masked as JSON, so an escaped
                # quote inside a string value cannot cut a secret's value short.
                plan = Plan.JSON if field[:1] in (b"{", b"[") else Plan.TEXT
            if not plan:
                continue
            if plan is Plan.TEXT or plan is Plan.JSON:
                # The value, not its escaped form, is what the prefilter of mask_bytes/mask_json_bytes reads.
                value = unescape_field(field)
                result = masker.mask_bytes(value) if plan is Plan.TEXT else masker.mask_json_bytes(value)
                if result is None:
                    continue
                replaced: bytes | None = result[0]
                found = result[1]
            else:
                entity = self._rule_entities[index]
                assert entity is not None
                replaced, found = _apply_rule(masker, plan, entity, unescape_field(field)), {entity: 1}
            fields[index] = NULL_FIELD if replaced is None else escape_field(replaced)
            merge_counts(counts, found)
            changed = True
        if not changed:
            return None
        return FIELD_SEPARATOR.join(fields) + newline, counts


def _plan(masker: Masker, type_oid: int, format_code: int, rule_entity: str | None) -> Plan:
    if rule_entity is not None:
        return rule_plan(type_oid, format_code)
    if not masker.enabled:
        return Plan.SKIP
    return scan_plan(type_oid, format_code)


def _apply_rule(masker: Masker, plan: Plan, entity: str, value: bytes) -> bytes | None:
    """The whole value replaced as a column rule says; None means NULL."""
    if plan is Plan.RULE_NULL:
        return None
    if plan is Plan.RULE_JSONB_BINARY:
        value = value[1:]
    replacement = masker.replacement(entity, value.decode("utf-8", "surrogateescape"))
    if plan is Plan.RULE_TEXT:
        return replacement.encode("utf-8", "surrogateescape")
    encoded = json.dumps(replacement, ensure_ascii=False).encode("utf-8", "surrogateescape")
    return _JSONB_PREFIX + encoded if plan is Plan.RULE_JSONB_BINARY else encoded


def _mask_jsonb_binary(masker: Masker, value: bytes) -> tuple[bytes, Counts] | None:
    # Version 1 is the only format PostgreSQL has; an unknown version is masked as JSON text all the same
    # (fail closed) and its version byte kept.
    result = masker.mask_json_bytes(value[1:])
    if result is None:
        return None
    return value[:1] + result[0], result[1]


def _mask_binary_array(masker: Masker, element: Plan, value: bytes) -> tuple[bytes, Counts] | None:
    """Mask the elements of a binary-format array of text-like elements, rewriting their lengths."""
    size = len(value)
    if size < _ARRAY_HEADER.size:
        raise MalformedMessage("binary array shorter than its header")
    dimensions = _ARRAY_HEADER.unpack_from(value, 0)[0]
    if not 0 <= dimensions <= _MAX_ARRAY_DIMENSIONS:
        raise MalformedMessage(f"binary array with {dimensions} dimensions")
    position = _ARRAY_HEADER.size + dimensions * _ARRAY_DIMENSION.size
    if position > size:
        raise MalformedMessage("binary array shorter than its dimensions")
    total = 1 if dimensions else 0
    for dimension in range(dimensions):
        total *= _ARRAY_DIMENSION.unpack_from(value, _ARRAY_HEADER.size + dimension * _ARRAY_DIMENSION.size)[
            0
        ]
    pieces: list[bytes] | None = None
    counts: Counts = {}
    copied = 0
    for _ in range(total):
        if position + 4 > size:
            raise MalformedMessage("binary array ends inside an element length")
        length = _INT32(value, position)[0]
        start = position + 4
        if length < 0:
            position = start
            continue
        end = start + length
        if end > size:
            raise MalformedMessage("binary array element runs past the value")
        item = value[start:end]
        if element is Plan.TEXT:
            result = masker.mask_bytes(item)
        elif element is Plan.JSON:
            result = masker.mask_json_bytes(item)
        else:
            result = _mask_jsonb_binary(masker, item)
        if result is not None:
            if pieces is None:
                pieces = []
            pieces.append(value[copied:position])
            pieces.append(_PACK_INT32(len(result[0])) + result[0])
            copied = end
            merge_counts(counts, result[1])
        position = end
    if position != size:
        raise MalformedMessage("binary array has bytes after its last element")
    if pieces is None:
        return None
    pieces.append(value[copied:])
    return b"".join(pieces), counts


# --- ErrorResponse / NoticeResponse -------------------------------------------------------------------------

# Field types whose text can quote data: message, detail, hint, context (where) and internal query
# ("Key (email)=(alice@example.com) already exists." is a DETAIL).
MASKED_NOTICE_FIELDS = frozenset(b"MDHWq")


def mask_notice_fields(masker: Masker, body: bytes | memoryview) -> tuple[bytes, Counts] | None:
    """Mask the human-readable fields of an ErrorResponse or NoticeResponse body (type byte + C string pairs,
    ending in a zero byte). Returns the new body, or None when nothing changed."""
    if not masker.enabled:
        return None
    if type(body) is not bytes:
        body = bytes(body)
    if not masker.might_match_bytes(body):
        return None
    pieces: list[bytes] = []
    counts: Counts = {}
    position = 0
    size = len(body)
    while position < size and body[position] != 0:
        field_type = body[position]
        end = body.find(b"\0", position + 1)
        if end < 0:
            raise MalformedMessage("notice field without its terminating zero byte")
        text = body[position + 1 : end]
        if field_type in MASKED_NOTICE_FIELDS:
            result = masker.mask_bytes(text)
            if result is not None:
                text = result[0].replace(b"\0", b"")
                merge_counts(counts, result[1])
        pieces.append(bytes((field_type,)) + text + b"\0")
        position = end + 1
    if not counts:
        return None
    pieces.append(body[position:])
    return b"".join(pieces), counts
