"""Entity detection: one anchor scan over the text, then strict matching and validation at each anchor."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from proxy.masking import patterns as P
from proxy.masking.entities import (
    BR_CPF,
    CREDIT_CARD,
    EMAIL,
    ES_DNI,
    FR_NIR,
    IBAN,
    IT_FISCAL_CODE,
    PHONE,
    SECRET,
    US_SSN,
    custom_entity,
)
from proxy.masking.validators import (
    br_cpf_valid,
    card_length,
    es_dni_valid,
    fr_nir_valid,
    iban_length,
    it_fiscal_code_valid,
    jwt_header_valid,
    phone_span,
    ssn_valid,
)

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_EMAIL_LOOKBACK = 128
_URL_LOOKBACK = 256
_KEY_LOOKBACK = 64
_TOKEN_LOOKBACK = 80


class Span(NamedTuple):
    """A detected entity at text[start:end]."""

    start: int
    end: int
    entity: str


# (start, end, entity): the hot path builds plain tuples; Span names the same fields for readers.
SpanTuple = tuple[int, int, str]
_Found = SpanTuple
_Handler = Callable[[str, int], "_Found | None"]


class CustomRule(NamedTuple):
    """A policy regex rule, compiled."""

    entity: str
    text_pattern: re.Pattern[str]
    # The same source compiled for bytes, used as an ASCII-only prefilter; None when it does not compile so.
    bytes_pattern: re.Pattern[bytes] | None


def compile_custom_rules(rules: Mapping[str, str]) -> tuple[CustomRule, ...]:
    """Compile policy regex rules (name -> regex); a bad regex is one clear error naming the rule."""
    compiled: list[CustomRule] = []
    for name, source in rules.items():
        entity = custom_entity(name)
        try:
            text_pattern = re.compile(source)
        except re.error as exc:
            raise ValueError(f"custom masking rule {name!r}: invalid regular expression: {exc}") from None
        try:
            bytes_pattern: re.Pattern[bytes] | None = re.compile(source.encode("utf-8"))
        except re.error:
            bytes_pattern = None
        compiled.append(CustomRule(entity, text_pattern, bytes_pattern))
    return tuple(compiled)


class _Scans(NamedTuple):
    """The anchor scan for one set of entities, compiled for text and for bytes."""

    text: re.Pattern[str] | None
    bytes: re.Pattern[bytes] | None

    @classmethod
    def build(cls, entities: frozenset[str], extra_branch: str | None = None) -> _Scans:
        source = P.anchor_scan_source(entities)
        if extra_branch is not None:
            source = extra_branch if source is None else f"{source}|{extra_branch}"
        if source is None:
            return cls(None, None)
        return cls(P.compile_text(source), P.compile_bytes(source))


class Detector:
    """Finds entity spans in text for one set of enabled entities and custom rules."""

    def __init__(self, entities: frozenset[str], custom_rules: tuple[CustomRule, ...] = ()) -> None:
        self.entities = entities
        self._custom = custom_rules
        # Two scans: all anchors, and for values the numeric gate rules out, all but the numeric ones - except
        # '+' for international phone numbers, which the gate does not cover and which is a rare anchor.
        self._numeric = bool(entities & P.NUMERIC_ENTITIES)
        self._with_numeric = _Scans.build(entities)
        international = P.INTERNATIONAL_PHONE_ANCHOR if PHONE in entities else None
        self._without_numeric = _Scans.build(entities - P.NUMERIC_ENTITIES, international)
        # Bound methods, looked up once: prefilter_bytes runs for every value.
        self._gate_search = P.NUMERIC_GATE.search if self._numeric else None
        self._scan_numeric = self._with_numeric.bytes.search if self._with_numeric.bytes else None
        self._scan_plain = self._without_numeric.bytes.search if self._without_numeric.bytes else None
        self._email = EMAIL in entities
        self._secret = SECRET in entities
        self._phone = PHONE in entities
        self._card = CREDIT_CARD in entities
        self._ssn = US_SSN in entities
        self._iban = IBAN in entities
        self._dni = ES_DNI in entities
        self._fiscal = IT_FISCAL_CODE in entities
        self._nir = FR_NIR in entities
        self._cpf = BR_CPF in entities
        handlers: dict[str, _Handler] = {
            "@": self._at_sign,
            "%": self._at_sign,
            "-": self._dash,
            "_": self._underscore,
            ":": self._pair,
            "=": self._pair,
            "A": self._capital_a,
            "J": self._jwt,
            "B": self._bearer,
            "b": self._bearer,
            "+": self._plus,
            "(": self._paren,
        }
        for digit in "0123456789":
            handlers[digit] = self._digit
        self._handlers = handlers

    # --- prefilters -----------------------------------------------------------------------------------------

    def numeric_possible(self, data: bytes) -> bool:
        """False when no numeric entity but an international phone number (which the scan without numeric
        branches still finds) can be in `data`."""
        gate = self._gate_search
        return gate is not None and gate(data.translate(P.SHAPE_TABLE)) is not None

    def numeric_possible_text(self, text: str) -> bool:
        return self._numeric and self.numeric_possible(text.encode("utf-8", "surrogatepass"))

    def might_match_bytes(self, data: bytes) -> bool:
        """False only when `data` (UTF-8, or anything) cannot contain an entity: the hot-path prefilter."""
        return self.prefilter_bytes(data) is not None

    def prefilter_bytes(self, data: bytes) -> tuple[int, bool] | None:
        """None when `data` cannot contain an entity. Else (offset, numeric): no built-in entity's anchor lies
        before the byte offset (0 when a custom rule may match), and whether numeric entities are possible
        (pass it on to `find`)."""
        # numeric_possible, inlined: this is the per-value hot path.
        gate = self._gate_search
        numeric = gate is not None and gate(data.translate(P.SHAPE_TABLE)) is not None
        scan = self._scan_numeric if numeric else self._scan_plain
        if scan is not None:
            anchor = scan(data)
            if anchor is not None:
                return (0 if self._custom else anchor.start()), numeric
        if not self._custom:
            return None
        if data.isascii():
            for rule in self._custom:
                pattern = rule.bytes_pattern
                if pattern is None or pattern.search(data) is not None:
                    return 0, numeric
            return None
        # Non-ASCII: a custom rule's Unicode classes only mean the same thing on decoded text.
        text = data.decode("utf-8", "surrogateescape")
        if any(rule.text_pattern.search(text) is not None for rule in self._custom):
            return 0, numeric
        return None

    def next_anchor(self, data: bytes, start: int, numeric: bool) -> int | None:
        """Where the anchor scan next stops in `data` at or after `start` (numeric as `prefilter_bytes` said
        for all of `data`); `start` itself when custom rules make the scan no guide."""
        if self._custom:
            return start
        scan = self._scan_numeric if numeric else self._scan_plain
        anchor = scan(data, start) if scan is not None else None
        return None if anchor is None else anchor.start()

    @property
    def has_custom_rules(self) -> bool:
        """Custom rules are user regexes: they may cross the newlines that join values (`^`, `$`, `\\s`),
        where no built-in pattern does (a newline bounds a value as its start or end does)."""
        return bool(self._custom)

    def might_match_text(self, text: str) -> bool:
        scan = (self._with_numeric if self.numeric_possible_text(text) else self._without_numeric).text
        if scan is not None and scan.search(text) is not None:
            return True
        return any(rule.text_pattern.search(text) is not None for rule in self._custom)

    # --- detection ------------------------------------------------------------------------------------------

    def find(self, text: str, start: int = 0, numeric: bool | None = None) -> list[SpanTuple]:
        """Non-overlapping spans, in order. Overlapping detections are merged into one span (mask more).

        `start` is where the anchor scan begins: a caller that knows no anchor lies before it may skip ahead;
        custom rules always scan the whole text. `numeric` False skips the numeric entities (the gate ruled
        them out); None asks the gate."""
        if numeric is None:
            numeric = self.numeric_possible_text(text)
        spans: list[SpanTuple] = []
        scan = (self._with_numeric if numeric else self._without_numeric).text
        if scan is not None:
            handlers = self._handlers
            search = scan.search
            pos = start
            while (anchor := search(text, pos)) is not None:
                at = anchor.start()
                found = handlers[text[at]](text, at)
                if found is None:
                    pos = at + 1
                    continue
                if text.find("-----BEGIN", found[0], found[1]) != -1:
                    found = _cover_private_key(text, found)
                spans.append(found)
                pos = found[1] if found[1] > at else at + 1
        for rule in self._custom:
            for match in rule.text_pattern.finditer(text):
                if match.end() > match.start():
                    spans.append((match.start(), match.end(), rule.entity))
        if len(spans) > 1:
            spans = _merge(spans)
        return spans

    # --- anchor handlers: each returns (start, end, entity) or None -----------------------------------------

    def _at_sign(self, text: str, at: int) -> _Found | None:
        width = 1 if text[at] == "@" else 3  # '%40'
        if self._secret and width == 1:
            lo = at - _URL_LOOKBACK if at > _URL_LOOKBACK else 0
            if text.find("://", lo, at) != -1:
                userinfo = P.URL_USERINFO.search(text, lo, at)
                if userinfo is not None:
                    return userinfo.start("pw"), userinfo.end("pw"), SECRET
        if not self._email:
            return None
        position = at - _EMAIL_LOOKBACK if at > _EMAIL_LOOKBACK else 0
        if width == 1:
            # Where the leftmost search from `position` would start: the longest local part before the '@'
            # (no local part holds an '@'), found by one match on the reversed text; then one match there.
            local = P.EMAIL_LOCAL_REVERSED.match(text[position:at][::-1])
            if local is None:
                return None
            email = P.EMAIL_ADDRESS.match(text, at - local.end(), at + _EMAIL_LOOKBACK * 2)
            if email is None or email.start("at") != at:
                return None
        else:
            while True:  # the first address found may be an earlier one (a '%40' form): search on past it
                email = P.EMAIL_ADDRESS.search(text, position, at + _EMAIL_LOOKBACK * 2)
                if email is None or email.start("at") > at:
                    return None
                if email.start("at") == at:
                    break
                position = email.end("at")
        if not email["local"].strip(P.EMAIL_LOCAL_PUNCTUATION) or email["tld"].lower() in P.FILE_EXTENSIONS:
            return None
        return email.start(), email.end(), EMAIL

    def _pair(self, text: str, at: int) -> _Found | None:
        if text.startswith("//", at + 1):  # a URL scheme, not a key
            return None
        lo = at - _KEY_LOOKBACK if at > _KEY_LOOKBACK else 0
        key = P.SECRET_KEY_REVERSED.match(text[lo:at][::-1])
        if key is None or _inside_mask_token(text, at - key.end(), at):
            return None
        value = P.PAIR_VALUE.match(text, at + 1)
        if value is None:
            return None
        start, end = value.span(value.lastgroup or 0)
        if end <= start:
            return None
        content = text[start:end]
        if content.lower() in P.NON_SECRET_VALUES or P.MASK_TOKEN.fullmatch(content):
            return None
        return start, end, SECRET

    def _dash(self, text: str, at: int) -> _Found | None:
        if text.startswith("-----BEGIN", at):
            block = P.PRIVATE_KEY_BLOCK.match(text, at)
            return (at, block.end(), SECRET) if block is not None else None
        if at >= 4:
            slack = P.SLACK_TOKEN.match(text, at - 4)
            if slack is not None:
                return slack.start(), slack.end(), SECRET
        return None

    def _underscore(self, text: str, at: int) -> _Found | None:
        for start, pattern in ((at - 3, P.GITHUB_TOKEN), (at - 6, P.GITHUB_TOKEN), (at - 2, P.STRIPE_KEY)):
            if start >= 0:
                token = pattern.match(text, start)
                if token is not None:
                    return token.start(), token.end(), SECRET
        return None

    def _capital_a(self, text: str, at: int) -> _Found | None:
        key = P.AWS_ACCESS_KEY_ID.match(text, at) or P.GOOGLE_API_KEY.match(text, at)
        return (at, key.end(), SECRET) if key is not None else None

    def _jwt(self, text: str, at: int) -> _Found | None:
        if at < 2:
            return None
        token = P.JWT.match(text, at - 2)
        if token is None or not jwt_header_valid(token["header"]):
            return None
        return token.start(), token.end(), SECRET

    def _bearer(self, text: str, at: int) -> _Found | None:
        found = P.BEARER.match(text, at)
        if found is None:
            return None
        token = found["token"]
        # Prose ("the bearer instrument") has no digits or symbols; real tokens nearly always do.
        if len(token) < 8 or (
            len(token) < 20 and not any(ch.isdigit() or ch in P.BEARER_TOKEN_SYMBOLS for ch in token)
        ):
            return None
        return found.start("token"), found.end("token"), SECRET

    def _plus(self, text: str, at: int) -> _Found | None:
        candidate = P.INTL_PHONE_CANDIDATE.match(text, at)
        return _phone_in(candidate) if candidate is not None else None

    def _paren(self, text: str, at: int) -> _Found | None:
        # "(415) 555-2671", also with a leading "1", "1 " or "1-" trunk prefix.
        for start in (at - 2, at - 1, at):
            if start >= 0 and (start == at or text[start] == "1"):
                candidate = P.NANP_PHONE_CANDIDATE.match(text, start)
                if candidate is not None:
                    return _phone_in(candidate)
        return None

    def _digit(self, text: str, at: int) -> _Found | None:
        if self._ssn:
            ssn = P.US_SSN_CANDIDATE.match(text, at)
            if ssn is not None and ssn_valid(ssn.group()):
                return at, ssn.end(), US_SSN
        if self._cpf:
            cpf = P.BR_CPF_CANDIDATE.match(text, at)
            if cpf is not None and br_cpf_valid(cpf.group()):
                return at, cpf.end(), BR_CPF
        if self._card:
            card = P.CARD_CANDIDATE.match(text, at)
            if card is not None:
                length = card_length(card.group())
                if length is not None:
                    return at, at + length, CREDIT_CARD
        if self._nir:
            nir = P.FR_NIR_CANDIDATE.match(text, at)
            if nir is not None and fr_nir_valid(nir.group()):
                return at, nir.end(), FR_NIR
        if self._dni:
            dni = P.ES_DNI_CANDIDATE.match(text, at)
            if dni is not None and es_dni_valid(dni.group()):
                return at, dni.end(), ES_DNI
        if self._phone:
            nanp = P.NANP_PHONE_CANDIDATE.match(text, at)
            if nanp is not None:
                phone = _phone_in(nanp)
                if phone is not None:
                    return phone
        if at and text[at - 1] in _UPPER:
            return self._after_letters(text, at)
        if self._dni and at >= 2 and text[at - 1] == "-" and text[at - 2] in "XYZ":
            nie = P.ES_DNI_CANDIDATE.match(text, at - 2)
            if nie is not None and es_dni_valid(nie.group()):
                return nie.start(), nie.end(), ES_DNI
        return None

    def _after_letters(self, text: str, at: int) -> _Found | None:
        """Entities whose digits follow upper-case letters: IBAN, codice fiscale, NIE."""
        if self._iban and at >= 2:
            iban = P.IBAN_CANDIDATE.match(text, at - 2)
            if iban is not None:
                length = iban_length(iban.group())
                if length is not None:
                    return at - 2, at - 2 + length, IBAN
        if self._fiscal and at >= 6:
            code = P.IT_FISCAL_CODE_CANDIDATE.match(text, at - 6)
            if code is not None and it_fiscal_code_valid(code.group()):
                return code.start(), code.end(), IT_FISCAL_CODE
        if self._dni and text[at - 1] in "XYZ":
            nie = P.ES_DNI_CANDIDATE.match(text, at - 1)
            if nie is not None and es_dni_valid(nie.group()):
                return nie.start(), nie.end(), ES_DNI
        return None


def _phone_in(candidate: re.Match[str]) -> _Found | None:
    found = phone_span(candidate.group())
    if found is None:
        return None
    return candidate.start() + found[0], candidate.start() + found[1], PHONE


def _cover_private_key(text: str, found: _Found) -> _Found:
    """Stretch a span that holds the start of a private-key block (`PRIVATE_KEY="-----BEGIN ...`) over the
    whole block: a value pattern stops at the first newline, the key material goes on past it."""
    start, end, entity = found
    begin = text.find("-----BEGIN", start, end)
    block = P.PRIVATE_KEY_BLOCK.match(text, begin)
    return (start, max(end, block.end()), entity) if block is not None else found


def _inside_mask_token(text: str, key_start: int, at: int) -> bool:
    """True when the key before a ':' is part of a token this package wrote ("[SECRET:0123456789ab]")."""
    lo = key_start - _TOKEN_LOOKBACK if key_start > _TOKEN_LOOKBACK else 0
    bracket = text.rfind("[", lo, key_start)
    if bracket == -1:
        return False
    token = P.MASK_TOKEN.match(text, bracket)
    return token is not None and token.end() > at


def _merge(spans: list[SpanTuple]) -> list[SpanTuple]:
    spans.sort()
    merged = [spans[0]]
    for span in spans[1:]:
        start, end, entity = merged[-1]
        if span[0] < end:
            if span[1] > end:
                merged[-1] = (start, span[1], entity)
        else:
            merged.append(span)
    return merged
