"""A real OIDC provider on loopback HTTP for tests: discovery, JWKS, key rotation, request counts, minting."""

# It signs with `cryptography` directly rather than with the JOSE library the gateway uses, so a bug
# there cannot hide itself in the tests, and so it can produce tokens no correct library would
# (alg "none", HS256 keyed with a public key, tampered payloads, any header at all).

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@functools.cache
def _key_material(kty: str, size_or_curve: str | int, index: int) -> PrivateKey:
    """Deterministic reuse across tests: RSA generation is slow, and fresh keys prove nothing more."""
    del index  # part of the cache key only: one distinct key per (kind, index)
    if kty == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(size_or_curve))
    if kty == "EC":
        curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
        return ec.generate_private_key(curves[str(size_or_curve)])
    if kty == "OKP":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported key type {kty}")


@dataclass(frozen=True)
class ProviderKey:
    """One signing key the provider holds."""

    kid: str
    kty: str
    alg: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        jwk: dict[str, Any] = {"kid": self.kid, "use": "sig", "alg": self.alg}
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            jwk.update(kty="RSA", n=_b64url_uint(numbers.n), e=_b64url_uint(numbers.e))
        elif isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            size = (public.curve.key_size + 7) // 8
            crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[public.curve.name]
            x, y = numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big")
            jwk.update(kty="EC", crv=crv, x=b64url(x), y=b64url(y))
        else:
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk.update(kty="OKP", crv="Ed25519", x=b64url(raw))
        return jwk

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def sign_input(signing_input: bytes, alg: str, key: PrivateKey | bytes | None) -> bytes:
    """The raw JWS signature of ``signing_input`` under ``alg``; any alg, any key, no checks."""
    if alg == "none":
        return b""
    if alg.startswith("HS"):
        assert isinstance(key, bytes)
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(key, signing_input, digest).digest()
    sha = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
    if alg.startswith("RS"):
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(signing_input, padding.PKCS1v15(), sha[alg[2:]])
    if alg.startswith("ES"):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(sha[alg[2:]])))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(signing_input)
    raise ValueError(f"cannot sign with {alg}")


def compact_jws(
    header: Mapping[str, Any],
    payload: Mapping[str, Any] | bytes,
    key: PrivateKey | bytes | None,
    *,
    signing_alg: str | None = None,
) -> str:
    """A compact JWS with exactly this header and payload, signed per the header's alg (or
    ``signing_alg``, to make a header that lies about how it was signed)."""
    payload_bytes = payload if isinstance(payload, bytes) else _json_bytes(dict(payload))
    signing_input = f"{b64url(_json_bytes(dict(header)))}.{b64url(payload_bytes)}".encode()
    signature = sign_input(signing_input, signing_alg or str(header.get("alg")), key)
    return f"{signing_input.decode()}.{b64url(signature)}"


class OidcProvider:
    """A loopback OIDC issuer in a background thread. Use as a context manager (or start/stop).

    Knobs for failure tests: ``discovery_issuer`` (serve a different issuer), ``jwks_override``
    (serve these bytes as the JWKS), ``jwks_delay`` (seconds to hold each JWKS response),
    ``fail_status`` (answer every request with this HTTP status).
    """

    def __init__(self, keys: Iterable[str] = ("RSA", "EC"), *, issuer_path: str = "") -> None:
        self._lock = threading.Lock()
        self._published: dict[str, ProviderKey] = {}
        self._held: dict[str, ProviderKey] = {}
        self._material_index: Counter[str] = Counter()
        self.request_counts: Counter[str] = Counter()
        self.discovery_issuer: str | None = None
        self.jwks_override: bytes | None = None
        self.jwks_delay = 0.0
        self.fail_status: int | None = None
        self._issuer_path = issuer_path.rstrip("/")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}{self._issuer_path}"
        for kty in keys:
            self.add_key(kty)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        # A short poll interval keeps stop() (and so every fixture teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="oidc-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- keys -------------------------------------------------------------------------------------

    def add_key(
        self,
        kty: str = "RSA",
        *,
        kid: str | None = None,
        publish: bool = True,
        size_or_curve: str | int | None = None,
    ) -> ProviderKey:
        """Generate (or reuse cached material for) a key; publish it in the JWKS unless told not to."""
        defaults: dict[str, tuple[str, str | int]] = {
            "RSA": ("RS256", 2048),
            "EC": ("ES256", "P-256"),
            "OKP": ("EdDSA", "Ed25519"),
        }
        alg, default_param = defaults[kty]
        param = size_or_curve if size_or_curve is not None else default_param
        with self._lock:
            index = self._material_index[f"{kty}:{param}"]
            self._material_index[f"{kty}:{param}"] += 1
        material = _key_material(kty, param, index)
        if kty == "EC" and param == "P-384":
            alg = "ES384"
        key = ProviderKey(kid or f"{kty.lower()}-{secrets.token_hex(4)}", kty, alg, material)
        with self._lock:
            self._held[key.kid] = key
            if publish:
                self._published[key.kid] = key
        return key

    def rotate(self, kty: str = "RSA", *, retire_previous: bool = True) -> ProviderKey:
        """Publish a new key of ``kty``; by default stop publishing the older ones of that type."""
        with self._lock:
            previous = [kid for kid, key in self._published.items() if key.kty == kty]
        new_key = self.add_key(kty)
        if retire_previous:
            for kid in previous:
                self.unpublish(kid)
        return new_key

    def unpublish(self, kid: str) -> None:
        with self._lock:
            self._published.pop(kid, None)

    def key(self, kty_or_kid: str) -> ProviderKey:
        """A held key by kid, or the newest published key of a type ("RSA", "EC", "OKP")."""
        with self._lock:
            if kty_or_kid in self._held:
                return self._held[kty_or_kid]
            matching = [key for key in self._published.values() if key.kty == kty_or_kid]
        if not matching:
            raise KeyError(kty_or_kid)
        return matching[-1]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.public_jwk() for key in self._published.values()]}

    # -- counters ---------------------------------------------------------------------------------

    @property
    def jwks_requests(self) -> int:
        return self.request_counts[self._issuer_path + JWKS_PATH]

    @property
    def discovery_requests(self) -> int:
        return self.request_counts[self._issuer_path + DISCOVERY_PATH]

    # -- tokens -----------------------------------------------------------------------------------

    def claims(
        self,
        subject: str = "agent-1",
        groups: Sequence[str] | str | None = ("ci-agents",),
        *,
        audience: str | list[str] = "hoop",
        ttl: float = 300,
        now: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A typical valid claim set from this issuer (``groups=None`` leaves the claim out)."""
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + int(ttl),
            "jti": secrets.token_hex(8),
        }
        if groups is not None:
            claims["groups"] = groups if isinstance(groups, str) else list(groups)
        claims.update(extra)
        return claims

    def mint(
        self,
        claims: Mapping[str, Any] | bytes | None = None,
        *,
        key: ProviderKey | str = "RSA",
        header: Mapping[str, Any] | None = None,
        signing_key: PrivateKey | bytes | None = None,
        signing_alg: str | None = None,
    ) -> str:
        """Sign ``claims`` (default: ``self.claims()``) with a held key.

        ``header`` entries override the defaults (alg and kid of the key, typ JWT); a ``None``
        value removes the entry. ``signing_key`` signs with something else than ``key``, and
        ``signing_alg`` with another algorithm than the header names.
        """
        provider_key = key if isinstance(key, ProviderKey) else self.key(key)
        merged: dict[str, Any] = {"alg": provider_key.alg, "kid": provider_key.kid, "typ": "JWT"}
        for name, value in (header or {}).items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        payload = claims if claims is not None else self.claims()
        chosen_key = signing_key if signing_key is not None else provider_key.private_key
        return compact_jws(merged, payload, chosen_key, signing_alg=signing_alg)

    # -- HTTP -------------------------------------------------------------------------------------

    def _respond(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.request_counts[path] += 1
        if self.fail_status is not None:
            return self.fail_status, b'{"error":"unavailable"}'
        if path == self._issuer_path + DISCOVERY_PATH:
            document = {
                "issuer": self.discovery_issuer if self.discovery_issuer is not None else self.issuer,
                "jwks_uri": self.issuer + JWKS_PATH,
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
            }
            return 200, _json_bytes(document)
        if path == self._issuer_path + JWKS_PATH:
            if self.jwks_delay:
                time.sleep(self.jwks_delay)
            if self.jwks_override is not None:
                return 200, self.jwks_override
            return 200, _json_bytes(self.jwks())
        return 404, b'{"error":"not found"}'


def _handler_for(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = provider._respond(self.path.split("?", 1)[0])
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
