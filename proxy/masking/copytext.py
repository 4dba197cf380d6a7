"""Escaping of fields in PostgreSQL's COPY text format (tab-separated, backslash escapes, \\N for NULL)."""

from __future__ import annotations

import re

NULL_FIELD = b"\\N"
FIELD_SEPARATOR = b"\t"

_SIMPLE_ESCAPES = {
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("v"): b"\v",
}
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)
# Written back in this order: the backslash first, so the escapes added after it are not doubled.
_TO_ESCAPE = (
    (b"\\", b"\\\\"),
    (b"\n", b"\\n"),
    (b"\r", b"\\r"),
    (b"\t", b"\\t"),
    (b"\b", b"\\b"),
    (b"\f", b"\\f"),
    (b"\v", b"\\v"),
)


def _unescape_one(match: re.Match[bytes]) -> bytes:
    octal, hexadecimal, other = match.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexadecimal is not None:
        return bytes((int(hexadecimal, 16),))
    code = other[0]
    return _SIMPLE_ESCAPES.get(code, other)


def unescape_field(raw: bytes) -> bytes:
    """The value a COPY text field stands for (the caller handles \\N)."""
    if b"\\" not in raw:
        return raw
    return _ESCAPE.sub(_unescape_one, raw)


_NEEDS_ESCAPE = re.compile(rb"[\\\n\r\t\b\f\v]")


def escape_field(value: bytes) -> bytes:
    """A value written as a COPY text field."""
    if _NEEDS_ESCAPE.search(value) is None:  # the usual case, decided by one scan
        return value
    for plain, escaped in _TO_ESCAPE:
        if plain in value:
            value = value.replace(plain, escaped)
    return value
