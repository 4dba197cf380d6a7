"""Regular expressions: the combined anchor scan (the hot-path prefilter) and per-entity patterns."""

# Every pattern here is ASCII-only and compiled with re.ASCII, so the same source compiled for `bytes` matches
# UTF-8 input exactly where the `str` version matches the decoded text: a multi-byte character can only ever
# satisfy a negated class, in both forms alike. That is what lets `Masker.mask_bytes` reject clean values
# without decoding them.
#
# The anchor scan is one alternation whose every branch starts with a literal character, so CPython's regex
# engine skips, inside C, through text that holds none of those characters and only calls its matcher at '@',
# '%', '-', '_', ':', '=', 'A', 'J', 'B', 'b', '+', '(' and digits. A match is only a place worth a closer
# look; the detectors then match the strict pattern of each entity at that place and validate it.

from __future__ import annotations

import re
from collections.abc import Iterable

from proxy.masking.entities import (
    BR_CPF,
    CREDIT_CARD,
    EMAIL,
    ES_DNI,
    FR_NIR,
    IBAN,
    IT_FISCAL_CODE,
    PHONE,
    SECRET,
    US_SSN,
)

_FLAGS = re.ASCII


def compile_text(source: str) -> re.Pattern[str]:
    return re.compile(source, _FLAGS)


def compile_bytes(source: str) -> re.Pattern[bytes]:
    return re.compile(source.encode("ascii"), _FLAGS)


# Key names whose value is a secret in `key=value`, `key: value` and JSON pairs. A key matches when it ends
# with one of these (case-insensitive), so "db_password" and "PGPASSWORD" count but "max_tokens" does not.
# Each ends in one of _KEYWORD_ENDINGS, which the anchor scan looks for before a ':' or '='.
SECRET_KEYWORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "accesskey",
    "private_key",
    "private-key",
    "privatekey",
    "secret_key",
    "secret-key",
    "secretkey",
)
_KEYWORD_ENDINGS = ("ord", "swd", "ret", "ken", "key")
assert all(k[-3:] in _KEYWORD_ENDINGS for k in SECRET_KEYWORDS)

_D = "[0-9]"
AT_SIGN_ANCHOR = "@"
PAREN_PHONE_ANCHOR = rf"\({_D}{{3}}\)"


def _digit_branch(entities: frozenset[str]) -> str | None:
    """What may follow the first digit of a run of digits, for the numeric entities that are enabled."""
    after_two_more: list[str] = []  # continuations after "ddd"
    if US_SSN in entities:
        after_two_more.append(f"-{_D}{{2}}-{_D}{{4}}")
    if BR_CPF in entities:
        after_two_more.append(rf"\.{_D}{{3}}\.{_D}{{3}}-{_D}{{2}}")
    if PHONE in entities:
        after_two_more.append(f"[ .-]{_D}{{3}}[ .-]{_D}{{4}}")
    if CREDIT_CARD in entities or FR_NIR in entities:
        # 13+ digits: 4-4-4-1.. groups, 4-6-4.. (Amex, Diners), or bare.
        after_two_more.append(f"{_D}[ -]?{_D}{{4}}(?:[ -]?{_D}{{4}}[ -]?{_D}|[ -]?{_D}{{2}}[ -]?{_D}{{4}})")
    if ES_DNI in entities:
        after_two_more.append(f"{_D}{{5}}-?[A-Z]")
    branches: list[str] = []
    if after_two_more:
        branches.append(f"{_D}{{2}}(?:{'|'.join(after_two_more)})")
    after_separator: list[str] = []
    if PHONE in entities:  # "1-415-555-2671", "1 (415) 555-2671"
        after_separator.append(rf"\({_D}{{3}}\)|{_D}{{3}}[ .-]{_D}{{3}}")
    if FR_NIR in entities:  # "1 85 05 78 006 084 36"
        after_separator.append(f"(?<=[12] ){_D}{{2}} {_D}{{2}} ")
    if after_separator:
        branches.append(f"[ .-](?:{'|'.join(after_separator)})")
    after_letter: list[str] = []  # the run of digits follows upper-case letters
    if IBAN in entities:
        after_letter.append(f"(?<=[A-Z]{{2}}{_D}){_D}")
    if IT_FISCAL_CODE in entities:
        after_letter.append(f"(?<=[A-Z]{{6}}{_D}){_D}[A-Z]")
    if ES_DNI in entities:
        after_letter.append(f"(?<=[XYZ]{_D}){_D}{{6}}")
    if after_letter:
        branches.append(f"(?<=[A-Z]{_D})(?:{'|'.join(after_letter)})")
    if ES_DNI in entities:
        branches.append(f"(?<=[XYZ]-{_D}){_D}{{6}}")
    if not branches:
        return None
    # Only the first digit of a run is an anchor: digits inside a run fail this look-behind at once.
    return f"(?<!{_D}{_D})(?:{'|'.join(branches)})"


def anchor_scan_source(entities: Iterable[str]) -> str | None:
    """Source of the combined anchor scan for `entities`, or None when no built-in entity is enabled."""
    branches = anchor_branches(frozenset(entities))
    return "|".join(branches) if branches else None


def anchor_branches(enabled: frozenset[str]) -> list[str]:
    """The alternatives of the anchor scan, each a regex source (see `anchor_scan_source`)."""
    branches: list[str] = []
    digit = _digit_branch(enabled)
    if digit is not None:  # first: digits are the most frequent anchors
        branches += [f"{d}{digit}" for d in "0123456789"]
    if EMAIL in enabled or SECRET in enabled:
        branches.append(AT_SIGN_ANCHOR)  # emails, and passwords in URL userinfo
    if EMAIL in enabled:
        branches.append("%40")  # URL-encoded emails
    if SECRET in enabled:
        # key, key", key ", key" : and key  = (any run of blanks): the phase-2 check reads the key itself.
        ending = "(?i:" + "|".join(_KEYWORD_ENDINGS) + ")"
        pair_lookbehind = (
            f"(?:(?<={ending}{{sep}})|(?<={ending}[\"' \\t]{{sep}})|(?<={ending}[\"'][ \\t]{{sep}})"
            f"|(?<=[ \\t][ \\t]{{sep}}))"
        )
        branches += [
            "-----BEGIN",
            "-(?<=xox[abposr]-)",  # Slack
            "_(?:(?<=gh[pousr]_)|(?<=github_)pat_|(?<=[sr]k_)(?:live|test)_)",  # GitHub, Stripe
            ":" + pair_lookbehind.replace("{sep}", ":"),
            "=" + pair_lookbehind.replace("{sep}", "="),
            "A(?:KIA|SIA|Iza)",  # AWS access key id, Google API key
            "J(?<=eyJ)[A-Za-z0-9_-]{6}",  # JWT
            "Bearer[ \\t]",
            "BEARER[ \\t]",
            "bearer[ \\t]",
        ]
    if PHONE in enabled:
        branches += [INTERNATIONAL_PHONE_ANCHOR, PAREN_PHONE_ANCHOR]
    return branches


# --- the numeric gate ---------------------------------------------------------------------------------------
#
# Digits are the most frequent anchors and the costliest: the scan stops at every one. Before scanning, a
# value is mapped to its shape (digits to '0', capitals to 'A') in one C-level pass, and a regex with the
# literal prefix "000" - which CPython searches without a per-character call - asks whether any numeric entity
# is possible at all. Every numeric entity has, at the start of a run of digits, one of: exactly three digits
# and then a separator and a digit (SSN, CPF, NANP phone, NIR, IP-like groups), four or more digits and four
# more (cards, IBAN groups), seven digits (DNI, NIE, bare cards, IBANs), three digits and ')' ("(415)"), or
# digits and a capital (codice fiscale, DNI). When the gate says no, the anchor scan without numeric branches
# runs instead, and dates, times, amounts and version numbers cost nothing; that scan keeps the '+' anchor of
# international phone numbers, which the gate does not cover. An IBAN whose account part holds no run of
# digits at all would pass unseen; no country's format has one in practice.
NUMERIC_ENTITIES = frozenset({PHONE, CREDIT_CARD, US_SSN, IBAN, ES_DNI, IT_FISCAL_CODE, FR_NIR, BR_CPF})
SHAPE_TABLE = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 10 + b"A" * 26)
_NUMERIC_SHAPES = r"(?:[ .-]0|0+[ -]?0000|0000|\)|0*A)"
INTERNATIONAL_PHONE_ANCHOR = rf"\+[1-9](?:[ .()/-]{{0,2}}{_D}){{6}}"
NUMERIC_GATE = compile_bytes(r"000(?<!0000)" + _NUMERIC_SHAPES)


# --- strict candidate patterns, matched at an anchor --------------------------------------------------------

# Characters of an email local part: anything but whitespace and the delimiters that end one in text, URLs and
# query strings. Non-ASCII is allowed (RFC 6531).
_LOCAL_CHAR = r"""[^\s@<>()\[\]\\,;:"'`=&?/{}|]"""
# An apostrophe only inside it ("o'brien@"), so that a quote around an address is not taken into it.
_LOCAL = rf"{_LOCAL_CHAR}+(?:'{_LOCAL_CHAR}+)*"
# A domain label character: ASCII letters, digits, '-', or any non-ASCII character.
_LABEL_CHAR = r"[^\x00-\x2c./:-@\[-`{-\x7f]"
# An '@' where an address can be: one starts its domain right after it (the frame scan's narrower anchor).
EMAIL_AT_SIGN = "@" + _LABEL_CHAR
# Searched from a little before the '@' it is anchored at; '%40' is a URL-encoded '@'.
EMAIL_ADDRESS = compile_text(
    rf"(?P<local>{_LOCAL})(?P<at>@|%40)(?:{_LABEL_CHAR}+\.)+"
    # The top-level label may not run on into letters or digits; a '-' after it cannot be part of it.
    rf"(?P<tld>[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{2,59}}|[^\x00-\x7f]{{2,63}})(?![A-Za-z0-9]|[^\x00-\x7f])"
)
# The local part read backwards from its '@' (matched on the reversed text before it): the longest local
# part, i.e. where a leftmost EMAIL_ADDRESS search would start, found in one match instead of a search.
EMAIL_LOCAL_REVERSED = compile_text(rf"(?:{_LOCAL_CHAR}+')*{_LOCAL_CHAR}+")
# A value that is one ASCII address and nothing else - an email column - is recognised with one fullmatch.
_WHOLE_EMAIL = (
    rf"(?P<local>{_LOCAL})(?:@|%40)(?:{_LABEL_CHAR}+\.)+"
    r"(?P<tld>[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})"
)
WHOLE_EMAIL_TEXT = compile_text(_WHOLE_EMAIL)
WHOLE_EMAIL_BYTES = compile_bytes(_WHOLE_EMAIL)
# A local part made only of these is punctuation, not an address.
EMAIL_LOCAL_PUNCTUATION = "!#$%&'*+-./=?^_`{|}~"
# "a@2x.png" is an image name, not an address.
FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "css", "js", "map"})
# scheme://user:PASSWORD@ with the match ending at the '@' (searched with endpos at the '@').
URL_USERINFO = compile_text(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\[\]]*:(?P<pw>[^\s/?#@\[\]]+)\Z")

SECRET_KEY_REVERSED = compile_text(
    r"""[ \t]*["']?(?i:""" + "|".join(re.escape(k[::-1]) for k in SECRET_KEYWORDS) + ")"
)
SECRET_KEY_NAME = compile_text(r"(?i:.*(?:" + "|".join(re.escape(k) for k in SECRET_KEYWORDS) + r"))\Z")
PAIR_VALUE = compile_text(
    r"""[ \t]*(?:"(?P<dq>(?:[^"\\\r\n]|\\.)*)"|'(?P<sq>[^'\r\n]*)'|(?P<bare>[^\s"',;&<>{}\[\]]+))"""
)
# A mask token this package writes ("[SECRET]", "[EMAIL:0123456789ab]", "[CUSTOM:EMPLOYEE_ID]").
MASK_TOKEN = compile_text(r"\[[A-Z0-9_]+(?::[A-Z0-9_-]+)?(?::[0-9a-f]{12})?\]")
NON_SECRET_VALUES = frozenset({"null", "none", "true", "false", "nil", "undefined"})

_PRIVATE_KEY_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
PRIVATE_KEY_BLOCK = compile_text(
    # An unterminated block is masked to the end of the text: fail closed.
    rf"-----BEGIN {_PRIVATE_KEY_LABEL}(?s:.*?-----END {_PRIVATE_KEY_LABEL}|.*)"
)
# Token bodies take single '-' between runs only, so a token never swallows a "-----BEGIN" glued after it.
SLACK_TOKEN = compile_text(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")
GITHUB_TOKEN = compile_text(
    r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
)
STRIPE_KEY = compile_text(r"(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?![A-Za-z0-9])")
AWS_ACCESS_KEY_ID = compile_text(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
GOOGLE_API_KEY = compile_text(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_])")
_B64URL = r"(?:[A-Za-z0-9_]|-(?!-))"
JWT = compile_text(
    rf"(?P<header>eyJ{_B64URL}{{6,}})\.{_B64URL}{{6,}}\.{_B64URL}*(?![A-Za-z0-9_])"  # header validated
)
BEARER = compile_text(
    r"(?<![A-Za-z0-9])(?:[Bb]earer|BEARER)[ \t]+(?P<token>[A-Za-z0-9._~+/=]+(?:-[A-Za-z0-9._~+/=]+)*)"
)
BEARER_TOKEN_SYMBOLS = frozenset("._~+/=-")

# Numbers are bounded by anything but word characters and a separator that continues them with another digit
# ("123-45-6789-01" is no SSN), so one glued to other text ("...-----END ...-----123-45-6789") still counts.
_NOT_AFTER_NUMBER = rf"(?<!\w)(?<!{_D}[-.])"
_NOT_BEFORE_NUMBER = rf"(?!\w)(?![-.,]{_D})"
US_SSN_CANDIDATE = compile_text(rf"{_NOT_AFTER_NUMBER}{_D}{{3}}-{_D}{{2}}-{_D}{{4}}{_NOT_BEFORE_NUMBER}")
BR_CPF_CANDIDATE = compile_text(
    rf"{_NOT_AFTER_NUMBER}{_D}{{3}}\.{_D}{{3}}\.{_D}{{3}}-{_D}{{2}}{_NOT_BEFORE_NUMBER}"
)
CARD_CANDIDATE = compile_text(rf"{_NOT_AFTER_NUMBER}{_D}(?:[ -]?{_D}){{12,18}}{_NOT_BEFORE_NUMBER}")
FR_NIR_CANDIDATE = compile_text(
    rf"{_NOT_AFTER_NUMBER}[12] ?{_D}{{2}} ?{_D}{{2}} ?(?:{_D}{{2}}|2[AB]) ?{_D}{{3}} ?{_D}{{3}} ?{_D}{{2}}"
    rf"{_NOT_BEFORE_NUMBER}"
)
ES_DNI_CANDIDATE = compile_text(rf"(?<!\w)(?<!\w-)(?:{_D}{{8}}|[XYZ]-?{_D}{{7}})-?[A-Z](?!\w)(?!-\w)")
NANP_PHONE_CANDIDATE = compile_text(
    rf"(?:(?<![\w+]){_NOT_AFTER_NUMBER}(?:1[ .-]?)?(?:\({_D}{{3}}\)[ .-]?|{_D}{{3}}[ .-])"
    rf"|(?<![0-9+])\({_D}{{3}}\)[ .-]?)"  # "call(415) 555-2671": a letter may come right before '('
    rf"{_D}{{3}}[ .-]{_D}{{4}}{_NOT_BEFORE_NUMBER}"
)
INTL_PHONE_CANDIDATE = compile_text(rf"(?<![0-9+])\+[1-9](?:[ .()/-]{{0,2}}{_D}){{6,16}}(?!{_D})")
IBAN_CANDIDATE = compile_text(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
IT_FISCAL_CODE_CANDIDATE = compile_text(
    r"(?<![A-Za-z0-9])[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
    r"(?![A-Za-z0-9])"
)

# Private-key block markers as bytes, for the stream masker's line-by-line state.
PRIVATE_KEY_BEGIN_BYTES = compile_bytes(r"-----BEGIN " + _PRIVATE_KEY_LABEL)
PRIVATE_KEY_END_BYTES = compile_bytes(r"-----END " + _PRIVATE_KEY_LABEL)
