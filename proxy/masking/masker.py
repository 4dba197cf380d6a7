"""The Masker: one policy's entities, strategies and custom rules, applied to text, bytes and JSON."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from proxy.masking import jsonmask
from proxy.masking import patterns as P
from proxy.masking.detect import Detector, Span, SpanTuple, compile_custom_rules
from proxy.masking.entities import EMAIL, is_known_entity, mask_token, resolve_entities
from proxy.masking.escapes import mask_escaped
from proxy.masking.strategies import REDACT, Strategy, apply_strategy

Counts = dict[str, int]

# A detection glued to other text ("+1 415 555 2671eyJhbGci...") can hide a neighbour whose boundary check saw
# the glued character; once masked, the neighbour sees a token bracket instead. Such texts are masked again,
# up to this many passes, so that masking is idempotent: what comes out holds nothing more to mask.
_MAX_PASSES = 4
# Characters that end a value in text: a span bounded by these on both sides changes nothing for its
# neighbours.
_SEPARATORS = frozenset(" \t\r\n\"'<>)[]{},;:=|/`@")  # not '(': "(415) 555-2671" starts with it

# Undecodable bytes survive a decode/encode round trip unchanged (PEP 383), and decoding a concatenation gives
# the concatenation of the decodings, so masking never depends on how the bytes were cut into values or
# packets.
_DECODE_ERRORS = "surrogateescape"


class Masker:
    """Detects the policy's entities and rewrites them with the strategy chosen per entity.

    Build one per policy and reuse it: construction compiles the scan, masking only runs it."""

    def __init__(
        self,
        entities: Iterable[str],
        *,
        strategies: Mapping[str, Strategy] | None = None,
        secret: bytes = b"",
        custom_rules: Mapping[str, str] | None = None,
        default_strategy: Strategy = REDACT,
    ) -> None:
        rules = dict(custom_rules or {})
        self._entities = resolve_entities(entities, rules)
        self._detector = Detector(self._entities, compile_custom_rules(rules))
        self._strategies = dict(strategies or {})
        for entity, strategy in self._strategies.items():
            if not is_known_entity(entity, rules):
                raise ValueError(f"masking strategy given for unknown entity {entity!r}")
            if not isinstance(strategy, Strategy):
                raise ValueError(f"masking strategy for {entity!r} must be a Strategy, not {strategy!r}")
        uses_hash = default_strategy.kind == "hash" or any(
            s.kind == "hash" for s in self._strategies.values()
        )
        if uses_hash and not secret:
            raise ValueError("the hash masking strategy needs a non-empty gateway secret")
        self._default = default_strategy
        self._secret = bytes(secret)
        self._tokens: dict[str, str] = {}
        # Custom rules could match inside an address: the whole-address shortcut is only taken without any.
        self._whole_email = EMAIL in self._entities and not rules
        # A redacted address does not depend on the address: its bytes are computed once.
        self._redacted_email: bytes | None = (
            self.replacement(EMAIL, "").encode("ascii") if self.strategy_for(EMAIL).kind == "redact" else None
        )

    @property
    def enabled(self) -> bool:
        """False when no entity is enabled: callers skip all masking work."""
        return bool(self._entities)

    @property
    def entities(self) -> frozenset[str]:
        return self._entities

    @property
    def has_custom_rules(self) -> bool:
        return self._detector.has_custom_rules

    def strategy_for(self, entity: str) -> Strategy:
        return self._strategies.get(entity, self._default)

    def replacement(self, entity: str, value: str) -> str:
        """What `value`, a detected or rule-named `entity`, is replaced with."""
        strategy = self._strategies.get(entity, self._default)
        if strategy.kind == "redact":
            token = self._tokens.get(entity)
            if token is None:
                token = self._tokens[entity] = mask_token(entity)
            return token
        return apply_strategy(entity, value, strategy, self._secret)

    # --- text and bytes -------------------------------------------------------------------------------------

    def mask_text(self, text: str) -> tuple[str, Counts]:
        """`text` with every detected entity replaced, and how many of each were replaced."""
        if not self._entities:
            return text, {}
        if self._whole_email and text.isascii():
            whole = P.WHOLE_EMAIL_TEXT.fullmatch(text)
            if whole is not None and _plausible_address(whole):
                return self.replacement(EMAIL, text), {EMAIL: 1}
        spans = self._detector.find(text)
        masked, counts = self._render_passes(text, spans) if spans else (text, {})
        if "\\" in masked:
            return self._escaped_pass(masked, counts)
        return masked, counts

    def _escaped_pass(self, text: str, counts: Counts) -> tuple[str, Counts]:
        """Values spelled through backslash escapes (see escapes.py), after the plain reading."""
        escaped = mask_escaped(text, self._detector.find, self.replacement)
        if escaped is None:
            return text, counts
        return escaped[0], merge_counts(dict(counts), escaped[1])

    def mask_bytes(self, data: bytes) -> tuple[bytes, Counts] | None:
        """Mask UTF-8 bytes; None when nothing was found. Clean input is rejected by one scan over the raw
        bytes, without decoding. Invalid UTF-8 is kept byte for byte outside what gets masked."""
        if not self._entities:
            return None
        if type(data) is not bytes:
            data = bytes(data)
        if self._whole_email and b"@" in data:
            # An email column: one fullmatch says it all (an address always passes the prefilter).
            whole = self._whole_address(data)
            if whole is not None:
                return whole
        found = self._detector.prefilter_bytes(data)
        if found is None:
            if b"\\" not in data:
                return None
            found = (0, True)  # an escape may spell an anchor the prefilter cannot see
        return self.mask_candidate(data, *found)

    def _whole_address(self, data: bytes) -> tuple[bytes, Counts] | None:
        """The masked value when `data` is one plausible ASCII address and nothing else."""
        if not data.isascii():
            return None
        whole = P.WHOLE_EMAIL_BYTES.fullmatch(data)
        if whole is None:
            return None
        # _plausible_address, inlined: this runs once per address of an email column.
        local, tld = whole.group("local", "tld")
        if not local.strip(_LOCAL_PUNCTUATION_BYTES) or tld.lower() in _FILE_EXTENSIONS_BYTES:
            return None
        token = self._redacted_email
        if token is None:
            token = self.replacement(EMAIL, data.decode("ascii")).encode("ascii")
        return token, {EMAIL: 1}

    def mask_candidate(
        self, data: bytes, first: int = 0, numeric: bool = True
    ) -> tuple[bytes, Counts] | None:
        """`mask_bytes` for a value the prefilter already passed: no anchor before byte `first`, and numeric
        entities possible only if `numeric`."""
        if self._whole_email:
            whole = self._whole_address(data)
            if whole is not None:
                return whole
        text = data.decode("utf-8", _DECODE_ERRORS)
        # Byte offsets are character offsets only in ASCII text.
        spans = self._detector.find(text, first if first and len(text) == len(data) else 0, numeric)
        masked, counts = self._render_passes(text, spans) if spans else (text, {})
        if "\\" in masked:
            masked, counts = self._escaped_pass(masked, counts)
        if not counts:
            return None
        return masked.encode("utf-8", _DECODE_ERRORS), counts

    def might_match_bytes(self, data: bytes) -> bool:
        """The prefilter alone: False means `data` holds nothing to mask."""
        return bool(self._entities) and (self._detector.might_match_bytes(data) or b"\\" in data)

    def prefilter_joined(self, data: bytes) -> tuple[int, bool] | None:
        """The prefilter over several values joined by newlines: None when none of them holds an entity, else
        (offset, numeric): no value ends before the offset holds one, and whether numeric entities are
        possible in any. With custom rules (user regexes may cross the joins) always (0, True)."""
        if not self._entities:
            return None
        if self._detector.has_custom_rules:
            return 0, True
        return self._detector.prefilter_bytes(data)

    def next_anchor_joined(self, data: bytes, start: int, numeric: bool) -> int | None:
        """After `prefilter_joined`: the next offset at or after `start` where a value may hold an entity."""
        return self._detector.next_anchor(data, start, numeric)

    def might_match_text(self, text: str) -> bool:
        return bool(self._entities) and self._detector.might_match_text(text)

    # --- JSON -----------------------------------------------------------------------------------------------

    def mask_json_text(self, text: str) -> tuple[str, Counts]:
        """Mask inside the string values (and keys) of a JSON document, keeping it valid JSON. The value of a
        key named like a secret ("password", "api_key", ...) is masked whole."""
        if not self._entities:
            return text, {}
        return jsonmask.mask_json(self, text)

    def mask_json_bytes(self, data: bytes) -> tuple[bytes, Counts] | None:
        """`mask_json_text` for UTF-8 bytes; None when nothing was found."""
        if not self._entities:
            return None
        if not self._detector.might_match_bytes(data) and b"\\u" not in data:
            return None
        masked, counts = jsonmask.mask_json(self, bytes(data).decode("utf-8", _DECODE_ERRORS))
        if not counts:
            return None
        return masked.encode("utf-8", _DECODE_ERRORS), counts

    # --- rendering ------------------------------------------------------------------------------------------

    def render(self, text: str, spans: list[SpanTuple]) -> tuple[str, Counts]:
        """Replace non-overlapping, ordered `spans` of `text`; counts only replacements that changed something
        (an already partially masked value is found again, but not counted again)."""
        pieces: list[str] = []
        counts: Counts = {}
        last = 0
        for start, end, entity in spans:
            original = text[start:end]
            replacement = self.replacement(entity, original)
            pieces.append(text[last:start])
            pieces.append(replacement)
            if replacement != original:
                counts[entity] = counts.get(entity, 0) + 1
            last = end
        pieces.append(text[last:])
        return "".join(pieces), counts

    def _render_passes(self, text: str, spans: list[SpanTuple]) -> tuple[str, Counts]:
        masked, counts = self.render(text, spans)
        passes = 1
        while passes < _MAX_PASSES and _glued(text, spans):
            text = masked
            spans = self._detector.find(text)
            if not spans:
                break
            masked, more = self.render(text, spans)
            if not more:
                break
            merge_counts(counts, more)
            passes += 1
        return masked, counts

    def find(self, text: str) -> list[Span]:
        """The spans `mask_text` would replace."""
        return [Span(*span) for span in self._detector.find(text)] if self._entities else []


def _plausible_address(whole: re.Match[str] | re.Match[bytes]) -> bool:
    """The checks the email detector makes beyond its pattern: not all punctuation, not an image name."""
    local, tld = whole.group("local", "tld")
    if isinstance(local, bytes):
        return bool(local.strip(_LOCAL_PUNCTUATION_BYTES)) and tld.lower() not in _FILE_EXTENSIONS_BYTES
    return bool(local.strip(P.EMAIL_LOCAL_PUNCTUATION)) and tld.lower() not in P.FILE_EXTENSIONS


_LOCAL_PUNCTUATION_BYTES = P.EMAIL_LOCAL_PUNCTUATION.encode("ascii")
_FILE_EXTENSIONS_BYTES = frozenset(extension.encode("ascii") for extension in P.FILE_EXTENSIONS)


def _glued(text: str, spans: list[SpanTuple]) -> bool:
    """True when a span touches a character that could belong to a neighbouring entity."""
    size = len(text)
    for start, end, _ in spans:
        if (start and text[start - 1] not in _SEPARATORS) or (end < size and text[end] not in _SEPARATORS):
            return True
    return False


def merge_counts(into: Counts, more: Mapping[str, int]) -> Counts:
    """Add `more` to `into` in place and return it."""
    for entity, count in more.items():
        into[entity] = into.get(entity, 0) + count
    return into
