"""Identity test fixtures: a running loopback OIDC provider and a clock the test moves by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.identity.manual_clock import ManualClock
from tests.identity.oidc_provider import OidcProvider


@pytest.fixture
def oidc_provider() -> Iterator[OidcProvider]:
    """A started provider publishing one RSA (RS256) and one EC P-256 (ES256) key."""
    with OidcProvider() as provider:
        yield provider


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the real current time, so tokens minted with real timestamps are valid."""
    return ManualClock(time.time())
