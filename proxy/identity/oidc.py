"""An OIDC issuer's signing keys: discovery document and JWKS over HTTP(S), cached and rate-limited."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http.client
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from joserfc.jwk import JWKRegistry, Key

from proxy.hosts import is_loopback_host
from proxy.identity.algorithms import ALLOWED_ALGORITHMS, MIN_RSA_BITS, key_fits_algorithm
from proxy.identity.model import KeySourceUnavailable, TokenRejected

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_PUBLISHED_KEYS = 64
_READ_CHUNK = 64 * 1024
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
# JWK members that only a private key has: a JWKS that publishes one is leaking a signing key, and
# anything signed by it proves nothing.
_PRIVATE_KEY_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def require_trusted_url(url: str, what: str) -> urllib.parse.SplitResult:
    """Parse ``url`` and insist on HTTPS, or plain HTTP to a loopback host; ValueError otherwise."""
    if not isinstance(url, str):
        raise ValueError(f"{what} must be a URL string")
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{what} {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} {url!r} must not carry credentials")
    if parts.scheme == "https":
        return parts
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return parts
    raise ValueError(f"{what} {url!r} must use https (plain http is allowed only for loopback hosts)")


class _TrustedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL we would have accepted in the first place (no https→http)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        try:
            require_trusted_url(newurl, "redirect target")
        except ValueError as error:
            raise urllib.error.URLError(str(error)) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class OidcKeySource:
    """Signing keys of one OIDC issuer.

    Discovery and the JWKS are fetched on first use and cached for ``cache_ttl``. A token whose kid
    is not in the cache triggers a JWKS re-fetch, but fetches start at most once per
    ``min_refetch_interval`` and concurrent callers share one in-flight fetch, so a flood of bogus
    kids costs the issuer at most one request per interval. When the cache expires and the issuer
    cannot be reached, verification fails closed rather than trusting keys that may have been revoked.
    """

    def __init__(
        self,
        issuer_url: str,
        *,
        http_timeout: float = 5.0,
        min_refetch_interval: float = 30.0,
        cache_ttl: float = 3600.0,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = require_trusted_url(issuer_url, "issuer URL")
        if parts.query or parts.fragment:
            raise ValueError(f"issuer URL {issuer_url!r} must not have a query or fragment")
        if http_timeout <= 0 or min_refetch_interval < 0 or cache_ttl <= 0:
            raise ValueError("http_timeout and cache_ttl must be positive, min_refetch_interval not negative")
        self.issuer_url = issuer_url
        self._discovery_url = issuer_url.rstrip("/") + DISCOVERY_PATH
        self._http_timeout = http_timeout
        self._min_refetch_interval = min_refetch_interval
        self._cache_ttl = cache_ttl
        self._clock = clock
        # Built once: loading CA files per request would be slow, and a bad ca_file is a config
        # error that should surface at startup.
        self._ssl_context = ssl.create_default_context(cafile=ca_file)
        self._keys_by_kid: dict[str | None, tuple[Key, ...]] = {}
        self._keys_fetched_at: float | None = None
        self._jwks_uri: str | None = None
        self._discovery_fetched_at: float | None = None
        self._last_fetch_started: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._fetches_started = 0

    @property
    def fetch_count(self) -> int:
        """How many refreshes have been started (for tests and metrics)."""
        return self._fetches_started

    async def key_for(self, kid: str | None, alg: str) -> Any:
        """The issuer's key for a token header, fetching or re-fetching the JWKS when needed."""
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not allowed")
        now = self._clock()
        if self._is_fresh(now):
            key = self._select(kid, alg)
            if key is not None:
                return key
            if not self._may_fetch(now):
                raise TokenRejected("unknown kid (JWKS re-fetch is rate-limited)")
        elif not self._may_fetch(now):
            raise KeySourceUnavailable(f"signing keys of {self.issuer_url} unavailable; will retry later")
        await self._refresh()
        key = self._select(kid, alg)
        if key is None:
            raise TokenRejected("unknown kid: no such key in the issuer's JWKS")
        return key

    def _is_fresh(self, now: float) -> bool:
        fetched_at = self._keys_fetched_at
        return fetched_at is not None and 0 <= now - fetched_at < self._cache_ttl

    def _may_fetch(self, now: float) -> bool:
        if self._inflight is not None and not self._inflight.done():
            return True  # joining a running fetch costs the issuer nothing
        started = self._last_fetch_started
        # A clock that went backwards must not lock fetching out until it catches up.
        return started is None or now < started or now - started >= self._min_refetch_interval

    def _select(self, kid: str | None, alg: str) -> Key | None:
        """The key for (kid, alg); None when unknown; TokenRejected when the kid names an unfit key."""
        if kid is None:
            candidates = [
                key for keys in self._keys_by_kid.values() for key in keys if key_fits_algorithm(key, alg)
            ]
            if len(candidates) > 1:
                raise TokenRejected("token has no kid and the issuer publishes several keys for its alg")
            return candidates[0] if candidates else None
        keys = self._keys_by_kid.get(kid)
        if not keys:
            return None
        for key in keys:
            if key_fits_algorithm(key, alg):
                return key
        raise TokenRejected(f"kid names a key that does not fit algorithm {alg}")

    async def _refresh(self) -> None:
        running = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not running:
            self._last_fetch_started = self._clock()
            self._fetches_started += 1
            task = running.create_task(self._fetch_and_store())
            task.add_done_callback(_retrieve_exception)
            self._inflight = task
        # shield: one caller giving up (client gone) must not cancel the fetch the others wait on.
        try:
            await asyncio.shield(task)
        except KeySourceUnavailable as error:
            raise KeySourceUnavailable(error.detail) from None

    async def _fetch_and_store(self) -> None:
        now = self._clock()
        discovery_stale = self._discovery_fetched_at is None or not (
            0 <= now - self._discovery_fetched_at < self._cache_ttl
        )
        if self._jwks_uri is None or discovery_stale:
            self._jwks_uri = await self._fetch_jwks_uri()
            self._discovery_fetched_at = now
        document = await self._fetch_json(self._jwks_uri, "JWKS")
        keys_by_kid = _parse_jwks(document)
        if not keys_by_kid:
            raise KeySourceUnavailable(f"JWKS of {self.issuer_url} holds no usable signing key")
        self._keys_by_kid = keys_by_kid
        self._keys_fetched_at = self._clock()

    async def _fetch_jwks_uri(self) -> str:
        document = await self._fetch_json(self._discovery_url, "discovery document")
        if document.get("issuer") != self.issuer_url:
            raise KeySourceUnavailable(
                f"discovery document of {self.issuer_url} names a different issuer; refusing its keys"
            )
        jwks_uri = document.get("jwks_uri")
        try:
            require_trusted_url(jwks_uri, "jwks_uri")
        except ValueError as error:
            raise KeySourceUnavailable(f"discovery document of {self.issuer_url}: {error}") from None
        return jwks_uri

    async def _fetch_json(self, url: str, what: str) -> Mapping[str, Any]:
        try:
            body = await asyncio.to_thread(self._fetch_bytes, url)
            document = json.loads(body)
        except (OSError, ValueError, RecursionError, http.client.HTTPException) as error:
            logger.warning("fetching %s from %s failed: %s", what, url, type(error).__name__)
            raise KeySourceUnavailable(f"fetching {what} from {url} failed: {type(error).__name__}") from None
        if not isinstance(document, dict):
            raise KeySourceUnavailable(f"{what} from {url} is not a JSON object")
        return document

    def _fetch_bytes(self, url: str) -> bytes:
        """Blocking GET with a per-read timeout, an overall deadline and a size cap (runs in a thread)."""
        parts = require_trusted_url(url, "URL")
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPSHandler(context=self._ssl_context),
            _TrustedRedirects(),
        ]
        if is_loopback_host(parts.hostname):
            # A configured HTTP(S)_PROXY must never see (or answer for) a loopback issuer.
            handlers.append(urllib.request.ProxyHandler({}))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(
            url, headers={"Accept": "application/json", "User-Agent": "hoop-tui"}
        )
        deadline = time.monotonic() + 2 * self._http_timeout
        try:
            response = opener.open(request, timeout=self._http_timeout)
        except urllib.error.HTTPError as error:
            error.close()  # an HTTPError holds the open connection; release it before reporting
            raise
        with response:
            if response.status != 200:
                raise urllib.error.URLError(f"HTTP status {response.status}")
            body = bytearray()
            while chunk := response.read1(_READ_CHUNK):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValueError("document exceeds the size cap")
                if time.monotonic() > deadline:
                    raise TimeoutError("document download exceeded its deadline")
        return bytes(body)


def _parse_jwks(document: Mapping[str, Any]) -> dict[str | None, tuple[Key, ...]]:
    """Usable public signing keys by kid; symmetric, private, encryption and malformed entries are skipped."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        return {}
    keys_by_kid: dict[str | None, list[Key]] = {}
    for entry in entries[:MAX_PUBLISHED_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig" or _PRIVATE_KEY_MEMBERS & entry.keys():
            continue
        kid = entry.get("kid")
        if (kid is not None and not isinstance(kid, str)) or _is_weak_rsa(entry):
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except Exception:
            # joserfc raises several types for malformed keys; one bad key must not hide the rest.
            logger.warning("skipping malformed JWK (kid %r)", kid)
            continue
        keys_by_kid.setdefault(kid, []).append(key)
    return {kid: tuple(keys) for kid, keys in keys_by_kid.items()}


def _is_weak_rsa(entry: Mapping[str, Any]) -> bool:
    """RSA moduli under MIN_RSA_BITS are dropped before import (they could never verify a token)."""
    if entry.get("kty") != "RSA":
        return False
    modulus = entry.get("n")
    if not isinstance(modulus, str):
        return True
    try:
        decoded = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except (binascii.Error, ValueError):
        return True
    return int.from_bytes(decoded, "big").bit_length() < MIN_RSA_BITS


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    # Every waiter may have gone away; mark the outcome as seen so asyncio does not log it as lost.
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()
