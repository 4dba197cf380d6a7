"""Property tests: whatever arrives as a token, the verifier answers with an Identity or TokenRejected."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.identity.model import PUBLIC_REJECTION_MESSAGE, TokenRejected
from proxy.identity.verifier import IssuerConfig, TokenVerifier
from tests.identity.oidc_provider import b64url

FUZZ_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def local_verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    return TokenVerifier([IssuerConfig("local")], state_dir=Path(tmp_path_factory.mktemp("fuzz-state")))


def _outcome(verifier: TokenVerifier, token: object) -> object:
    """The identity, or the rejection; any other exception escapes and fails the test."""
    try:
        return asyncio.run(verifier.verify(token))  # type: ignore[arg-type]
    except TokenRejected as rejection:
        assert str(rejection) == PUBLIC_REJECTION_MESSAGE
        return rejection


@FUZZ_SETTINGS
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")))
def test_arbitrary_text_is_rejected(local_verifier: TokenVerifier, token: str) -> None:
    assert isinstance(_outcome(local_verifier, token), TokenRejected)


@FUZZ_SETTINGS
@given(
    header=st.fixed_dictionaries(
        {"alg": st.sampled_from(["EdDSA", "RS256", "ES256", "none", "HS256", "EdDSA "]) | json_values},
        optional={"kid": json_values, "typ": json_values, "crit": json_values},
    ),
    payload=st.dictionaries(
        st.sampled_from(["sub", "aud", "exp", "nbf", "iat", "groups", "jti"]), json_values
    ),
    signature=st.binary(min_size=1, max_size=128),
)
def test_structured_forgeries_claiming_the_local_issuer_are_rejected(
    local_verifier: TokenVerifier, header: dict[str, object], payload: dict[str, object], signature: bytes
) -> None:
    assert local_verifier.local_issuer is not None
    payload = {**payload, "iss": local_verifier.local_issuer.issuer}
    token = ".".join(
        b64url(part) for part in (json.dumps(header).encode(), json.dumps(payload).encode(), signature)
    )
    assert isinstance(_outcome(local_verifier, token), TokenRejected)


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_single_character_change_is_rejected_or_changes_nothing(
    local_verifier: TokenVerifier, data: st.DataObject
) -> None:
    issuer = local_verifier.local_issuer
    assert issuer is not None
    token = issuer.mint("fuzz", ["g1", "g2"], audience="hoop", ttl_seconds=300)
    genuine = _outcome(local_verifier, token)
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ").filter(
            lambda char: char != token[position]
        ),
        label="replacement",
    )
    mutated = token[:position] + replacement + token[position + 1 :]
    outcome = _outcome(local_verifier, mutated)
    # Base64url's last character can carry unused bits: such an edit decodes to the same bytes,
    # so the only acceptable "success" is the very same identity.
    assert isinstance(outcome, TokenRejected) or outcome == genuine
