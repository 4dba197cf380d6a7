"""Fixtures for the recording tests: signing keys that tests can share without touching the disk."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    """The gateway's recording key in these tests."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def other_key() -> Ed25519PrivateKey:
    """Someone else's key: what a forger would sign with."""
    return Ed25519PrivateKey.generate()
