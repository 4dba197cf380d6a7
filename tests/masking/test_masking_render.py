"""Render-time masking: a viewer sees the stored text masked further by their policy, never less."""

from __future__ import annotations

import pytest

from proxy.masking.masker import Masker
from proxy.masking.render import mask_for_viewer, viewer_masker
from proxy.masking.strategies import Strategy

RAW = "alice@example.com called +1 415 555 2671 about card 4242 4242 4242 4242, token=abc123def"


@pytest.fixture(scope="module")
def stored() -> str:
    """What the recorder wrote: masked by a storage policy that only hides cards and secrets."""
    return Masker(["credit_card", "secret"]).mask_text(RAW)[0]


def test_an_auditor_policy_masks_more_than_was_stored(stored: str) -> None:
    shown = mask_for_viewer(stored, ["email", "phone"])
    assert shown == "[EMAIL] called [PHONE] about card [CREDIT_CARD], token=[SECRET]"


def test_a_narrower_viewer_policy_never_reveals_what_storage_masked(stored: str) -> None:
    assert mask_for_viewer(stored, []) == stored
    assert (
        mask_for_viewer(stored, ["email"])
        == "[EMAIL] called +1 415 555 2671 about card [CREDIT_CARD], token=[SECRET]"
    )
    assert "4242" not in mask_for_viewer(stored, ["credit_card", "secret"])


def test_viewer_strategies_and_custom_rules_apply() -> None:
    shown = mask_for_viewer(
        "badge EMP-123456 card 4242 4242 4242 4242",
        ["credit_card"],
        strategies={"credit_card": Strategy("partial")},
        custom_rules={"badge": r"EMP-\d{6}"},
    )
    assert shown == "badge [CUSTOM:BADGE] card **** **** **** 4242"


def test_maskers_are_cached_per_viewer_policy() -> None:
    first = viewer_masker(frozenset({"email"}))
    assert viewer_masker(frozenset({"email"})) is first
    assert viewer_masker(frozenset({"phone"})) is not first
