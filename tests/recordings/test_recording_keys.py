"""The recording key: created once with safe permissions, loaded again, fingerprinted like OpenSSH."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.keys import RecordingKeyError, fingerprint, load_or_create_signing_key, load_public_key


def test_a_key_is_created_once_and_then_loaded(tmp_path: Path) -> None:
    first = load_or_create_signing_key(tmp_path / "keys")
    private = tmp_path / "keys" / "recording.key"
    public = tmp_path / "keys" / "recording.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    second = load_or_create_signing_key(tmp_path / "keys")
    assert second.private_bytes_raw() == first.private_bytes_raw()
    assert load_public_key(public).public_bytes_raw() == first.public_key().public_bytes_raw()


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path)
    os.chmod(tmp_path / "recording.key", 0o644)
    with pytest.raises(RecordingKeyError, match="chmod 600"):
        load_or_create_signing_key(tmp_path)


def test_a_public_key_that_does_not_match_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path)
    stranger = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "recording.pub").write_bytes(
        stranger.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(RecordingKeyError, match="does not match"):
        load_or_create_signing_key(tmp_path)


def test_fingerprint_is_the_openssh_sha256_fingerprint(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(key) == expected
    openssh = tmp_path / "key.pub"
    openssh.write_bytes(line + b" gateway\n")
    assert fingerprint(load_public_key(openssh)) == expected
    if shutil.which("ssh-keygen"):
        listed = subprocess.run(
            ["ssh-keygen", "-lf", str(openssh)], capture_output=True, text=True, check=True
        )
        assert expected in listed.stdout


def test_non_ed25519_or_garbage_public_keys_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    with pytest.raises(RecordingKeyError):
        load_public_key(garbage)
    with pytest.raises(RecordingKeyError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
