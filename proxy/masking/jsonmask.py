"""JSON-aware masking: mask inside strings, keep the document valid JSON and untouched elsewhere."""

# Wherever nothing was masked the document stays byte-identical: numbers, spacing and key order are never re-
# serialised.

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from proxy.masking.entities import SECRET
from proxy.masking.patterns import SECRET_KEY_NAME

if TYPE_CHECKING:
    from proxy.masking.masker import Counts, Masker

# A JSON string literal, or a number. Strings are matched whole first, so digits inside them are never
# numbers.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?')
_KEY_COLON = re.compile(r"[ \t\r\n]*:")
# Numbers shorter than this hold no entity (the shortest numeric one, a card number, has 13 digits).
_MIN_ENTITY_DIGITS = 13


def mask_json(masker: Masker, text: str) -> tuple[str, Counts]:
    """Mask a JSON document; falls back to plain-text masking when `text` is not well-formed JSON strings."""
    # A \u escape can spell an anchor character ('@' as \u0040) that the prefilter would not see.
    if not masker.might_match_text(text) and "\\u" not in text:
        return text, {}
    detect_secret_keys = SECRET in masker.entities
    pieces: list[str] = []
    counts: Counts = {}
    last = 0  # text[:last] is already in pieces
    previous_end = 0
    secret_value_next = False
    for token in _TOKEN.finditer(text):
        start, end = token.span()
        gap = text[previous_end:start]
        previous_end = end
        if '"' in gap:
            return masker.mask_text(text)  # an unterminated string: not JSON we can walk safely
        literal = token.group()
        follows_secret_key = secret_value_next and gap.strip() == ":"
        secret_value_next = False
        if literal[0] == '"':
            try:
                value = json.loads(literal) if "\\" in literal else literal[1:-1]
            except ValueError:
                return masker.mask_text(text)
            is_key = _KEY_COLON.match(text, end) is not None
            if is_key and detect_secret_keys and SECRET_KEY_NAME.match(value):
                secret_value_next = True
            if follows_secret_key and not is_key:
                masked, found = masker.replacement(SECRET, value), {SECRET: 1}
            else:
                masked, found = masker.mask_text(value)
        elif follows_secret_key:
            masked, found = masker.replacement(SECRET, literal), {SECRET: 1}
        elif sum(ch.isdigit() for ch in literal) >= _MIN_ENTITY_DIGITS:
            masked, found = masker.mask_text(literal)
        else:
            continue
        if not found:
            continue
        pieces.append(text[last:start])
        pieces.append(json.dumps(masked, ensure_ascii=False))  # a masked number becomes a string
        last = end
        for entity, count in found.items():
            counts[entity] = counts.get(entity, 0) + count
    if not counts:
        return text, {}
    pieces.append(text[last:])
    return "".join(pieces), counts
