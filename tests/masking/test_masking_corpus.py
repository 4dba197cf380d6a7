"""The planted corpus: every entity caught in plain text, JSON and multi-line values; look-alikes not."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from proxy.masking.entities import BUILTIN_ENTITIES, mask_token
from proxy.masking.masker import Masker
from tests.masking.masking_corpus import LOOK_ALIKES, PLANTED, Planted

ALL = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(ALL)


def _id(planted: Planted) -> str:
    return f"{planted.entity}:{planted.text[:40]!r}"


def test_the_corpus_is_big_enough_and_covers_every_entity() -> None:
    assert len(PLANTED) >= 100
    assert len(LOOK_ALIKES) >= 50
    per_entity = Counter(p.entity for p in PLANTED)
    assert set(per_entity) == BUILTIN_ENTITIES
    assert min(per_entity.values()) >= 2


@pytest.mark.parametrize("planted", PLANTED, ids=_id)
def test_planted_value_is_masked_in_plain_text(masker: Masker, planted: Planted) -> None:
    text = f"row 7: {planted.text} (checked)"
    masked, counts = masker.mask_text(text)
    assert planted.hidden not in masked
    assert counts.get(planted.entity, 0) >= 1
    assert mask_token(planted.entity) in masked
    assert masked.startswith("row 7: ") and masked.endswith(" (checked)")


@pytest.mark.parametrize("planted", PLANTED, ids=_id)
def test_planted_value_is_masked_through_bytes_exactly_as_text(masker: Masker, planted: Planted) -> None:
    text = f"{planted.text}\tnext field"
    result = masker.mask_bytes(text.encode())
    assert result is not None
    assert result[0].decode() == masker.mask_text(text)[0]
    assert result[1] == masker.mask_text(text)[1]


@pytest.mark.parametrize("planted", PLANTED, ids=_id)
def test_planted_value_is_masked_inside_json_and_json_stays_valid(masker: Masker, planted: Planted) -> None:
    document = json.dumps({"id": 7, "note": f"see {planted.text}", "nested": {"list": [planted.text, 3]}})
    masked, counts = masker.mask_json_text(document)
    parsed = json.loads(masked)
    assert counts[planted.entity] >= 2
    assert planted.hidden not in parsed["note"]
    assert planted.hidden not in parsed["nested"]["list"][0]
    assert parsed["id"] == 7 and parsed["nested"]["list"][1] == 3


@pytest.mark.parametrize("planted", PLANTED, ids=_id)
def test_planted_value_is_masked_in_a_multi_line_value(masker: Masker, planted: Planted) -> None:
    text = f"first line\n  indented: {planted.text}\nlast line 2024-01-15\n"
    masked, counts = masker.mask_text(text)
    assert planted.hidden not in masked
    assert counts[planted.entity] >= 1
    assert masked.startswith("first line\n") and masked.endswith("\nlast line 2024-01-15\n")


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_look_alike_is_left_alone(masker: Masker, look_alike: str) -> None:
    for text in (look_alike, f"value: {look_alike}", f"{look_alike}\n{look_alike}\n"):
        assert masker.mask_text(text) == (text, {})
        assert masker.mask_bytes(text.encode()) is None


def test_json_key_named_like_a_secret_masks_its_whole_value(masker: Masker) -> None:
    document = '{"user": "ci", "password": "not shaped like anything", "retries": 3, "api_key": 12345}'
    masked, counts = masker.mask_json_text(document)
    assert json.loads(masked) == {"user": "ci", "password": "[SECRET]", "retries": 3, "api_key": "[SECRET]"}
    assert counts == {"secret": 2}


def test_json_number_that_is_a_card_becomes_a_masked_string(masker: Masker) -> None:
    masked, counts = masker.mask_json_text('{"pan": 4242424242424242, "amount": 1234567890123.5}')
    assert json.loads(masked) == {"pan": "[CREDIT_CARD]", "amount": 1234567890123.5}
    assert counts == {"credit_card": 1}


def test_json_unicode_escapes_cannot_hide_an_email(masker: Masker) -> None:
    masked, counts = masker.mask_json_text('{"e": "alice\\u0040example.com"}')
    assert json.loads(masked) == {"e": "[EMAIL]"}
    assert counts == {"email": 1}


def test_json_without_entities_is_returned_untouched(masker: Masker) -> None:
    document = '{"a": 1.10, "b": [true, null], "c": "plain text", "d": "2024-01-15"}'
    assert masker.mask_json_text(document) == (document, {})
    assert masker.mask_json_bytes(document.encode()) is None


def test_several_entities_in_one_value_are_all_masked_and_counted(masker: Masker) -> None:
    text = "alice@example.com paid with 4242 4242 4242 4242, call +1 415 555 2671, password=hunter2"
    masked, counts = masker.mask_text(text)
    assert masked == "[EMAIL] paid with [CREDIT_CARD], call [PHONE], password=[SECRET]"
    assert counts == {"email": 1, "credit_card": 1, "phone": 1, "secret": 1}


def test_only_enabled_entities_are_masked() -> None:
    emails_only = Masker(["email"])
    masked, counts = emails_only.mask_text("alice@example.com 123-45-6789 password=hunter2")
    assert masked == "[EMAIL] 123-45-6789 password=hunter2"
    assert counts == {"email": 1}


def test_custom_rule_is_an_entity_of_its_own() -> None:
    masker = Masker(["email"], custom_rules={"employee_id": r"EMP-\d{6}"})
    masked, counts = masker.mask_text("EMP-123456 wrote to bob@example.com; EMP-12 is too short")
    assert masked == "[CUSTOM:EMPLOYEE_ID] wrote to [EMAIL]; EMP-12 is too short"
    assert counts == {"custom:employee_id": 1, "email": 1}
    assert masker.mask_bytes(b"id EMP-654321") == (b"id [CUSTOM:EMPLOYEE_ID]", {"custom:employee_id": 1})
    assert masker.mask_bytes("é EMP-654321".encode()) == (
        "é [CUSTOM:EMPLOYEE_ID]".encode(),
        {"custom:employee_id": 1},
    )


def test_unterminated_private_key_is_masked_to_the_end(masker: Masker) -> None:
    text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHC\nozMxH2Mo4lgOEePz"
    assert masker.mask_text(text) == ("key:\n[SECRET]", {"secret": 1})
