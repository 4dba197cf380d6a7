"""Client-side password authentication to the upstream: SCRAM-SHA-256 (RFC 5802/7677), md5, cleartext."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata

from proxy.postgres.protocol import ProtocolError


def md5_password(user: str, password: str, salt: bytes) -> str:
    inner = hashlib.md5((password + user).encode("utf-8")).hexdigest()
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()


def _saslprep(password: str) -> str:
    """A light SASLprep: PostgreSQL falls back to the raw bytes when preparation fails, so NFKC is enough."""
    try:
        return unicodedata.normalize("NFKC", password)
    except (TypeError, ValueError):
        return password


class ScramClient:
    """One SCRAM-SHA-256 exchange (no channel binding: the gateway sends 'n,,')."""

    MECHANISM = "SCRAM-SHA-256"

    def __init__(self, password: str) -> None:
        self._password = _saslprep(password).encode("utf-8")
        self._nonce = base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        self._client_first_bare = f"n=,r={self._nonce}"
        self._server_signature: bytes | None = None

    def first_message(self) -> bytes:
        return ("n,," + self._client_first_bare).encode("ascii")

    def final_message(self, server_first: bytes) -> bytes:
        text = server_first.decode("ascii", "replace")
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        nonce, salt_b64, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or not salt_b64 or not iterations.isdigit():
            raise ProtocolError("upstream sent an invalid SCRAM server-first message")
        if int(iterations) > 1_000_000:
            raise ProtocolError("upstream asked for an unreasonable SCRAM iteration count")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, base64.b64decode(salt_b64), int(iterations))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._client_first_bare},{text},{without_proof}".encode("ascii")
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def verify_final(self, server_final: bytes) -> None:
        """The server proves it knew the verifier too; a mismatch means we talked to an impostor."""
        text = server_final.decode("ascii", "replace")
        attrs = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if "e" in attrs:
            raise ProtocolError(f"upstream rejected SCRAM authentication: {attrs['e']}")
        expected = self._server_signature
        received = base64.b64decode(attrs.get("v", ""))
        if expected is None or not hmac.compare_digest(expected, received):
            raise ProtocolError("upstream SCRAM server signature did not verify")
