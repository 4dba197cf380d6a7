"""Strategies (redact, partial, keyed hash), their policy syntax, and the Masker's config validation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from proxy.masking.entities import mask_token, resolve_entities
from proxy.masking.masker import Masker
from proxy.masking.strategies import Strategy, apply_strategy, parse_strategy, partial_mask

SECRET = b"gateway-secret"


def test_redact_is_the_upper_case_entity_token() -> None:
    assert apply_strategy("email", "a@b.co", Strategy("redact"), b"") == "[EMAIL]"
    assert apply_strategy("custom:employee_id", "EMP-1", Strategy("redact"), b"") == "[CUSTOM:EMPLOYEE_ID]"
    assert mask_token("us_ssn") == "[US_SSN]"


@pytest.mark.parametrize(
    ("value", "keep", "expected"),
    [
        ("4242424242424242", 4, "************4242"),
        ("4242 4242 4242 4242", 4, "**** **** **** 4242"),
        ("123-45-6789", 4, "***-**-6789"),
        ("hunter2", 4, "****er2"),  # never more than half is shown
        ("abcd", 4, "**cd"),
        ("alice@example.com", 4, "*****@******e.com"),
        ("4242424242424242", 0, "****************"),
    ],
)
def test_partial_keeps_the_last_characters_and_the_separators(value: str, keep: int, expected: str) -> None:
    assert partial_mask(value, keep) == expected
    assert apply_strategy("credit_card", value, Strategy("partial", keep), b"") == expected


def test_partial_masking_is_a_fixed_point() -> None:
    for value in ("4242 4242 4242 4242", "hunter2", "alice@example.com", "x"):
        once = partial_mask(value, 4)
        assert partial_mask(once, 4) == once


def test_hash_is_an_hmac_of_entity_and_value_that_keeps_equal_values_joinable() -> None:
    token = apply_strategy("email", "alice@example.com", Strategy("hash"), SECRET)
    digest = hmac.new(SECRET, b"email|alice@example.com", hashlib.sha256).hexdigest()
    assert token == f"[EMAIL:{digest[:12]}]"
    # spellings of one value hash alike; other values, entities and secrets do not
    assert apply_strategy("email", "Alice@Example.com", Strategy("hash"), SECRET) == token
    assert apply_strategy("email", "bob@example.com", Strategy("hash"), SECRET) != token
    assert apply_strategy("secret", "alice@example.com", Strategy("hash"), SECRET) != token
    assert apply_strategy("email", "alice@example.com", Strategy("hash"), b"other") != token
    card = Strategy("hash")
    assert apply_strategy("credit_card", "4242 4242 4242 4242", card, SECRET) == apply_strategy(
        "credit_card", "4242-4242-4242-4242", card, SECRET
    )
    phone = apply_strategy("phone", "+1 415 555 2671", card, SECRET)
    assert phone == apply_strategy("phone", "(415) 555-2671", card, SECRET)


def test_hash_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        apply_strategy("email", "a@b.co", Strategy("hash"), b"")
    with pytest.raises(ValueError, match="secret"):
        Masker(["email"], strategies={"email": Strategy("hash")})
    with pytest.raises(ValueError, match="secret"):
        Masker(["email"], default_strategy=Strategy("hash"))


def test_strategies_are_chosen_per_entity() -> None:
    masker = Masker(
        ["email", "credit_card", "phone"],
        strategies={"credit_card": Strategy("partial"), "email": Strategy("hash")},
        secret=SECRET,
    )
    masked, counts = masker.mask_text("alice@example.com 4242 4242 4242 4242 (415) 555-2671")
    email_token = apply_strategy("email", "alice@example.com", Strategy("hash"), SECRET)
    assert masked == f"{email_token} **** **** **** 4242 [PHONE]"
    assert counts == {"email": 1, "credit_card": 1, "phone": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redact", Strategy("redact")),
        ("hash", Strategy("hash")),
        ("partial", Strategy("partial", 4)),
        ("Partial:6", Strategy("partial", 6)),
    ],
)
def test_parse_strategy(text: str, expected: Strategy) -> None:
    assert parse_strategy(text) == expected


@pytest.mark.parametrize("text", ["scramble", "partial:x", "partial:-1", "hash:3", ""])
def test_parse_strategy_rejects_bad_input_with_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="masking strategy"):
        parse_strategy(text)


def test_strategy_validates_itself() -> None:
    with pytest.raises(ValueError):
        Strategy("shred")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Strategy("partial", -2)


def test_entities_resolve_aliases_and_reject_unknown_names() -> None:
    assert resolve_entities(["EMAIL", "national_id"]) == {
        "email",
        "es_dni",
        "it_fiscal_code",
        "fr_nir",
        "br_cpf",
    }
    assert resolve_entities([], ["Badge"]) == {"custom:badge"}
    with pytest.raises(ValueError, match="unknown masking entity 'ssn'"):
        Masker(["ssn"])
    with pytest.raises(ValueError, match="names no custom rule"):
        Masker(["custom:nope"])
    with pytest.raises(ValueError, match="unknown entity"):
        Masker(["email"], strategies={"emails": Strategy("redact")})
    with pytest.raises(ValueError, match="custom masking rule 'bad'"):
        Masker([], custom_rules={"bad": "(unclosed"})
    with pytest.raises(ValueError, match="letters, digits"):
        Masker([], custom_rules={"has space": "x"})


def test_a_masker_without_entities_is_disabled_and_changes_nothing() -> None:
    masker = Masker([])
    assert not masker.enabled
    assert masker.mask_text("alice@example.com") == ("alice@example.com", {})
    assert masker.mask_bytes(b"alice@example.com") is None
    assert Masker(["email"]).enabled
