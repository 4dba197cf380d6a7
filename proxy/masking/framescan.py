"""The superset prefilter run once over a whole buffer of protocol frames (DataRows, COPY data)."""

# Why a second prefilter. The exact detector scans one value at a time. Run over raw wire bytes, its scans
# could MISS values: their negative look-arounds ("not right after two digits" in the anchor scan, "not after
# a digit" in the numeric gate) would see the length bytes in front of a value, and a length byte can be an
# ASCII digit. This scan may only produce false positives. Every one of its patterns is, for every entity the
# detector can find in a value, matched by bytes inside that value; it has no negative look-arounds and its
# positive look-behinds only look at bytes of the value itself (on its own a value has nothing before it),
# so it matches inside any buffer that holds the value, whatever surrounds it:
#
# - The anchor branches of the non-numeric entities are the detector's own, except the bare '@': an email
#   needs a domain character right after its '@' and a password in URL userinfo needs "://" before it; a
#   bare '@' would flag every row whose length byte is 64.
# - The international phone anchor is the detector's own (it looks for it even where the numeric gate says
#   no numeric entity is possible).
# - Numeric entities are found on the buffer's shape (digits as '0', capitals as 'A'). Every anchor the
#   detector's digit branches stop at spells one of: three digits, a separator and a digit (SSN, CPF, NANP
#   phone, spaced NIR, cards with any separator); thirteen digits in a row (cards without separators, NIR);
#   eight digits and a capital, with or without a '-' (DNI); a capital and seven digits, with or without a
#   '-' (NIE); two capitals and two digits (IBAN, codice fiscale); "d dd dd " (a NIR written in groups).
#   "(415)" anchors only lead to NANP phones, which hold three digits, a separator and a digit. So the gate
#   is not needed here, nor its look-behind. A separator here is any of ' ', '.', '-' (more than some
#   anchors take: false positives only). The first hit of a frame is where the anchor character is, inside
#   the value that holds the entity, so every value that ends before it is clean.
# - A backslash followed by anything but a zero byte is a hit: COPY text escapes and JSON's \u escapes can
#   spell characters the scans look for. (A zero byte follows a DataRow length of 92.)
#
# Custom rules are user regexes: nothing is known about what they need, so no frame scan is built for them
# and callers mask every frame on its own.

from __future__ import annotations

import re
from bisect import bisect_right

from proxy.masking import patterns as P
from proxy.masking.masker import Masker

_BACKSLASH = r"\\[^\x00]"
_URL_USERINFO_MARK = "://"
# Branches of the detector's scan that stop at a frequent character ('-' in every "order-42"), rewritten to
# stop at a rarer one; each matches the same text.
_RAREST_FIRST = {
    "-----BEGIN": "BEGIN(?<=-----BEGIN)",
    "-(?<=xox[abposr]-)": "xox[abposr]-",
}
# The numeric part works on the buffer's shape with ' ' and '.' turned into '-' as well, so that each of
# these scans starts with one literal character, which the regex engine skips to without trying a match.
_SHAPE_TABLE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .", b"0" * 10 + b"A" * 26 + b"--")
_SHAPE_AT_SEPARATOR = P.compile_bytes(r"-(?:(?<=000-)0|(?<=0-00-00-)|(?<=00000000-)A|(?<=A-)0000000)")
_SHAPE_AT_CAPITAL = P.compile_bytes(r"A(?:A00|-?0000000|(?<=00000000A))")
_SHAPE_DIGIT_RUN = b"0" * 13


def frame_scan_source(entities: frozenset[str]) -> str:
    """The raw-byte part of the frame scan for `entities` (the numeric part works on the shape)."""
    branches = [_BACKSLASH]
    for branch in P.anchor_branches(entities - P.NUMERIC_ENTITIES):
        if branch != P.AT_SIGN_ANCHOR:
            branches.append(_RAREST_FIRST.get(branch, branch))
            continue
        if P.EMAIL in entities:
            branches.append(P.EMAIL_AT_SIGN)
        if P.SECRET in entities:
            branches.append(_URL_USERINFO_MARK)
    if P.PHONE in entities:
        branches.append(P.INTERNATIONAL_PHONE_ANCHOR)
    return "|".join(branches)


class FrameScan:
    """Finds the frames of a buffer that may hold an entity; built once per Masker (see module comment)."""

    __slots__ = ("_numeric", "_raw")

    def __init__(self, raw: re.Pattern[bytes], numeric: bool) -> None:
        self._raw = raw.search
        self._numeric = numeric

    @classmethod
    def for_masker(cls, masker: Masker) -> FrameScan | None:
        """None when the masker has custom rules (no superset is known for them) or masks nothing."""
        if not masker.enabled or masker.has_custom_rules:
            return None
        entities = masker.entities
        return cls(P.compile_bytes(frame_scan_source(entities)), bool(entities & P.NUMERIC_ENTITIES))

    def hit_frames(self, data: bytes, starts: list[int], stop: int) -> list[tuple[int, int]]:
        """The frames that may hold an entity, in order, as (index into `starts`, offset of the first hit in
        it): no value that ends at or before that offset holds one. `starts` are the offsets of consecutive
        whole frames in `data`, the last one ending at `stop`."""
        base = starts[0]
        raw = self._raw
        numeric = self._numeric
        # The next hit of each search at or after `position` (`stop` when none); a search runs again only
        # once the frames before its hit are done.
        match = raw(data, base, stop)
        next_raw = match.start() if match is not None else stop
        shape = b""
        next_separator = next_capital = next_run = stop
        if numeric:
            shape = data[base:stop].translate(_SHAPE_TABLE)
            match = _SHAPE_AT_SEPARATOR.search(shape)
            next_separator = base + match.start() if match is not None else stop
            match = _SHAPE_AT_CAPITAL.search(shape)
            next_capital = base + match.start() if match is not None else stop
            found = shape.find(_SHAPE_DIGIT_RUN)
            next_run = base + found if found >= 0 else stop
        hits: list[tuple[int, int]] = []
        count = len(starts)
        while True:
            hit = min(next_raw, next_separator, next_capital, next_run)
            if hit >= stop:
                return hits
            index = bisect_right(starts, hit) - 1
            hits.append((index, hit))
            position = starts[index + 1] if index + 1 < count else stop
            if next_raw < position:
                match = raw(data, position, stop)
                next_raw = match.start() if match is not None else stop
            if not numeric:
                continue
            # Look-behinds may read bytes before `offset`: such a match began in a frame already handled, so
            # it is a false positive at worst.
            offset = position - base
            if next_separator < position:
                match = _SHAPE_AT_SEPARATOR.search(shape, offset)
                next_separator = base + match.start() if match is not None else stop
            if next_capital < position:
                match = _SHAPE_AT_CAPITAL.search(shape, offset)
                next_capital = base + match.start() if match is not None else stop
            if next_run < position:
                found = shape.find(_SHAPE_DIGIT_RUN, offset)
                next_run = base + found if found >= 0 else stop
