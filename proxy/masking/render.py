"""Render-time masking: the stored (already masked) text masked further by a viewer's own policy."""

# It can only replace more, never restore: an auditor may see less than an approver, never more than was
# stored.

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from proxy.masking.masker import Masker
from proxy.masking.strategies import Strategy

_CACHED_MASKERS = 64


def mask_for_viewer(
    text: str,
    viewer_entities: Iterable[str],
    *,
    strategies: Mapping[str, Strategy] | None = None,
    custom_rules: Mapping[str, str] | None = None,
    secret: bytes = b"",
) -> str:
    """`text` masked for a viewer whose policy masks `viewer_entities` (redacted unless `strategies` says
    otherwise; the hash strategy needs the gateway `secret`). Maskers are cached per distinct viewer
    policy."""
    masker = viewer_masker(
        frozenset(viewer_entities),
        tuple(sorted((strategies or {}).items())),
        tuple(sorted((custom_rules or {}).items())),
        secret,
    )
    if not masker.enabled:
        return text
    return masker.mask_text(text)[0]


@lru_cache(maxsize=_CACHED_MASKERS)
def viewer_masker(
    entities: frozenset[str],
    strategies: tuple[tuple[str, Strategy], ...] = (),
    custom_rules: tuple[tuple[str, str], ...] = (),
    secret: bytes = b"",
) -> Masker:
    """The (cached) Masker for one viewer policy, for callers that mask many texts, e.g. every frame."""
    return Masker(entities, strategies=dict(strategies), custom_rules=dict(custom_rules), secret=secret)
