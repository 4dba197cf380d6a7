"""The '@' handler finds an address by matching its local part backwards: the same span the leftmost forward
search (the definition) finds, for any text around the '@'."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from proxy.masking import patterns as P
from proxy.masking.detect import Detector

LOOKBACK = 128


def leftmost_search(text: str, at: int) -> tuple[int, int] | None:
    """The definition: the leftmost address whose '@' is this one, less what is not an address."""
    position = max(0, at - LOOKBACK)
    while True:
        email = P.EMAIL_ADDRESS.search(text, position, at + LOOKBACK * 2)
        if email is None or email.start("at") > at:
            return None
        if email.start("at") == at:
            break
        position = email.end("at")
    if not email["local"].strip(P.EMAIL_LOCAL_PUNCTUATION) or email["tld"].lower() in P.FILE_EXTENSIONS:
        return None
    return email.span()


def found_by_detector(detector: Detector, text: str, at: int) -> tuple[int, int] | None:
    found = detector._at_sign(text, at)
    return None if found is None else (found[0], found[1])


pieces = st.lists(
    st.sampled_from(["a", "b.", "'", "@", "-", "_", " ", "%40", "xn--", "é", "\t", ",", ";", ":", '"', "<",
                     ">", "(", ")", "example.com", "co", "1", "x" * 130, "o'brien", "mail.example.org"]),
    max_size=20,
).map("".join)  # fmt: skip


@given(pieces)
def test_the_backward_local_part_finds_what_the_leftmost_search_finds(text: str) -> None:
    detector = Detector(frozenset({"email"}))
    for sign in re.finditer("@", text):
        assert found_by_detector(detector, text, sign.start()) == leftmost_search(text, sign.start()), text
