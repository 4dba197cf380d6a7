"""Values spelled through backslash escapes: `dana\\u0040example.com` in JSON, `E'a\\t078-05-1120'` in SQL.

The detector reads text as it is written; an escape hides an anchor (`\\u0040` is an '@') or glues a value to
the letter of the escape before it (`\\t078-...` reads as a word). When text holds a backslash, it is read a
second time as the escapes spell it, and what is found there is masked in the written text, escapes and all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from proxy.masking.detect import SpanTuple

# \uXXXX (JSON, also \UXXXXXXXX), \xHH, and the one-letter escapes of JSON, C and PostgreSQL E'' strings.
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|x([0-9A-Fa-f]{2})|([bfnrtv\\/\"']))")
_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE.update({char: char for char in "\\/\"'"})


_MAX_LEVELS = 3  # JSON inside an array's text form inside a string literal: escapes of escapes


def unescaped_view(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    """`text` as its escapes spell it (escapes of escapes too, a few levels deep), and for each character the
    span of `text` it was written as; None when no escape changes anything."""
    view = _unescape_once(text)
    if view is None:
        return None
    shown, where = view
    for _level in range(_MAX_LEVELS - 1):
        deeper = _unescape_once(shown)
        if deeper is None:
            break
        shown, inner = deeper
        where = [(where[start][0], where[end - 1][1]) for start, end in inner]
    return shown, where


def _unescape_once(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    if "\\" not in text:
        return None
    chars: list[str] = []
    where: list[tuple[int, int]] = []
    last = 0
    for escape in _ESCAPE.finditer(text):
        for index in range(last, escape.start()):
            chars.append(text[index])
            where.append((index, index + 1))
        hex_digits = escape.group(1) or escape.group(2) or escape.group(3)
        try:
            char = chr(int(hex_digits, 16)) if hex_digits else _SIMPLE[escape.group(4)]
        except (ValueError, OverflowError):
            char = "\ufffd"
        chars.append(char)
        where.append(escape.span())
        last = escape.end()
    if last == 0:
        return None
    for index in range(last, len(text)):
        chars.append(text[index])
        where.append((index, index + 1))
    return "".join(chars), where


def mask_escaped(
    text: str, find: Callable[[str], list[SpanTuple]], replacement: Callable[[str, str], str]
) -> tuple[str, dict[str, int]] | None:
    """`text` with every value found in its unescaped reading replaced (the escapes that spell it included);
    None when nothing is found there."""
    view = unescaped_view(text)
    if view is None:
        return None
    shown, where = view
    spans = find(shown)
    if not spans:
        return None
    pieces: list[str] = []
    counts: dict[str, int] = {}
    last = 0
    for start, end, entity in spans:
        raw_start, raw_end = where[start][0], where[end - 1][1]
        if raw_start < last:
            continue
        value = shown[start:end]
        token = replacement(entity, value)
        if token == value:
            continue
        pieces.append(text[last:raw_start])
        pieces.append(token)
        counts[entity] = counts.get(entity, 0) + 1
        last = raw_end
    if not counts:
        return None
    pieces.append(text[last:])
    return "".join(pieces), counts
