"""Masking strategies (redact, partial, keyed hash) and how a detected value is rewritten under each."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers

from proxy.masking.entities import (
    BR_CPF,
    CREDIT_CARD,
    EMAIL,
    ES_DNI,
    FR_NIR,
    IBAN,
    IT_FISCAL_CODE,
    PHONE,
    US_SSN,
    mask_token,
)

StrategyKind = Literal["redact", "partial", "hash"]
_KINDS: frozenset[str] = frozenset({"redact", "partial", "hash"})

# Entities whose separators carry no meaning: "4242 4242 4242 4242" and "4242424242424242" must hash alike.
_COMPACT_ENTITIES = frozenset({CREDIT_CARD, US_SSN, IBAN, ES_DNI, IT_FISCAL_CODE, FR_NIR, BR_CPF})
# The character partial masking puts in place of a hidden one.
MASK_CHAR = "*"
HASH_HEX_CHARS = 12


@dataclass(frozen=True, slots=True)
class Strategy:
    """How one entity is masked: "redact" -> "[EMAIL]", "partial" keeps the last `keep_last` characters,
    "hash" -> "[EMAIL:<12 hex of HMAC-SHA256>]" so equal values stay joinable without being revealed."""

    kind: StrategyKind
    keep_last: int = 4

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"masking strategy {self.kind!r} is not one of redact, partial, hash")
        if not isinstance(self.keep_last, int) or self.keep_last < 0:
            raise ValueError(
                f"masking strategy keep_last must be a non-negative integer, not {self.keep_last!r}"
            )


REDACT = Strategy("redact")


def parse_strategy(text: str) -> Strategy:
    """Parse a policy strategy: "redact", "hash", "partial" or "partial:<N>"."""
    kind, _, argument = text.strip().lower().partition(":")
    if kind == "partial" and argument:
        if not argument.isdigit():
            raise ValueError(f"masking strategy {text!r}: 'partial:N' needs a whole number N")
        return Strategy("partial", int(argument))
    if argument:
        raise ValueError(f"masking strategy {text!r} takes no argument")
    return Strategy(kind)  # type: ignore[arg-type]  # validated in __post_init__


def apply_strategy(entity: str, value: str, strategy: Strategy, secret: bytes) -> str:
    """The replacement for `value`, a detected `entity`, under `strategy`."""
    if strategy.kind == "redact":
        return mask_token(entity)
    if strategy.kind == "partial":
        return partial_mask(value, strategy.keep_last)
    if not secret:
        # An unkeyed hash of a phone number or an SSN is reversed by enumerating the space: refuse.
        raise ValueError("the hash masking strategy needs a non-empty gateway secret")
    digest = hmac.new(secret, f"{entity}|{_canonical(entity, value)}".encode(), hashlib.sha256).hexdigest()
    return "[" + entity.upper() + ":" + digest[:HASH_HEX_CHARS] + "]"


def partial_mask(value: str, keep_last: int) -> str:
    """Hide every letter and digit but the last `keep_last`, keeping separators: "**** **** **** 4242".

    Never reveals more than half of the maskable characters, so a short secret is not shown whole. A `*`
    counts as maskable, which makes masking an already partially masked value a no-op."""
    maskable = sum(1 for ch in value if ch.isalnum() or ch == MASK_CHAR)
    keep = min(keep_last, maskable // 2)
    hide = maskable - keep
    out: list[str] = []
    for ch in value:
        if hide and (ch.isalnum() or ch == MASK_CHAR):
            out.append(MASK_CHAR)
            hide -= 1
        else:
            out.append(ch)
    return "".join(out)


def _canonical(entity: str, value: str) -> str:
    """The form of a value that is hashed, so that two spellings of one value hash alike."""
    if entity == EMAIL:
        return value.strip().lower()
    if entity == PHONE:
        return _canonical_phone(value)
    if entity in _COMPACT_ENTITIES:
        return "".join(ch for ch in value if ch.isalnum()).upper()
    return value


@lru_cache(maxsize=4096)
def _canonical_phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in value if ch.isdigit())
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
