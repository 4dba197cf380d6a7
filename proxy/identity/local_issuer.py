"""The embedded local issuer: an Ed25519 key in the state dir that mints and verifies EdDSA JWTs."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.jwk import OKPKey

from proxy.identity.algorithms import REGISTRIES
from proxy.identity.model import TokenRejected

LOCAL_ISSUER_PREFIX = "urn:hoop-tui:local:"
LOCAL_ALGORITHM = "EdDSA"

KEYS_DIR_NAME = "keys"
PRIVATE_KEY_NAME = "issuer.key"
PUBLIC_KEY_NAME = "issuer.pub"

# Claims the issuer sets itself; letting extra_claims replace them would let a caller mint a token
# for another issuer, audience or lifetime than the one it asked for.
RESERVED_CLAIMS: frozenset[str] = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})


class LocalIssuerError(Exception):
    """The local issuer's key material is missing, unreadable or unsafe; the message says what to do."""


class LocalIssuer:
    """Signs tokens with the gateway's own Ed25519 key; ``issuer`` names that key, so two gateways
    (two keys) are two different issuers and never accept each other's tokens."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._signing_key = OKPKey.import_key(private_pem)
        self._public_key = OKPKey.import_key(self._signing_key.as_dict(private=False))
        # RFC 7638 thumbprint: stable for the key, independent of file formatting.
        self.key_id: str = self._public_key.thumbprint()
        self.issuer: str = LOCAL_ISSUER_PREFIX + self.key_id
        self._public_pem: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def load_or_create(cls, state_dir: Path) -> LocalIssuer:
        """Load ``<state_dir>/keys/issuer.key``, creating it (0600, dirs 0700) on first use.

        Safe when several gateway processes start at once: the key is written to a temporary file
        and linked into place only if no other process got there first, so all of them end up
        with the same key.
        """
        keys_dir = Path(state_dir) / KEYS_DIR_NAME
        _make_private_dirs(keys_dir)
        private_path = keys_dir / PRIVATE_KEY_NAME
        if not private_path.exists():
            _publish_new_private_key(private_path)
        issuer = cls(_read_private_key(private_path))
        issuer._ensure_public_file(keys_dir / PUBLIC_KEY_NAME)
        return issuer

    @property
    def public_key(self) -> OKPKey:
        """The verification key (public half only)."""
        return self._public_key

    @property
    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM, as written to ``issuer.pub``."""
        return self._public_pem

    def mint(
        self,
        subject: str,
        groups: Sequence[str],
        *,
        audience: str,
        ttl_seconds: float,
        extra_claims: Mapping[str, Any] | None = None,
        groups_claim: str = "groups",
    ) -> str:
        """A signed EdDSA JWT for ``subject`` in ``groups``, valid for ``ttl_seconds`` from now."""
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        if isinstance(groups, str) or not all(isinstance(group, str) and group for group in groups):
            raise ValueError("groups must be a sequence of non-empty strings")
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience must be a non-empty string")
        if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive number")
        if not groups_claim or groups_claim in RESERVED_CLAIMS:
            raise ValueError(f"groups_claim {groups_claim!r} is empty or a reserved claim")
        extra = dict(extra_claims or {})
        clashing = sorted((RESERVED_CLAIMS | {groups_claim}) & extra.keys())
        if clashing:
            raise ValueError(f"extra_claims may not set {', '.join(clashing)}")

        issued_at = int(time.time())
        claims: dict[str, Any] = {
            **extra,
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + max(1, math.ceil(ttl_seconds)),
            "jti": secrets.token_urlsafe(16),
            groups_claim: list(groups),
        }
        header = {"alg": LOCAL_ALGORITHM, "kid": self.key_id}
        return jwt.encode(header, claims, self._signing_key, registry=REGISTRIES[LOCAL_ALGORITHM])

    def public_jwks(self) -> dict[str, Any]:
        """The public key as a JWK Set, ready to publish or to pin elsewhere."""
        jwk = dict(self._public_key.as_dict(private=False))
        jwk.update({"kid": self.key_id, "use": "sig", "alg": LOCAL_ALGORITHM})
        return {"keys": [jwk]}

    async def key_for(self, kid: str | None, alg: str) -> OKPKey:
        """The verification key, if the header names this issuer's key and algorithm."""
        if alg != LOCAL_ALGORITHM:
            raise TokenRejected(f"local issuer signs only {LOCAL_ALGORITHM}, token says {alg!r}")
        if kid is not None and kid != self.key_id:
            raise TokenRejected("token kid is not the local issuer's key")
        return self._public_key

    def _ensure_public_file(self, public_path: Path) -> None:
        # The private key is the source of truth; a missing or stale public file is rewritten.
        try:
            if public_path.read_bytes() == self._public_pem:
                return
        except FileNotFoundError:
            pass
        _atomic_write(public_path, self._public_pem, mode=0o644, replace=True)


def _make_private_dirs(keys_dir: Path) -> None:
    missing = [path for path in (keys_dir, *keys_dir.parents) if not path.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            # mkdir's mode is filtered by the umask; be explicit about the directories we created.
            os.chmod(path, 0o700)


def _publish_new_private_key(private_path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _atomic_write(private_path, pem, mode=0o600, replace=False)


def _read_private_key(private_path: Path) -> Ed25519PrivateKey:
    try:
        info = private_path.stat()
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LocalIssuerError(
                f"{private_path} is readable by other users; run: chmod 600 {private_path}"
            )
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except OSError as error:
        raise LocalIssuerError(f"cannot read local issuer key {private_path}: {error.strerror}") from None
    except ValueError:
        raise LocalIssuerError(f"{private_path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LocalIssuerError(f"{private_path} is not an Ed25519 private key")
    return key


def _atomic_write(path: Path, data: bytes, *, mode: int, replace: bool) -> None:
    """Write ``data`` to ``path`` so no reader ever sees a partial file.

    With ``replace=False`` an existing file wins (first writer wins, later ones keep its content).
    """
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp_name, path)
        else:
            _link_if_absent(temp_name, path, data, mode)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)


def _link_if_absent(temp_name: str, path: Path, data: bytes, mode: int) -> None:
    try:
        os.link(temp_name, path)
    except FileExistsError:
        pass
    except OSError:
        # Filesystems without hard links: exclusive create still lets only one writer win.
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
