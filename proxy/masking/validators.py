"""Check-digit and structure validators that confirm a regex candidate really is the entity it looks like."""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as stdnum_iban
from stdnum.br import cpf as stdnum_cpf
from stdnum.es import dni as stdnum_dni
from stdnum.es import nie as stdnum_nie
from stdnum.fr import nir as stdnum_nir
from stdnum.it import codicefiscale as stdnum_codicefiscale

DEFAULT_PHONE_REGION = "US"
MIN_CARD_DIGITS = 13
MAX_CARD_DIGITS = 19

_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: the digit sum of 2*d
_GROUP_SEPARATOR = re.compile(r"[ -]")


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check over a string of ASCII digits."""
    total = 0
    double = False
    for ch in reversed(digits):
        d = ord(ch) - 48
        total += _DOUBLED[d] if double else d
        double = not double
    return total % 10 == 0


def card_issuer_known(digits: str) -> bool:
    """True when the number's length fits a card network whose issuer prefix (IIN) it starts with."""
    n = len(digits)
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if p2 in (34, 37):  # American Express
        return n == 15
    if 300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095:  # Diners Club
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if p4 == 6011 or 644 <= p3 <= 649 or p2 in (62, 65):  # Discover, UnionPay
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58) or digits[0] == "6":  # Maestro
        return 13 <= n <= 19
    return False


def card_length(candidate: str) -> int | None:
    """Length of the longest prefix of `candidate` (digits in groups split by spaces or dashes) that is a
    valid
    card number, dropping trailing groups that are not part of it ("4242 4242 4242 4242 12" -> 19)."""
    groups = _GROUP_SEPARATOR.split(candidate)
    end = len(candidate)
    while groups:
        digits = "".join(groups)
        if len(digits) < MIN_CARD_DIGITS:
            return None
        if len(digits) <= MAX_CARD_DIGITS and card_issuer_known(digits) and luhn_valid(digits):
            return end
        if len(groups) == 1:
            return None
        end -= len(groups.pop()) + 1
    return None


def ssn_valid(candidate: str) -> bool:
    """US SSN "ddd-dd-dddd": area 000, 666 and 9xx, group 00 and serial 0000 are never issued."""
    area, group, serial = candidate[0:3], candidate[4:6], candidate[7:11]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@lru_cache(maxsize=4096)
def iban_length(candidate: str) -> int | None:
    """Length of the longest prefix of `candidate` that is a valid IBAN, dropping trailing space-separated
    groups ("DE89 3704 0044 0532 0130 00 EUR" -> 27)."""
    end = len(candidate)
    while end >= 15:
        if stdnum_iban.is_valid(candidate[:end]):
            return end
        cut = candidate.rfind(" ", 0, end)
        if cut < 0:
            return None
        end = cut
    return None


def es_dni_valid(candidate: str) -> bool:
    """Spanish DNI ("12345678Z") or NIE ("X1234567L") with a matching check letter."""
    if candidate[0] in "XYZ":
        return bool(stdnum_nie.is_valid(candidate))
    return bool(stdnum_dni.is_valid(candidate))


def it_fiscal_code_valid(candidate: str) -> bool:
    """Italian codice fiscale with a matching check character."""
    return bool(stdnum_codicefiscale.is_valid(candidate))


def fr_nir_valid(candidate: str) -> bool:
    """French NIR with a matching 97-modulus key."""
    return bool(stdnum_nir.is_valid(candidate))


def br_cpf_valid(candidate: str) -> bool:
    """Brazilian CPF with matching check digits; "111.111.111-11" style repeats pass the checksum but are not
    issued numbers."""
    digits = candidate.replace(".", "").replace("-", "")
    return len(set(digits)) > 1 and bool(stdnum_cpf.is_valid(digits))


def jwt_header_valid(header_segment: str) -> bool:
    """True when the first JWT segment is base64url of a JSON object naming an "alg"."""
    padded = header_segment + "=" * (-len(header_segment) % 4)
    try:
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


@lru_cache(maxsize=4096)
def phone_span(candidate: str) -> tuple[int, int] | None:
    """Where in `candidate` phonenumbers finds a valid number (default region US; "+" numbers anywhere).

    Leniency VALID: the number must be valid for its region, and the matcher's own checks reject dates,
    timestamps and slash-separated numbers. The caller only offers candidates already shaped like a phone
    number (a "+" prefix, or NANP grouping with separators), so bare order ids never get here."""
    if not candidate.startswith("+"):
        return _first_phone(candidate)
    # A "+" candidate may run on into the next number ("+44 20 7946 0958 2024"), which makes the whole
    # invalid: drop trailing space-separated groups until what is left is a number starting at the "+".
    end = len(candidate)
    while end >= _MIN_INTERNATIONAL_LENGTH:
        found = _first_phone(candidate[:end])
        if found is not None and found[0] == 0:
            return found
        end = candidate.rfind(" ", 0, end)
    return None


_MIN_INTERNATIONAL_LENGTH = 8  # "+" and seven digits


def _first_phone(text: str) -> tuple[int, int] | None:
    try:
        for match in PhoneNumberMatcher(text, DEFAULT_PHONE_REGION, leniency=Leniency.VALID):
            return match.start, match.end
    except phonenumbers.NumberParseException:
        return None
    return None
