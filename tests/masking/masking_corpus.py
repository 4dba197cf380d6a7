"""The planted corpus: values of every entity, in context, and look-alikes that must never be masked."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from stdnum import luhn
from stdnum.es import dni


@dataclass(frozen=True)
class Planted:
    entity: str
    text: str  # what is written in the data
    hidden: str  # the part that must not survive masking (the value of a `password=` pair, or all of `text`)


def _card(prefix: str, length: int) -> str:
    """A Luhn-valid card number with this issuer prefix."""
    body = prefix + "1" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def _cpf(nine: str) -> str:
    """A formatted CPF with its two mod-11 check digits."""
    number = nine
    for weight_start in (10, 11):
        total = sum(int(d) * w for d, w in zip(number, range(weight_start, 1, -1), strict=True))
        number += str(total * 10 % 11 % 10)
    return f"{number[:3]}.{number[3:6]}.{number[6:9]}-{number[9:]}"


def _dni(eight: str) -> str:
    return eight + dni.calc_check_digit(eight)


def _jwt(header: dict[str, str], payload: dict[str, object]) -> str:
    def part(value: dict[str, object] | dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"


def _pem(label: str, *body: str) -> str:
    """A private-key block; the markers are assembled here rather than written out whole."""
    kind = f"{label} PRIVATE KEY" if label else "PRIVATE KEY"
    return "\n".join([f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----"])


RSA_KEY_BLOCK = _pem(
    "RSA",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
)
OPENSSH_KEY_BLOCK = _pem("OPENSSH", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW")
PKCS8_KEY_BLOCK = _pem("", "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF")
EC_KEY_BLOCK = _pem("EC", "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49")
JWT = _jwt(
    {"alg": "RS256", "typ": "JWT", "kid": "k1"}, {"sub": "ci-bot", "groups": ["ci-agents"], "exp": 1900000000}
)
JWT_HS = _jwt({"alg": "HS256"}, {"sub": "1234567890", "name": "John Doe"})


def _whole(entity: str, *values: str) -> list[Planted]:
    return [Planted(entity, value, value) for value in values]


# Token-shaped test values are assembled from parts in this file so that secret scanners do not mistake the
# source for a leaked credential.

PLANTED: list[Planted] = [
    *_whole(
        "email",
        "alice@example.com",
        "bob.smith+newsletter@mail.example.co.uk",
        "jane_doe99@sub.domain.example.org",
        "UPPER.CASE@EXAMPLE.COM",
        "x@example.io",
        "josé.garcía@ejemplo.es",
        "zoë@bücher.example",
        "ops-team@xn--bcher-kva.example",
        "first.last@company-name.travel",
        "a.b.c.d@e.f.gh",
        "support@example.museum",
    ),
    Planted("email", "alice%40example.com", "alice%40example.com"),  # URL-encoded, e.g. in a query string
    Planted("email", "mailto:carol@example.net", "carol@example.net"),
    Planted("email", "https://dave@example.com/profile", "dave@example.com"),  # URL userinfo
    Planted("email", "<erin@example.org>", "erin@example.org"),
    *_whole(
        "phone",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "+1 415 555 2671",
        "+14155552671",
        "1-800-555-0199",
        "+44 20 7946 0958",
        "+33 1 42 68 53 00",
        "+49 30 901820",
        "+81 3-1234-5678",
        "+61 2 9876 5432",
        "+1 (212) 555-0100",
        "212 555 0100",
        "+7 912 345-67-89",
        "+91 98765 43210",
        "+55 11 91234-5678",
        "+34 612 34 56 78",
    ),
    *_whole(
        "credit_card",
        "4242 4242 4242 4242",
        "4242424242424242",
        "4111-1111-1111-1111",
        "5555 5555 5555 4444",
        "5105105105105100",
        "3782 822463 10005",
        "371449635398431",
        "6011 1111 1111 1117",
        "3530 1113 3330 0000",
        "3056 9309 0259 04",
        "2223 0031 2200 3222",
        _card("6200", 16),
        _card("4", 19),
    ),
    *_whole(
        "us_ssn",
        "123-45-6789",
        "078-05-1120",
        "219-09-9999",
        "001-01-0001",
        "665-12-3456",
        "899-99-9998",
        "772-12-0001",
    ),
    *_whole(
        "iban",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
        "CH93 0076 2011 6238 5295 7",
        "BE71 0961 2345 6769",
        "AT61 1904 3002 3457 3201",
        "PL61 1090 1014 0000 0712 1981 2874",
        "NO93 8601 1117 947",
        "SE45 5000 0000 0583 9825 7466",
    ),
    *_whole("es_dni", _dni("12345678"), _dni("87654321"), "X1234567L", "Y-1234567-X"),
    *_whole("it_fiscal_code", "RSSMRA85T10A562S", "BNCLRD80A01H501C", "VRDGPP80A41F205B"),
    *_whole("fr_nir", "2 95 10 99 126 111 93", "295109912611193"),
    *_whole("br_cpf", "390.533.447-05", _cpf("111444777"), _cpf("529982247")),
    *_whole(
        "secret",
        "AKIA" + "IOSFODNN7EXAMPLE",
        "ASIA" + "Y34FZKBOKMUTVV7A",
        "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
        RSA_KEY_BLOCK,
        OPENSSH_KEY_BLOCK,
        PKCS8_KEY_BLOCK,
        EC_KEY_BLOCK,
        JWT,
        JWT_HS,
        "ghp" + "_1234567890abcdefghijklmnopqrstuvwxyz",
        "github" + "_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "xoxb" + "-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk" + "_live_" + "0aB1cD2eF3gH4iJ5kL6mN7oP",
        "rk" + "_test_" + "9zY8xW7vU6tS5rQ4pO3nM2lK",
    ),
    Planted(
        "secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG"
    ),
    Planted("secret", "password=hunter2", "hunter2"),
    Planted("secret", "passwd: s3cr3t!", "s3cr3t!"),
    Planted("secret", "secret=topsecretvalue", "topsecretvalue"),
    Planted("secret", "token=abcd1234efgh", "abcd1234efgh"),
    Planted("secret", "api_key=key-live-7f9a", "key-live-7f9a"),
    Planted("secret", "API-KEY: 0f1e2d3c4b5a", "0f1e2d3c4b5a"),
    Planted("secret", "DB_PASSWORD='correct horse battery'", "correct horse battery"),
    Planted("secret", 'client_secret: "a1b2c3d4e5"', "a1b2c3d4e5"),
    Planted("secret", "PGPASSWORD=Tr0ub4dor&3 psql", "Tr0ub4dor"),
    Planted("secret", "Authorization: Bearer abc123def456ghi789jkl", "abc123def456ghi789jkl"),
    Planted("secret", "postgres://app:s3cr3t-pw@db.internal:5432/app", "s3cr3t-pw"),
    Planted("secret", "https://deploy:gh0st-token@git.example.com/repo.git", "gh0st-token"),
]

# Look-alikes: shaped like an entity, but not one. Masking must leave every one of them alone.
LOOK_ALIKES: list[str] = [
    # order ids and plain numbers
    "ORD-2024-000123",
    "order #1234567890",
    "2024011510",
    "invoice 4155552671",
    "ticket 123456789",
    "1705314600",
    "1705314600123",
    "qty 42, sku 998877",
    # timestamps and dates
    "2024-01-15",
    "2024-01-15 10:30:00",
    "2024-01-15T10:30:00.123456+00:00",
    "2024-01-15 10:30:00+05:30",
    "15/01/2024 10:30",
    "Mon, 15 Jan 2024 10:30:00 GMT",
    # version strings
    "v1.2.3",
    "10.0.19045.3930",
    "Python 3.11.7",
    "git describe v2.41.0-5-g1a2b3c4",
    "node@18.2.0",
    # UUIDs and hashes
    "550e8400-e29b-41d4-a716-446655440000",
    "123e4567-e89b-12d3-a456-426614174000",
    "d41d8cd98f00b204e9800998ecf8427e",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    # invalid check digits
    "4242 4242 4242 4241",
    "4111111111111112",
    "1234 5678 9012 3456",
    "0000 0000 0000 0000",
    "GB82 WEST 1234 5698 7654 33",
    "DE89 3704 0044 0532 0130 01",
    "12345678A",
    "390.533.447-06",
    "111.111.111-11",
    "RSSMRA85T10A562T",
    "2 95 10 99 126 111 94",
    # SSN-shaped but never issued
    "000-12-3456",
    "666-12-3456",
    "912-34-5678",
    "123-00-4567",
    "123-45-0000",
    # phone-shaped but invalid
    "123-456-7890",
    "000-000-0000",
    "555-2671",
    # ports, addresses, prices
    "port 5432",
    "localhost:8080",
    "127.0.0.1:5432",
    "192.168.1.100",
    "00:1A:2B:3C:4D:5E",
    "$1,234.56",
    "EUR 20919.97",
    "ISBN 978-3-16-148410-0",
    # secret-shaped words without a secret
    "max_tokens: 4096",
    "tokens: 5",
    "password:",
    "Password: ",
    "password=null",
    "the bearer of this letter",
    "AKIA",
    "eyJhbGciOi",
    # email-shaped without an address
    "user@localhost",
    "icon@2x.png",
    "@channel please review",
    "foo@bar",
]
