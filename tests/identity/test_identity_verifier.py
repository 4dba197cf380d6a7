"""TokenVerifier end to end: valid tokens from OIDC and local issuers, and forged or broken ones refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.identity.model import PUBLIC_REJECTION_MESSAGE, Identity, KeySourceUnavailable, TokenRejected
from proxy.identity.verifier import MAX_TOKEN_BYTES, IssuerConfig, TokenVerifier
from tests.identity.manual_clock import ManualClock
from tests.identity.oidc_provider import OidcProvider, ProviderKey, b64url, compact_jws


def _verifier(provider: OidcProvider, tmp_path: Path, clock: ManualClock, **config: str) -> TokenVerifier:
    return TokenVerifier([IssuerConfig(provider.issuer, **config)], state_dir=tmp_path, clock=clock)


async def _rejected(verifier: TokenVerifier, token: str) -> TokenRejected:
    with pytest.raises(TokenRejected) as caught:
        await verifier.verify(token)
    return caught.value


# -- accepted tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("kty", ["RSA", "EC", "OKP"])
async def test_valid_tokens_are_accepted(tmp_path: Path, clock: ManualClock, kty: str) -> None:
    with OidcProvider(("RSA", "EC", "OKP")) as provider:
        verifier = _verifier(provider, tmp_path, clock)
        claims = provider.claims("ci-bot", ["ci-agents", "readers"], now=clock.now, ttl=600, email="b@x.io")
        identity = await verifier.verify(provider.mint(claims, key=kty))

    assert identity == Identity(
        subject="ci-bot",
        groups=("ci-agents", "readers"),
        issuer=provider.issuer,
        expires_at=float(claims["exp"]),
        token_id=claims["jti"],
        claims=identity.claims,
    )
    assert identity.claims["email"] == "b@x.io"
    assert identity.claims["groups"] == ("ci-agents", "readers")


async def test_audience_may_be_a_list(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    token = oidc_provider.mint(oidc_provider.claims(audience=["other-api", "hoop"], now=clock.now))
    assert (await verifier.verify(token)).subject == "agent-1"


async def test_configured_audience_and_groups_claim(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock, audience="gateway-prod", groups_claim="roles")
    claims = oidc_provider.claims(groups=None, audience="gateway-prod", now=clock.now, roles=["oncall"])
    assert (await verifier.verify(oidc_provider.mint(claims))).groups == ("oncall",)
    hoop_audience = oidc_provider.claims(groups=None, now=clock.now, roles=["oncall"])
    assert "aud" in (await _rejected(verifier, oidc_provider.mint(hoop_audience))).detail


async def test_groups_string_is_one_group_never_split(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    token = oidc_provider.mint(oidc_provider.claims(groups="ops,admins", now=clock.now))
    assert (await verifier.verify(token)).groups == ("ops,admins",)


async def test_groups_empty_list_accepted_and_duplicates_collapsed(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    assert (
        await verifier.verify(oidc_provider.mint(oidc_provider.claims(groups=[], now=clock.now)))
    ).groups == ()
    doubled = oidc_provider.claims(groups=["a", "b", "a"], now=clock.now)
    assert (await verifier.verify(oidc_provider.mint(doubled))).groups == ("a", "b")


async def test_groups_claim_by_exact_name_then_dotted_path(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    namespaced = "https://hoop.example.com/groups"
    by_name = _verifier(oidc_provider, tmp_path, clock, groups_claim=namespaced)
    claims = oidc_provider.claims(groups=None, now=clock.now, **{namespaced: ["auditors"]})
    assert (await by_name.verify(oidc_provider.mint(claims))).groups == ("auditors",)

    by_path = _verifier(oidc_provider, tmp_path, clock, groups_claim="realm_access.roles")
    nested = oidc_provider.claims(groups=None, now=clock.now, realm_access={"roles": ["oncall", "dba"]})
    assert (await by_path.verify(oidc_provider.mint(nested))).groups == ("oncall", "dba")


async def test_claims_are_a_read_only_copy(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    claims = oidc_provider.claims(now=clock.now, extra={"nested": [1, 2]})
    identity = await verifier.verify(oidc_provider.mint(claims))
    with pytest.raises(TypeError):
        identity.claims["sub"] = "root"  # type: ignore[index]
    with pytest.raises(TypeError):
        identity.claims["extra"]["nested"] = []  # type: ignore[index]
    assert identity.claims["extra"]["nested"] == (1, 2)
    assert hash(identity) == hash(identity)  # usable as a dict key despite the mapping


async def test_leeway_applies_to_exp_nbf_and_iat(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = TokenVerifier(
        [IssuerConfig(oidc_provider.issuer)], state_dir=tmp_path, clock=clock, leeway_seconds=30
    )
    now = clock.now
    just_expired = oidc_provider.claims(now=now - 320, ttl=300)  # exp = now - 20
    assert (await verifier.verify(oidc_provider.mint(just_expired))).subject == "agent-1"
    early = oidc_provider.claims(now=now + 20)  # nbf and iat 20 s ahead
    assert (await verifier.verify(oidc_provider.mint(early))).subject == "agent-1"

    long_expired = oidc_provider.claims(now=now - 340, ttl=300)  # exp = now - 40
    assert (await _rejected(verifier, oidc_provider.mint(long_expired))).detail == "token expired"


async def test_key_rotation_new_kid_is_fetched_and_accepted(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    old_key = oidc_provider.key("RSA")
    await verifier.verify(oidc_provider.mint(oidc_provider.claims(now=clock.now), key=old_key))
    assert oidc_provider.jwks_requests == 1

    new_key = oidc_provider.rotate("RSA")
    clock.advance(31)  # past the re-fetch interval; well inside the cache lifetime
    identity = await verifier.verify(oidc_provider.mint(oidc_provider.claims(now=clock.now), key=new_key))
    assert identity.subject == "agent-1"
    assert oidc_provider.jwks_requests == 2

    # The retired key is gone from the refreshed JWKS, so its tokens no longer verify.
    retired = oidc_provider.mint(oidc_provider.claims(now=clock.now), key=old_key)
    assert "unknown kid" in (await _rejected(verifier, retired)).detail


async def test_concurrent_first_verifications_fetch_once(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    oidc_provider.jwks_delay = 0.1
    verifier = _verifier(oidc_provider, tmp_path, clock)
    tokens = [oidc_provider.mint(oidc_provider.claims(f"agent-{n}", now=clock.now)) for n in range(30)]
    identities = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert [identity.subject for identity in identities] == [f"agent-{n}" for n in range(30)]
    assert (oidc_provider.discovery_requests, oidc_provider.jwks_requests) == (1, 1)


async def test_several_issuers_trusted_at_once(tmp_path: Path, clock: ManualClock) -> None:
    with OidcProvider(("RSA",)) as first, OidcProvider(("EC",)) as second:
        verifier = TokenVerifier(
            [
                IssuerConfig("local"),
                IssuerConfig(first.issuer),
                IssuerConfig(second.issuer, audience="hoop-b"),
            ],
            state_dir=tmp_path,
            clock=clock,
        )
        assert verifier.local_issuer is not None
        local = verifier.local_issuer.mint("me", ["ops"], audience="hoop", ttl_seconds=60)
        from_first = first.mint(first.claims("a", now=clock.now))
        from_second = second.mint(second.claims("b", audience="hoop-b", now=clock.now), key="EC")

        assert (await verifier.verify(local)).issuer == verifier.local_issuer.issuer
        assert (await verifier.verify(from_first)).issuer == first.issuer
        assert (await verifier.verify(from_second)).issuer == second.issuer
        assert set(verifier.trusted_issuers) == {verifier.local_issuer.issuer, first.issuer, second.issuer}

        # The first issuer's key cannot vouch for a token claiming to come from the second.
        cross = first.mint(second.claims("b", audience="hoop-b", now=clock.now))
        assert (await _rejected(verifier, cross)).detail.startswith("unknown kid")


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        TokenVerifier([], state_dir=tmp_path)
    with pytest.raises(ValueError, match="more than once"):
        TokenVerifier([IssuerConfig("local"), IssuerConfig("local")], state_dir=tmp_path)
    with pytest.raises(ValueError, match="https"):
        TokenVerifier([IssuerConfig("http://idp.example.com")], state_dir=tmp_path)
    with pytest.raises(ValueError, match="audience"):
        TokenVerifier([IssuerConfig("local", audience="")], state_dir=tmp_path)
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier([IssuerConfig("local")], state_dir=tmp_path, leeway_seconds=-1)


def test_local_issuer_key_is_created_only_when_local_is_trusted(tmp_path: Path) -> None:
    TokenVerifier([IssuerConfig("https://idp.example.com")], state_dir=tmp_path / "oidc-only")
    assert not (tmp_path / "oidc-only").exists()
    TokenVerifier([IssuerConfig("local")], state_dir=tmp_path / "with-local")
    assert (tmp_path / "with-local" / "keys" / "issuer.key").exists()


# -- forged and broken tokens ----------------------------------------------------------------------

Forgery = Callable[[OidcProvider, float], str]


def _with_payload(token: str, payload: dict[str, object]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


def _hs256_with_public_key(provider: OidcProvider, now: float) -> str:
    rsa_key = provider.key("RSA")
    return compact_jws({"alg": "HS256", "kid": rsa_key.kid}, provider.claims(now=now), rsa_key.public_pem())


def _hs256_with_public_jwk(provider: OidcProvider, now: float) -> str:
    rsa_key = provider.key("RSA")
    secret = json.dumps(rsa_key.public_jwk()).encode()
    return compact_jws({"alg": "HS256", "kid": rsa_key.kid}, provider.claims(now=now), secret)


def _signed_by_stranger(provider: OidcProvider, now: float) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return provider.mint(provider.claims(now=now), signing_key=stranger)


def _embedded_attacker_jwk(provider: OidcProvider, now: float) -> str:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = ProviderKey("attacker", "RSA", "RS256", private_key)
    header = {"alg": "RS256", "kid": key.kid, "jwk": key.public_jwk(), "jku": "http://127.0.0.1:9/jwks"}
    return compact_jws(header, provider.claims(now=now), key.private_key)


def _kid_of_ec_key_with_rs256(provider: OidcProvider, now: float) -> str:
    return provider.mint(provider.claims(now=now), key="RSA", header={"kid": provider.key("EC").kid})


def _tampered_payload(provider: OidcProvider, now: float) -> str:
    genuine = provider.mint(provider.claims(now=now))
    return _with_payload(genuine, provider.claims(groups=["admins"], now=now))


def _expired(provider: OidcProvider, now: float) -> str:
    return provider.mint(provider.claims(now=now - 3600, ttl=600))


def _oversized(provider: OidcProvider, now: float) -> str:
    return provider.mint(provider.claims(now=now, padding="x" * MAX_TOKEN_BYTES))


def _five_part_jwe(provider: OidcProvider, now: float) -> str:
    header = b64url(
        json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": provider.key("RSA").kid}).encode()
    )
    return ".".join([header, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"t" * 16)])


def _without(claim: str) -> Forgery:
    def forge(provider: OidcProvider, now: float) -> str:
        claims = provider.claims(now=now)
        del claims[claim]
        return provider.mint(claims)

    return forge


def _claims_with(**changes: object) -> Forgery:
    def forge(provider: OidcProvider, now: float) -> str:
        claims = provider.claims(now=now)
        claims.update({name: value(now) if callable(value) else value for name, value in changes.items()})
        return provider.mint(claims)

    return forge


def _header_with(**changes: object) -> Forgery:
    def forge(provider: OidcProvider, now: float) -> str:
        return provider.mint(provider.claims(now=now), header=changes)

    return forge


def _header_claiming_alg(alg: str | None) -> Forgery:
    """A genuine RS256 signature under a header that names another (or no) algorithm."""

    def forge(provider: OidcProvider, now: float) -> str:
        return provider.mint(provider.claims(now=now), header={"alg": alg}, signing_alg="RS256")

    return forge


def _raw_payload(payload: bytes) -> Forgery:
    """Sign these exact payload bytes, with ISS replaced by the provider's issuer."""

    def forge(provider: OidcProvider, now: float) -> str:
        return provider.mint(payload.replace(b"ISS", provider.issuer.encode()))

    return forge


def _literal(token: str) -> Forgery:
    return lambda provider, now: token


# name -> (how to forge it, what the gateway's log detail must say about it)
FORGERIES: dict[str, tuple[Forgery, str]] = {
    "alg-none-unsigned": (
        lambda p, now: p.mint(p.claims(now=now), header={"alg": "none"}, signing_key=b""),
        "not a compact JWS",
    ),
    "alg-none-with-signature": (
        lambda p, now: compact_jws({"alg": "none"}, p.claims(now=now), None) + "c2ln",
        "algorithm 'none' is not allowed",
    ),
    "alg-None-capitalised": (_header_claiming_alg("None"), "not allowed"),
    "hs256-keyed-with-public-pem": (_hs256_with_public_key, "'HS256' is not allowed"),
    "hs256-keyed-with-public-jwk": (_hs256_with_public_jwk, "'HS256' is not allowed"),
    "alg-rs512-not-allowed": (_header_with(alg="RS512"), "'RS512' is not allowed"),
    "alg-ps256-not-allowed": (_header_claiming_alg("PS256"), "'PS256' is not allowed"),
    "alg-missing": (_header_claiming_alg(None), "algorithm None"),
    "wrong-issuer": (_claims_with(iss="http://127.0.0.1:1"), "not trusted"),
    "issuer-not-a-string": (_claims_with(iss=["whoever"]), "not trusted"),
    "wrong-audience": (_claims_with(aud="other-service"), "'aud'"),
    "audience-list-without-us": (_claims_with(aud=["a", "b"]), "'aud'"),
    "expired": (_expired, "token expired"),
    "not-yet-valid": (_claims_with(nbf=lambda now: int(now) + 600), "not yet valid"),
    "issued-in-the-future": (_claims_with(iat=lambda now: int(now) + 600), "issued in the future"),
    "exp-is-a-string": (_claims_with(exp="99999999999"), "'exp' must be a NumericDate"),
    "exp-is-boolean": (_claims_with(exp=True), "'exp' must be a NumericDate"),
    "exp-is-nan": (
        _raw_payload(b'{"iss":"ISS","sub":"a","aud":"hoop","exp":NaN,"groups":["g"]}'),
        "'exp' must be a NumericDate",
    ),
    "bad-signature-other-key": (_signed_by_stranger, "bad signature"),
    "signature-truncated": (lambda p, now: p.mint(p.claims(now=now))[:-10], "bad signature"),
    "unknown-kid": (_header_with(kid="no-such-key"), "unknown kid"),
    "embedded-jwk-and-jku-ignored": (_embedded_attacker_jwk, "unknown kid"),
    "kid-points-to-ec-key": (_kid_of_ec_key_with_rs256, "does not fit"),
    "tampered-payload": (_tampered_payload, "bad signature"),
    "missing-groups-claim": (_claims_with(groups=None), "groups claim 'groups' missing"),
    "groups-not-strings": (_claims_with(groups=["ok", 7]), "not a string or a list of strings"),
    "groups-object": (_claims_with(groups={"admins": True}), "not a string or a list of strings"),
    "group-with-newline": (_claims_with(groups=["ops\nadmins"]), "control characters"),
    "empty-group-name": (_claims_with(groups=[""]), "empty group name"),
    "missing-sub": (_without("sub"), "Missing claim: 'sub'"),
    "empty-sub": (_claims_with(sub=""), "'sub'"),
    "sub-not-a-string": (_claims_with(sub=12345), "'sub' must be"),
    "sub-with-control-characters": (_claims_with(sub="bot\x1b[2J"), "control characters"),
    "missing-exp": (_without("exp"), "Missing claim: 'exp'"),
    "missing-aud": (_without("aud"), "Missing claim: 'aud'"),
    "missing-iss": (_without("iss"), "not trusted"),
    "payload-is-an-array": (_raw_payload(b'["iss","sub"]'), "payload is not a JSON object"),
    "payload-not-json": (_raw_payload(b"\xff\xfe not json"), "payload is not base64url JSON"),
    "crit-header": (_header_with(crit=["exp"], exp=1), "not supported: crit"),
    "crit-header-unknown-extension": (
        _header_with(crit=["x-hoop"], **{"x-hoop": True}),
        "not supported: crit",
    ),
    "b64-false-header": (_header_with(b64=False), "not supported: b64"),
    "kid-not-a-string": (_header_with(kid=17), "kid is not a string"),
    "oversized": (_oversized, "longer than"),
    "jwe-five-parts": (_five_part_jwe, "encrypted (JWE)"),
    "garbage-empty": (_literal(""), "not a compact JWS"),
    "garbage-word": (_literal("not-a-token"), "not a compact JWS"),
    "garbage-dots": (_literal("...."), "not a compact JWS"),
    "garbage-three-parts": (_literal("a.b.c"), "header is not base64url JSON"),
    "garbage-bearer-prefix": (lambda p, now: "Bearer " + p.mint(p.claims(now=now)), "not a compact JWS"),
    "garbage-padding-chars": (lambda p, now: p.mint(p.claims(now=now)) + "==", "not a compact JWS"),
    "garbage-header-not-json": (_literal(b64url(b"{not json") + ".e30.c2ln"), "header is not base64url JSON"),
    "garbage-header-array": (_literal(b64url(b"[1]") + ".e30.c2ln"), "header is not a JSON object"),
    "garbage-unicode": (_literal("ey\u00e9.\u2603.\U0001f600"), "not a compact JWS"),
    "garbage-deep-nesting": (_literal(b64url(b"[" * 5000) + ".e30.c2ln"), "header is not base64url JSON"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
async def test_forged_and_broken_tokens_are_refused_alike(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock, name: str
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    # Warm the key cache with a genuine token, so refusals are about the forgery, not a cold cache.
    await verifier.verify(oidc_provider.mint(oidc_provider.claims(now=clock.now)))
    forge, reason = FORGERIES[name]
    token = forge(oidc_provider, clock.now)

    rejection = await _rejected(verifier, token)

    assert str(rejection) == PUBLIC_REJECTION_MESSAGE
    assert rejection.public_message == PUBLIC_REJECTION_MESSAGE
    assert rejection.args == (PUBLIC_REJECTION_MESSAGE,)
    assert reason in rejection.detail
    if len(token) > 20:
        for part in token.split("."):
            assert len(part) < 20 or part not in rejection.detail
    if token:
        assert token not in repr(rejection)


def test_there_are_at_least_fifteen_forgeries() -> None:
    assert len(FORGERIES) >= 15


async def test_discovery_issuer_mismatch_refuses_genuine_tokens(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    oidc_provider.discovery_issuer = "http://127.0.0.1:1"
    verifier = _verifier(oidc_provider, tmp_path, clock)
    with pytest.raises(KeySourceUnavailable) as caught:
        await verifier.verify(oidc_provider.mint(oidc_provider.claims(now=clock.now)))
    assert str(caught.value) == PUBLIC_REJECTION_MESSAGE
    assert "different issuer" in caught.value.detail


async def test_flood_of_unknown_kids_costs_at_most_one_refetch(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = _verifier(oidc_provider, tmp_path, clock)
    await verifier.verify(oidc_provider.mint(oidc_provider.claims(now=clock.now)))
    assert oidc_provider.jwks_requests == 1
    clock.advance(60)  # a re-fetch is allowed again: the flood may cause one, no more

    bogus = [
        oidc_provider.mint(oidc_provider.claims(now=clock.now), header={"kid": f"bogus-{n}"})
        for n in range(50)
    ]
    outcomes = await asyncio.gather(*(verifier.verify(token) for token in bogus), return_exceptions=True)
    assert all(isinstance(outcome, TokenRejected) for outcome in outcomes)
    for token in bogus:
        await _rejected(verifier, token)
    assert oidc_provider.jwks_requests <= 2
    assert oidc_provider.discovery_requests == 1


async def test_non_string_token_is_refused(tmp_path: Path) -> None:
    verifier = TokenVerifier([IssuerConfig("local")], state_dir=tmp_path)
    assert verifier.local_issuer is not None
    token = verifier.local_issuer.mint("s", ["g"], audience="hoop", ttl_seconds=60)
    await _rejected(verifier, token.encode())  # type: ignore[arg-type]
    await _rejected(verifier, None)  # type: ignore[arg-type]


async def test_surrounding_whitespace_is_tolerated(tmp_path: Path) -> None:
    verifier = TokenVerifier([IssuerConfig("local")], state_dir=tmp_path)
    assert verifier.local_issuer is not None
    token = verifier.local_issuer.mint("s", ["g"], audience="hoop", ttl_seconds=60)
    assert (await verifier.verify(f"  {token}\n")).subject == "s"


async def test_hs256_confusion_would_verify_under_a_naive_hmac_check(
    oidc_provider: OidcProvider, tmp_path: Path, clock: ManualClock
) -> None:
    """Guards the forgery itself: it is a correct HMAC over the public key, i.e. a real attack."""
    token = _hs256_with_public_key(oidc_provider, time.time())
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(
        oidc_provider.key("RSA").public_pem(), signing_input.encode(), hashlib.sha256
    ).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert "not allowed" in (await _rejected(_verifier(oidc_provider, tmp_path, clock), token)).detail
