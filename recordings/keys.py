"""The gateway's Ed25519 recording key: create, load, and fingerprint it.

Fingerprints are OpenSSH-style: ``SHA256:`` followed by the unpadded base64 SHA-256 of the key's OpenSSH
wire blob, so ``ssh-keygen -lf`` on the same key in OpenSSH format prints the same string.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recordings.errors import RecordingError

PRIVATE_KEY_NAME = "recording.key"
PUBLIC_KEY_NAME = "recording.pub"


class RecordingKeyError(RecordingError):
    """A key file is missing, malformed, of the wrong type, or too widely readable."""


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` of the key's OpenSSH wire blob."""
    openssh = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte form stored in recording headers."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise RecordingKeyError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never clobber a key another process created a moment ago.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise RecordingKeyError(f"{path} is readable by others (mode {mode:04o}); run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise RecordingKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RecordingKeyError(f"{path} is not an Ed25519 key")
    return key


def load_or_create_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """Load ``keys_dir/recording.key``, creating it (mode 0600) and ``recording.pub`` when missing."""
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = keys_dir / PRIVATE_KEY_NAME
    public_path = keys_dir / PUBLIC_KEY_NAME
    if private_path.exists():
        key = _load_private_key(private_path)
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            _write_new_file(private_path, pem, 0o600)
        except FileExistsError:
            key = _load_private_key(private_path)
    public_pem = _public_pem(key.public_key())
    if public_path.exists():
        if load_public_key(public_path).public_bytes_raw() != key.public_key().public_bytes_raw():
            raise RecordingKeyError(f"{public_path} does not match {private_path}")
    else:
        try:
            _write_new_file(public_path, public_pem, 0o644)
        except FileExistsError:
            pass
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM SubjectPublicKeyInfo file or an OpenSSH ``ssh-ed25519`` line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingKeyError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        if data.lstrip().startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RecordingKeyError(f"{path} is not a PEM or OpenSSH public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RecordingKeyError(f"{path} is not an Ed25519 public key")
    return key
