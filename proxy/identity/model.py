"""The verified identity of a caller, the single token-rejection error, and the key-source protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

PUBLIC_REJECTION_MESSAGE = "invalid or expired token"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for; built only by the verifier."""

    subject: str
    groups: tuple[str, ...]
    issuer: str
    expires_at: float
    token_id: str | None
    # Nested containers are frozen too (see freeze_claims); excluded from the hash because
    # mapping proxies are unhashable, but still part of equality.
    claims: Mapping[str, Any] = field(hash=False)


class TokenRejected(Exception):
    """A token was refused. ``str()`` is the public message, identical for every failure kind,
    so a client learns nothing about why; ``detail`` is for the gateway's own log and never
    contains the token."""

    public_message: str = PUBLIC_REJECTION_MESSAGE

    def __init__(self, detail: str) -> None:
        super().__init__(PUBLIC_REJECTION_MESSAGE)
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(detail={self.detail!r})"


class KeySourceUnavailable(TokenRejected):
    """The issuer's keys could not be obtained (network, bad discovery or JWKS document). The client
    still sees the same public message; the gateway may alert on this kind separately."""


class KeySource(Protocol):
    """Anything that can hand out the verification key for a token header's ``kid`` and ``alg``."""

    async def key_for(self, kid: str | None, alg: str) -> Any: ...


def freeze_claims(value: Any) -> Any:
    """A deep read-only copy of decoded JSON: objects become mapping proxies, arrays tuples."""
    if isinstance(value, dict):
        return MappingProxyType({key: freeze_claims(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze_claims(item) for item in value)
    return value
