"""The signature-algorithm allow-list and which key fits which algorithm."""

from __future__ import annotations

from typing import Any

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSAlgModel, JWSRegistry

# Asymmetric only: no "none", no HS* (an HMAC "verified" with a public key as its secret is forgeable
# by anyone who can read the JWKS), nothing else an issuer has not been asked to use.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256", "EdDSA"})

MIN_RSA_BITS = 2048

# Header parameters that change how the signature or payload is interpreted. We implement none of
# these extensions, so a token that marks one critical, or asks for an unencoded payload, is refused.
FORBIDDEN_HEADER_PARAMETERS: frozenset[str] = frozenset({"crit", "b64", "zip", "enc"})


class AllowListRegistry(JWSRegistry):
    """A joserfc registry that resolves exactly one allowed algorithm.

    joserfc warns on every use of "EdDSA" because RFC 9864 prefers the fully specified "Ed25519"
    name; the algorithm itself is sound, our key check pins the curve, and most issuers still emit
    "EdDSA", so the allow-list (not the warning) is what governs here.
    """

    def __init__(self, algorithm: str) -> None:
        if algorithm not in ALLOWED_ALGORITHMS:
            raise UnsupportedAlgorithmError(f"algorithm {algorithm!r} is not allowed")
        super().__init__(algorithms=[algorithm], strict_check_header=False)
        self._algorithm = algorithm
        # The verifier caps the whole token first; these per-part caps only need to admit what fits
        # in that (joserfc's 512-byte header default would refuse issuers that embed x5c chains).
        self.max_header_length = 8 * 1024
        self.max_payload_length = 16 * 1024
        self.max_signature_length = 2 * 1024

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != self._algorithm or name not in self.algorithms:
            raise UnsupportedAlgorithmError("algorithm is not allowed")
        return self.algorithms[name]


REGISTRIES: dict[str, AllowListRegistry] = {name: AllowListRegistry(name) for name in ALLOWED_ALGORITHMS}


def key_fits_algorithm(key: Any, alg: str) -> bool:
    """True when ``key`` is a public-key JWK of the type and size ``alg`` needs."""
    declared_alg = key.get("alg") if hasattr(key, "get") else None
    if declared_alg is not None and declared_alg != alg:
        return False
    if alg == "RS256":
        return isinstance(key, RSAKey) and key.public_key.key_size >= MIN_RSA_BITS
    if alg == "ES256":
        return isinstance(key, ECKey) and key.curve_name == "P-256"
    if alg == "EdDSA":
        return isinstance(key, OKPKey) and key.curve_name == "Ed25519"
    return False
