"""OidcKeySource against a real loopback provider: discovery, caching, rate limits, failure modes."""

from __future__ import annotations

import asyncio
import json

import pytest
from joserfc.jwk import ECKey, RSAKey

from proxy.hosts import is_loopback_host
from proxy.identity.model import KeySourceUnavailable, TokenRejected
from proxy.identity.oidc import MAX_DOCUMENT_BYTES, OidcKeySource
from tests.identity.manual_clock import ManualClock
from tests.identity.oidc_provider import OidcProvider


def _source(provider: OidcProvider, clock: ManualClock, **options: float) -> OidcKeySource:
    return OidcKeySource(provider.issuer, clock=clock, **options)


async def test_fetches_discovery_then_jwks_once_and_caches(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    source = _source(oidc_provider, clock)
    rsa_key = oidc_provider.key("RSA")
    ec_key = oidc_provider.key("EC")

    assert isinstance(await source.key_for(rsa_key.kid, "RS256"), RSAKey)
    assert isinstance(await source.key_for(ec_key.kid, "ES256"), ECKey)
    for _ in range(10):
        await source.key_for(rsa_key.kid, "RS256")

    assert oidc_provider.discovery_requests == 1
    assert oidc_provider.jwks_requests == 1


async def test_cold_concurrent_callers_share_one_fetch(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    oidc_provider.jwks_delay = 0.2
    source = _source(oidc_provider, clock)
    kid = oidc_provider.key("RSA").kid
    keys = await asyncio.gather(*(source.key_for(kid, "RS256") for _ in range(25)))
    assert all(isinstance(key, RSAKey) for key in keys)
    assert oidc_provider.discovery_requests == 1
    assert oidc_provider.jwks_requests == 1
    assert source.fetch_count == 1


async def test_unknown_kid_refetch_is_rate_limited(oidc_provider: OidcProvider, clock: ManualClock) -> None:
    source = _source(oidc_provider, clock, min_refetch_interval=30.0)
    await source.key_for(oidc_provider.key("RSA").kid, "RS256")
    assert oidc_provider.jwks_requests == 1

    # Inside the interval: unknown kids never reach the issuer.
    for index in range(50):
        with pytest.raises(TokenRejected):
            await source.key_for(f"bogus-{index}", "RS256")
    assert oidc_provider.jwks_requests == 1

    # After the interval: a concurrent flood costs exactly one re-fetch, shared by all.
    clock.advance(31)
    oidc_provider.jwks_delay = 0.1
    outcomes = await asyncio.gather(
        *(source.key_for(f"bogus-{index}", "RS256") for index in range(50)), return_exceptions=True
    )
    assert all(isinstance(outcome, TokenRejected) for outcome in outcomes)
    assert oidc_provider.jwks_requests == 2

    # ...and a sequential flood right after adds nothing.
    for index in range(50):
        with pytest.raises(TokenRejected):
            await source.key_for(f"later-{index}", "RS256")
    assert oidc_provider.jwks_requests == 2
    assert oidc_provider.discovery_requests == 1


async def test_rotated_key_is_found_by_refetch(oidc_provider: OidcProvider, clock: ManualClock) -> None:
    source = _source(oidc_provider, clock, min_refetch_interval=30.0)
    await source.key_for(oidc_provider.key("RSA").kid, "RS256")
    new_key = oidc_provider.rotate("RSA")
    clock.advance(30)
    assert isinstance(await source.key_for(new_key.kid, "RS256"), RSAKey)
    assert oidc_provider.jwks_requests == 2


async def test_cache_expires_after_ttl(oidc_provider: OidcProvider, clock: ManualClock) -> None:
    source = _source(oidc_provider, clock, cache_ttl=600.0)
    kid = oidc_provider.key("RSA").kid
    await source.key_for(kid, "RS256")
    clock.advance(599)
    await source.key_for(kid, "RS256")
    assert oidc_provider.jwks_requests == 1
    clock.advance(2)
    await source.key_for(kid, "RS256")
    assert oidc_provider.jwks_requests == 2
    assert oidc_provider.discovery_requests == 2  # discovery is refreshed with the expired cache


async def test_unreachable_issuer_after_expiry_fails_closed_without_hammering(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    source = _source(oidc_provider, clock, cache_ttl=600.0, min_refetch_interval=30.0)
    kid = oidc_provider.key("RSA").kid
    await source.key_for(kid, "RS256")
    oidc_provider.fail_status = 503
    clock.advance(601)

    with pytest.raises(KeySourceUnavailable):
        await source.key_for(kid, "RS256")
    requests_after_failure = sum(oidc_provider.request_counts.values())
    for _ in range(20):
        with pytest.raises(KeySourceUnavailable):
            await source.key_for(kid, "RS256")
    assert sum(oidc_provider.request_counts.values()) == requests_after_failure

    oidc_provider.fail_status = None
    clock.advance(30)
    assert isinstance(await source.key_for(kid, "RS256"), RSAKey)


async def test_clock_stepping_backwards_does_not_lock_out_refetch(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    source = _source(oidc_provider, clock)
    await source.key_for(oidc_provider.key("RSA").kid, "RS256")
    new_key = oidc_provider.rotate("RSA")
    clock.advance(-3600)
    assert isinstance(await source.key_for(new_key.kid, "RS256"), RSAKey)


@pytest.mark.parametrize("served_issuer", ["http://127.0.0.1:1", "{issuer}/", "{issuer}/other", ""])
async def test_discovery_issuer_mismatch_is_refused(
    oidc_provider: OidcProvider, clock: ManualClock, served_issuer: str
) -> None:
    oidc_provider.discovery_issuer = served_issuer.format(issuer=oidc_provider.issuer)
    source = _source(oidc_provider, clock)
    with pytest.raises(KeySourceUnavailable) as rejected:
        await source.key_for(oidc_provider.key("RSA").kid, "RS256")
    assert "different issuer" in rejected.value.detail
    assert oidc_provider.jwks_requests == 0


async def test_issuer_with_a_path(clock: ManualClock) -> None:
    with OidcProvider(("RSA",), issuer_path="/realms/agents") as provider:
        source = OidcKeySource(provider.issuer, clock=clock)
        assert isinstance(await source.key_for(provider.key("RSA").kid, "RS256"), RSAKey)
        assert provider.discovery_requests == 1


async def test_kid_of_another_key_type_is_refused_without_refetch(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    source = _source(oidc_provider, clock, min_refetch_interval=0.0)
    ec_kid = oidc_provider.key("EC").kid
    with pytest.raises(TokenRejected) as rejected:
        await source.key_for(ec_kid, "RS256")
    assert "does not fit" in rejected.value.detail
    assert oidc_provider.jwks_requests == 1


async def test_token_without_kid_needs_an_unambiguous_key(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    source = _source(oidc_provider, clock)
    assert isinstance(await source.key_for(None, "ES256"), ECKey)  # one EC key published
    oidc_provider.add_key("EC")
    clock.advance(60)
    await source.key_for(oidc_provider.key("EC").kid, "ES256")  # refresh the cache to see both
    with pytest.raises(TokenRejected) as rejected:
        await source.key_for(None, "ES256")
    assert "several keys" in rejected.value.detail


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", "ES384", "Ed25519"])
async def test_algorithms_outside_the_allow_list_are_refused(
    oidc_provider: OidcProvider, clock: ManualClock, alg: str
) -> None:
    source = _source(oidc_provider, clock)
    with pytest.raises(TokenRejected):
        await source.key_for(oidc_provider.key("RSA").kid, alg)
    assert oidc_provider.jwks_requests == 0


async def test_symmetric_private_and_encryption_keys_are_never_used(
    oidc_provider: OidcProvider, clock: ManualClock
) -> None:
    good = oidc_provider.key("RSA").public_jwk()
    private_rsa = RSAKey.generate_key(2048).as_dict(private=True) | {"kid": "leaked", "use": "sig"}
    entries = [
        {"kty": "oct", "kid": "shared-secret", "k": "c2VjcmV0"},
        private_rsa,
        good | {"kid": "for-encryption", "use": "enc"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not a key",
        good,
    ]
    oidc_provider.jwks_override = json.dumps({"keys": entries}).encode()
    source = _source(oidc_provider, clock, min_refetch_interval=30.0)
    assert isinstance(await source.key_for(good["kid"], "RS256"), RSAKey)
    for kid in ("shared-secret", "leaked", "for-encryption", "broken"):
        with pytest.raises(TokenRejected):
            await source.key_for(kid, "RS256")


async def test_small_rsa_keys_are_never_used(clock: ManualClock) -> None:
    with OidcProvider(("RSA",)) as provider:
        strong = provider.key("RSA")
        weak = provider.add_key("RSA", size_or_curve=1024)
        source = OidcKeySource(provider.issuer, clock=clock)
        assert isinstance(await source.key_for(strong.kid, "RS256"), RSAKey)
        with pytest.raises(TokenRejected) as rejected:
            await source.key_for(weak.kid, "RS256")
        assert "unknown kid" in rejected.value.detail


@pytest.mark.parametrize(
    "body",
    [
        b"x" * (MAX_DOCUMENT_BYTES + 1),
        b"[1, 2, 3]",
        b"not json",
        b'{"keys": "nope"}',
        b'{"keys": []}',
        b"[" * 100_000,
    ],
    ids=["oversized", "array", "not-json", "keys-not-list", "empty", "deeply-nested"],
)
async def test_bad_jwks_documents_fail_closed(
    oidc_provider: OidcProvider, clock: ManualClock, body: bytes
) -> None:
    oidc_provider.jwks_override = body
    source = _source(oidc_provider, clock)
    with pytest.raises(KeySourceUnavailable):
        await source.key_for(oidc_provider.key("RSA").kid, "RS256")


async def test_http_error_is_unavailable(oidc_provider: OidcProvider, clock: ManualClock) -> None:
    oidc_provider.fail_status = 500
    source = _source(oidc_provider, clock)
    with pytest.raises(KeySourceUnavailable) as rejected:
        await source.key_for(oidc_provider.key("RSA").kid, "RS256")
    assert "HTTPError" in rejected.value.detail


async def test_connection_refused_is_unavailable(clock: ManualClock) -> None:
    with OidcProvider(()) as provider:
        issuer = provider.issuer
    source = OidcKeySource(issuer, clock=clock, http_timeout=1.0)
    with pytest.raises(KeySourceUnavailable):
        await source.key_for("any", "RS256")


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.example.com",
        "http://10.0.0.1",
        "ftp://127.0.0.1",
        "https://",
        "not a url",
        "https://user:pw@idp.example.com",
        "https://idp.example.com?tenant=1",
        "https://idp.example.com#frag",
    ],
)
def test_issuer_url_must_be_https_unless_loopback(issuer: str) -> None:
    with pytest.raises(ValueError):
        OidcKeySource(issuer)


@pytest.mark.parametrize(
    "issuer", ["https://idp.example.com", "http://127.0.0.1:8080", "http://localhost", "http://[::1]:9000/x"]
)
def test_accepted_issuer_urls(issuer: str) -> None:
    assert OidcKeySource(issuer).issuer_url == issuer


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("LOCALHOST", True), ("10.0.0.1", False),
     ("localhost.evil.com", False), ("", False), (None, False)],
)  # fmt: skip
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def test_jwks_uri_must_be_trusted_too(clock: ManualClock) -> None:
    with OidcProvider(("RSA",)) as provider:
        # Serve a discovery document whose jwks_uri points at plain HTTP on a non-loopback host.
        original = provider._respond

        def respond(path: str) -> tuple[int, bytes]:
            status, body = original(path)
            if path.endswith("openid-configuration"):
                document = json.loads(body)
                document["jwks_uri"] = "http://keys.example.com/jwks"
                body = json.dumps(document).encode()
            return status, body

        provider._respond = respond  # type: ignore[method-assign]
        source = OidcKeySource(provider.issuer, clock=clock)
        with pytest.raises(KeySourceUnavailable) as rejected:
            await source.key_for(provider.key("RSA").kid, "RS256")
        assert "jwks_uri" in rejected.value.detail
        assert provider.jwks_requests == 0
