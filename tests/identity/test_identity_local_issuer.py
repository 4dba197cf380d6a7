"""The local issuer: key files and permissions, minting, JWKS, and round trips through the verifier."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from proxy.identity.local_issuer import LOCAL_ISSUER_PREFIX, LocalIssuer, LocalIssuerError
from proxy.identity.model import PUBLIC_REJECTION_MESSAGE, TokenRejected
from proxy.identity.verifier import IssuerConfig, TokenVerifier
from tests.identity.oidc_provider import compact_jws


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _local_verifier(state_dir: Path, **config: str) -> TokenVerifier:
    return TokenVerifier([IssuerConfig("local", **config)], state_dir=state_dir)


def test_creates_private_key_0600_public_key_and_private_dirs(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    issuer = LocalIssuer.load_or_create(state_dir)

    keys_dir = state_dir / "keys"
    assert _mode(state_dir) == 0o700
    assert _mode(keys_dir) == 0o700
    assert _mode(keys_dir / "issuer.key") == 0o600
    private = serialization.load_pem_private_key((keys_dir / "issuer.key").read_bytes(), password=None)
    public_from_private = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (keys_dir / "issuer.pub").read_bytes() == public_from_private == issuer.public_pem
    assert sorted(path.name for path in keys_dir.iterdir()) == ["issuer.key", "issuer.pub"]


def test_reload_keeps_the_same_key_and_issuer(tmp_path: Path) -> None:
    first = LocalIssuer.load_or_create(tmp_path)
    key_bytes = (tmp_path / "keys" / "issuer.key").read_bytes()
    second = LocalIssuer.load_or_create(tmp_path)
    assert second.issuer == first.issuer
    assert (tmp_path / "keys" / "issuer.key").read_bytes() == key_bytes


def test_two_state_dirs_are_two_issuers(tmp_path: Path) -> None:
    one = LocalIssuer.load_or_create(tmp_path / "a")
    other = LocalIssuer.load_or_create(tmp_path / "b")
    assert one.issuer.startswith(LOCAL_ISSUER_PREFIX)
    assert one.issuer == LOCAL_ISSUER_PREFIX + one.key_id
    assert one.issuer != other.issuer


def test_public_jwks_is_a_public_okp_signing_key(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path)
    jwks = issuer.public_jwks()
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert jwk["kid"] == issuer.key_id and jwk["use"] == "sig" and jwk["alg"] == "EdDSA"
    assert "d" not in jwk
    json.dumps(jwks)  # publishable as-is


async def test_mint_and_verify_round_trip(tmp_path: Path) -> None:
    verifier = _local_verifier(tmp_path)
    issuer = verifier.local_issuer
    assert issuer is not None
    before = time.time()
    token = issuer.mint(
        "ci-bot", ["ci-agents", "deployers"], audience="hoop", ttl_seconds=900, extra_claims={"team": "infra"}
    )
    header = json.loads(_b64decode(token.split(".")[0]))
    assert header["alg"] == "EdDSA" and header["kid"] == issuer.key_id

    identity = await verifier.verify(token)

    assert identity.subject == "ci-bot"
    assert identity.groups == ("ci-agents", "deployers")
    assert identity.issuer == issuer.issuer
    assert before + 899 <= identity.expires_at <= time.time() + 901
    assert identity.token_id is not None and identity.token_id == identity.claims["jti"]
    assert identity.claims["team"] == "infra"


async def test_each_mint_has_a_distinct_token_id(tmp_path: Path) -> None:
    verifier = _local_verifier(tmp_path)
    assert verifier.local_issuer is not None
    tokens = [verifier.local_issuer.mint("s", ["g"], audience="hoop", ttl_seconds=60) for _ in range(5)]
    ids = {(await verifier.verify(token)).token_id for token in tokens}
    assert len(ids) == 5


async def test_custom_groups_claim_round_trip(tmp_path: Path) -> None:
    verifier = _local_verifier(tmp_path, groups_claim="roles")
    assert verifier.local_issuer is not None
    token = verifier.local_issuer.mint("s", ["oncall"], audience="hoop", ttl_seconds=60, groups_claim="roles")
    assert (await verifier.verify(token)).groups == ("oncall",)
    # The same issuer's token with the groups under the default name lacks the configured claim.
    default_named = verifier.local_issuer.mint("s", ["oncall"], audience="hoop", ttl_seconds=60)
    with pytest.raises(TokenRejected) as rejected:
        await verifier.verify(default_named)
    assert "groups claim" in rejected.value.detail


async def test_token_from_another_gateways_local_issuer_is_rejected(tmp_path: Path) -> None:
    ours = _local_verifier(tmp_path / "ours")
    theirs = LocalIssuer.load_or_create(tmp_path / "theirs")
    token = theirs.mint("ci-bot", ["ci-agents"], audience="hoop", ttl_seconds=60)

    with pytest.raises(TokenRejected) as rejected:
        await ours.verify(token)
    assert str(rejected.value) == PUBLIC_REJECTION_MESSAGE
    assert "not trusted" in rejected.value.detail


async def test_other_key_claiming_our_issuer_and_kid_is_rejected(tmp_path: Path) -> None:
    ours = _local_verifier(tmp_path / "ours")
    assert ours.local_issuer is not None
    LocalIssuer.load_or_create(tmp_path / "theirs")
    their_key = serialization.load_pem_private_key(
        (tmp_path / "theirs" / "keys" / "issuer.key").read_bytes(), password=None
    )
    now = int(time.time())
    claims = {
        "iss": ours.local_issuer.issuer,
        "sub": "intruder",
        "aud": "hoop",
        "iat": now,
        "exp": now + 60,
        "groups": ["admins"],
    }
    forged = compact_jws({"alg": "EdDSA", "kid": ours.local_issuer.key_id}, claims, their_key)
    with pytest.raises(TokenRejected) as rejected:
        await ours.verify(forged)
    assert rejected.value.detail == "bad signature"


async def test_local_issuer_refuses_other_algorithms(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path)
    with pytest.raises(TokenRejected):
        await issuer.key_for(issuer.key_id, "ES256")
    with pytest.raises(TokenRejected):
        await issuer.key_for("someone-else", "EdDSA")
    assert await issuer.key_for(None, "EdDSA") is issuer.public_key


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"extra_claims": {"iss": "urn:other"}}, "may not set iss"),
        ({"extra_claims": {"groups": ["admins"]}}, "may not set groups"),
        ({"extra_claims": {"exp": 1}}, "may not set exp"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": float("inf")}, "ttl_seconds"),
        ({"subject": ""}, "subject"),
        ({"groups": "ci-agents"}, "groups"),
        ({"groups": ["ok", ""]}, "groups"),
        ({"audience": ""}, "audience"),
        ({"groups_claim": "sub"}, "groups_claim"),
    ],
)
def test_mint_refuses_bad_arguments(tmp_path: Path, arguments: dict[str, object], message: str) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path)
    call: dict[str, object] = {"subject": "s", "groups": ["g"], "audience": "hoop", "ttl_seconds": 60}
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        issuer.mint(**call)  # type: ignore[arg-type]


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    LocalIssuer.load_or_create(tmp_path)
    key_path = tmp_path / "keys" / "issuer.key"
    os.chmod(key_path, 0o644)
    with pytest.raises(LocalIssuerError, match="chmod 600"):
        LocalIssuer.load_or_create(tmp_path)


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    LocalIssuer.load_or_create(tmp_path)
    key_path = tmp_path / "keys" / "issuer.key"
    key_path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(LocalIssuerError, match="not a PEM private key"):
        LocalIssuer.load_or_create(tmp_path)


def test_missing_or_stale_public_file_is_rewritten(tmp_path: Path) -> None:
    issuer = LocalIssuer.load_or_create(tmp_path)
    public_path = tmp_path / "keys" / "issuer.pub"
    public_path.unlink()
    LocalIssuer.load_or_create(tmp_path)
    assert public_path.read_bytes() == issuer.public_pem
    public_path.write_bytes(b"stale")
    LocalIssuer.load_or_create(tmp_path)
    assert public_path.read_bytes() == issuer.public_pem


def test_concurrent_first_start_agrees_on_one_key(tmp_path: Path) -> None:
    state_dir = tmp_path / "shared"
    issuers: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start_gateway() -> None:
        try:
            barrier.wait()
            issuers.append(LocalIssuer.load_or_create(state_dir).issuer)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start_gateway) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(issuers) == 8 and len(set(issuers)) == 1
    assert sorted(path.name for path in (state_dir / "keys").iterdir()) == ["issuer.key", "issuer.pub"]
