"""PostgreSQL result values as one line of text: text format as it is, binary format of common types decoded.

A recording keeps each column's type oid but not whether the client asked for text or binary results (asyncpg
asks for binary), so a value that is not printable UTF-8 is read as the binary form of its type, and shown
as hex when it is not one of the types below.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid

MAX_CELL = 200  # characters of one value as shown

BOOL, INT8, INT2, INT4, OID, FLOAT4, FLOAT8 = 16, 20, 21, 23, 26, 700, 701
DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID = 1082, 1114, 1184, 1700, 2950
_NUMBERS = {INT2: ">h", INT4: ">i", INT8: ">q", OID: ">I", FLOAT4: ">f", FLOAT8: ">d"}
_POSTGRES_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_NUMERIC_NAN = 0xC000
_NUMERIC_NEGATIVE = 0x4000
_MAX_NUMERIC_GROUPS = 64  # 256 digits: more than a cell shows
_LINE_BREAKS = str.maketrans("\t\n\r", "   ")


def _numeric(value: bytes) -> str:
    """Binary numeric: digit count, weight, sign, display scale, then the digits in base 10,000."""
    count, weight, sign, scale = struct.unpack_from(">hhHh", value)
    if sign == _NUMERIC_NAN:
        return "NaN"
    if not 0 <= count <= _MAX_NUMERIC_GROUPS or not 0 <= scale <= 4 * _MAX_NUMERIC_GROUPS:
        raise ValueError("numeric out of the range shown")
    groups = struct.unpack_from(f">{count}H", value, 8)
    digits = "".join(f"{group:04d}" for group in groups) or "0"
    sign_text = "-" if sign == _NUMERIC_NEGATIVE else ""
    # Enough precision for every digit sent: the default 28 would round a long value, or refuse it.
    context = decimal.Context(prec=len(digits) + scale + 8)
    number = decimal.Decimal(f"{sign_text}{digits}e{(weight - count + 1) * 4}", context)
    return str(number.quantize(decimal.Decimal(1).scaleb(-scale, context), context=context))


def binary_value(value: bytes, type_oid: int) -> str:
    """`value` in the binary format of `type_oid`, written as PostgreSQL writes it; hex when unknown."""
    try:
        number_format = _NUMBERS.get(type_oid)
        if number_format is not None and len(value) == struct.calcsize(number_format):
            return str(struct.unpack(number_format, value)[0])
        if type_oid == BOOL and len(value) == 1:
            return "false" if value == b"\x00" else "true"
        if type_oid == NUMERIC and len(value) >= 8:
            return _numeric(value)
        if type_oid in (TIMESTAMP, TIMESTAMPTZ) and len(value) == 8:
            moment = _POSTGRES_EPOCH + datetime.timedelta(microseconds=struct.unpack(">q", value)[0])
            return moment.isoformat(sep=" ") if type_oid == TIMESTAMPTZ else str(moment.replace(tzinfo=None))
        if type_oid == DATE and len(value) == 4:
            return str(_POSTGRES_EPOCH.date() + datetime.timedelta(days=struct.unpack(">i", value)[0]))
        if type_oid == UUID and len(value) == 16:
            return str(uuid.UUID(bytes=value))
    except (struct.error, ArithmeticError, OverflowError, ValueError):
        pass  # not what its type says it is: shown raw
    return "\\x" + value.hex()


def cell_text(value: bytes | None, type_oid: int = 0) -> str:
    """One column value as shown in a results table: NULL, its text, or its decoded binary form."""
    if value is None:
        return "NULL"
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.isprintable():
        text = text.translate(_LINE_BREAKS)  # a multi-line text value shows on one line
    if text is None or not text.isprintable():
        text = binary_value(value, type_oid)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
