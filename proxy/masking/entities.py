"""Entity names the masker knows, how policy names expand to them, and the token each one renders as."""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
US_SSN = "us_ssn"
IBAN = "iban"
SECRET = "secret"

# National identifiers. Each is flagged only when its check digits validate (python-stdnum), and each has a
# shape distinctive enough that a validated match is very unlikely to be an order number or a timestamp.
ES_DNI = "es_dni"  # Spanish DNI "12345678Z" and NIE "X1234567L": mod-23 check letter
# Italian codice fiscale "RSSMRA85T10A562S": check character (omocodic codes, letters for digits, missed)
IT_FISCAL_CODE = "it_fiscal_code"
FR_NIR = "fr_nir"  # French social security number "1 85 05 78 006 084 36": 97-modulus key
BR_CPF = "br_cpf"  # Brazilian CPF written "390.533.447-05": two check digits (bare 11 digits are not flagged)

NATIONAL_IDS: tuple[str, ...] = (ES_DNI, IT_FISCAL_CODE, FR_NIR, BR_CPF)
# A policy may say "national_id" to mean all of the above.
NATIONAL_ID_ALIAS = "national_id"

BUILTIN_ENTITIES: frozenset[str] = frozenset({EMAIL, PHONE, CREDIT_CARD, US_SSN, IBAN, SECRET, *NATIONAL_IDS})

# Policy regex rules are entities named "custom:<name>".
CUSTOM_PREFIX = "custom:"
# The entity of a column rule that names none (`mask_columns = ["users.notes"]`).
COLUMN_RULE_ENTITY = "masked"

_CUSTOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def custom_entity(name: str) -> str:
    """The entity name of the policy regex rule `name`; the name must be letters, digits, `_` or `-`."""
    if not _CUSTOM_NAME.fullmatch(name):
        raise ValueError(f"custom masking rule name {name!r} must be 1-64 letters, digits, '_' or '-'")
    return CUSTOM_PREFIX + name.lower()


def is_known_entity(entity: str, custom_names: Iterable[str] = ()) -> bool:
    """True for a built-in entity, the column-rule entity, or a custom entity whose rule exists."""
    if entity in BUILTIN_ENTITIES or entity == COLUMN_RULE_ENTITY:
        return True
    return entity.startswith(CUSTOM_PREFIX) and entity in {custom_entity(n) for n in custom_names}


def resolve_entities(names: Iterable[str], custom_names: Iterable[str] = ()) -> frozenset[str]:
    """Expand aliases and validate policy entity names; every custom rule is enabled by being defined."""
    custom = {custom_entity(n) for n in custom_names}
    resolved: set[str] = set(custom)
    for raw in names:
        name = raw.strip().lower()
        if name == NATIONAL_ID_ALIAS:
            resolved.update(NATIONAL_IDS)
        elif name in BUILTIN_ENTITIES or name in custom:
            resolved.add(name)
        elif name.startswith(CUSTOM_PREFIX):
            raise ValueError(f"masking entity {raw!r} names no custom rule")
        else:
            known = ", ".join(sorted(BUILTIN_ENTITIES | {NATIONAL_ID_ALIAS}))
            raise ValueError(f"unknown masking entity {raw!r} (known: {known}, custom:<name>)")
    return frozenset(resolved)


def mask_token(entity: str) -> str:
    """The redaction token of an entity: "[EMAIL]", "[CUSTOM:EMPLOYEE_ID]"."""
    return "[" + entity.upper() + "]"
