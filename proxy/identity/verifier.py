"""Token verification: picks the trusted issuer, checks signature and claims, returns an Identity."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwt import JWTClaimsRegistry

from proxy.identity.algorithms import ALLOWED_ALGORITHMS, FORBIDDEN_HEADER_PARAMETERS, REGISTRIES
from proxy.identity.local_issuer import LocalIssuer
from proxy.identity.model import Identity, KeySource, TokenRejected, freeze_claims
from proxy.identity.oidc import OidcKeySource

LOCAL_ISSUER_NAME = "local"
MAX_TOKEN_BYTES = 16 * 1024
_BASE64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")
_MISSING = object()


@dataclass(frozen=True)
class IssuerConfig:
    """One issuer the gateway trusts: ``"local"`` or an https issuer URL with OIDC discovery."""

    issuer: str
    audience: str = "hoop"
    groups_claim: str = "groups"
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class _TrustedIssuer:
    iss: str
    config: IssuerConfig
    keys: KeySource
    claims_rules: JWTClaimsRegistry


class TokenVerifier:
    """Verifies bearer JWTs against every configured issuer; safe to share across sessions.

    Decisions worth knowing:
    - Only compact JWS tokens signed with RS256, ES256 or EdDSA are accepted; JWE (5-part) tokens,
      ``none``, HS*, critical or unencoded-payload headers are refused before any key is looked up.
    - ``exp``, ``sub``, ``iss`` and ``aud`` are required; ``nbf`` and ``iat`` are checked when
      present; time checks allow ``leeway_seconds`` of clock skew.
    - The groups claim is required (policy matching needs groups; an explicit empty list is
      accepted). A list of strings is the normal form. A single string is taken as ONE group name
      and never split (on commas or spaces): splitting could manufacture group names the issuer
      never asserted, e.g. a group called "ops,admins" would otherwise grant "admins".
    - The claim name is looked up as-is first (Auth0-style namespaced names contain dots), then as
      a dotted path into nested objects (Keycloak-style ``realm_access.roles``).
    - Subject and group names with control characters are refused: they end up in logs, the audit
      trail and the console.
    - Every failure raises TokenRejected with the same public message; the detail never holds the
      token.
    """

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        state_dir: Path,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuers:
            raise ValueError("at least one trusted issuer is required")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        self._clock = clock
        self._leeway = leeway_seconds
        self.local_issuer: LocalIssuer | None = None
        self._trusted: dict[str, _TrustedIssuer] = {}
        for config in issuers:
            _check_issuer_config(config)
            keys: KeySource
            if config.issuer == LOCAL_ISSUER_NAME:
                if self.local_issuer is None:
                    self.local_issuer = LocalIssuer.load_or_create(state_dir)
                iss, keys = self.local_issuer.issuer, self.local_issuer
            else:
                # The wall clock also paces JWKS re-fetches, so one injected clock drives all timing.
                iss, keys = config.issuer, OidcKeySource(config.issuer, ca_file=config.ca_file, clock=clock)
            if iss in self._trusted:
                raise ValueError(f"issuer {config.issuer!r} is configured more than once")
            self._trusted[iss] = _TrustedIssuer(iss, config, keys, self._claims_rules(iss, config.audience))

    @property
    def trusted_issuers(self) -> tuple[str, ...]:
        """The exact ``iss`` values accepted (the local issuer appears as its urn)."""
        return tuple(self._trusted)

    async def verify(self, token: str) -> Identity:
        """The identity a token proves, or TokenRejected."""
        try:
            return await self._verify(token)
        except TokenRejected:
            raise
        except Exception as error:
            # Fail closed on anything unforeseen; `from None` keeps the token-bearing context
            # (decoder state, arguments) out of any traceback a caller might log.
            raise TokenRejected(f"unexpected {type(error).__name__} during verification") from None

    async def _verify(self, token: str) -> Identity:
        if not isinstance(token, str):
            raise TokenRejected("token is not a string")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected(f"token longer than {MAX_TOKEN_BYTES} bytes")
        segments = token.strip().split(".")
        if len(segments) == 5 and segments[0]:
            raise TokenRejected("encrypted (JWE) tokens are not accepted")
        if len(segments) != 3 or not all(_BASE64URL_SEGMENT.match(segment) for segment in segments):
            raise TokenRejected("not a compact JWS")
        header = _decode_json_segment(segments[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {_short(alg)} is not allowed")
        forbidden = sorted(FORBIDDEN_HEADER_PARAMETERS & header.keys())
        if forbidden:
            raise TokenRejected(f"header parameters not supported: {', '.join(forbidden)}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("kid is not a string")

        # The unverified iss only chooses whose keys to try; it is checked again once signed.
        iss = _decode_json_segment(segments[1], "payload").get("iss")
        trusted = self._trusted.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise TokenRejected(f"issuer {_short(iss)} is not trusted")
        key = await trusted.keys.key_for(kid, alg)
        claims = _verified_claims(".".join(segments), key, alg)
        _check_claims(claims, trusted.claims_rules)
        subject = claims["sub"]
        _refuse_control_characters(subject, "subject")
        groups = _extract_groups(claims, trusted.config.groups_claim)
        token_id = claims.get("jti")
        return Identity(
            subject=subject,
            groups=groups,
            issuer=trusted.iss,
            expires_at=float(claims["exp"]),
            token_id=token_id if isinstance(token_id, str) else None,
            claims=freeze_claims(claims),
        )

    def _claims_rules(self, iss: str, audience: str) -> JWTClaimsRegistry:
        return JWTClaimsRegistry(
            now=self._clock,  # type: ignore[arg-type]  # float seconds compare fine with NumericDates
            leeway=self._leeway,  # type: ignore[arg-type]
            iss={"essential": True, "value": iss},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )


def _check_issuer_config(config: IssuerConfig) -> None:
    if not isinstance(config.issuer, str) or not config.issuer:
        raise ValueError("issuer must be 'local' or an issuer URL")
    if not isinstance(config.audience, str) or not config.audience:
        raise ValueError(f"audience for issuer {config.issuer!r} must be a non-empty string")
    if not isinstance(config.groups_claim, str) or not config.groups_claim:
        raise ValueError(f"groups_claim for issuer {config.issuer!r} must be a non-empty string")


def _decode_json_segment(segment: str, what: str) -> Mapping[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRejected(f"{what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"{what} is not a JSON object")
    return value


def _verified_claims(token: str, key: Any, alg: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, key, registry=REGISTRIES[alg]).claims
    except BadSignatureError:
        raise TokenRejected("bad signature") from None
    except (JoseError, ValueError, RecursionError) as error:
        raise TokenRejected(f"token refused by the JOSE layer: {type(error).__name__}") from None


def _check_claims(claims: dict[str, Any], rules: JWTClaimsRegistry) -> None:
    try:
        rules.validate(claims)
    except ExpiredTokenError:
        raise TokenRejected("token expired") from None
    except MissingClaimError as error:
        raise TokenRejected(f"required claim missing: {error.description}") from None
    except JoseError as error:
        # joserfc's descriptions name the claim and the rule, never the claim's value.
        raise TokenRejected(f"claim check failed: {error.description}") from None


def _extract_groups(claims: Mapping[str, Any], claim_name: str) -> tuple[str, ...]:
    value = _lookup_claim(claims, claim_name)
    if value is _MISSING or value is None:
        raise TokenRejected(f"groups claim {claim_name!r} missing")
    if isinstance(value, str):
        groups: tuple[str, ...] = (value,)
    elif isinstance(value, list) and all(isinstance(group, str) for group in value):
        groups = tuple(value)
    else:
        raise TokenRejected(f"groups claim {claim_name!r} is not a string or a list of strings")
    for group in groups:
        if not group:
            raise TokenRejected("empty group name")
        _refuse_control_characters(group, "group name")
    return tuple(dict.fromkeys(groups))


def _lookup_claim(claims: Mapping[str, Any], claim_name: str) -> Any:
    if claim_name in claims:
        return claims[claim_name]
    value: Any = claims
    for part in claim_name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _refuse_control_characters(text: str, what: str) -> None:
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise TokenRejected(f"{what} contains control characters")


def _short(value: object) -> str:
    """A bounded, escaped rendering of an attacker-chosen value for the log detail."""
    rendered = repr(value)
    return rendered if len(rendered) <= 80 else rendered[:77] + "..."
