"""StreamMasker: line-buffered masking that catches values split across packets, whatever the split."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.masking.masker import Masker, merge_counts
from proxy.masking.stream import StreamMasker
from tests.masking.masking_corpus import LOOK_ALIKES, PLANTED, RSA_KEY_BLOCK

ALL = ["email", "phone", "credit_card", "us_ssn", "iban", "secret", "national_id"]
MASKER = Masker(ALL)


def run(
    chunks: list[bytes], max_line: int = 64 * 1024, masker: Masker = MASKER
) -> tuple[bytes, dict[str, int]]:
    stream = StreamMasker(masker, max_line)
    out: list[bytes] = []
    counts: dict[str, int] = {}
    for chunk in chunks:
        data, found = stream.feed(chunk)
        out.append(data)
        merge_counts(counts, found)
    data, found = stream.flush()
    out.append(data)
    merge_counts(counts, found)
    assert stream.held == 0
    return b"".join(out), counts


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


PLANTED_TEXT = (
    "\n".join(
        [f"2024-01-15T10:00:{i % 60:02d}Z line {i}: {p.text}" for i, p in enumerate(PLANTED)]
        + [f"ok {look}" for look in LOOK_ALIKES]
    )
    + "\ntrailing partial line without newline alice@example.com"
).encode()


def test_a_value_split_across_two_feeds_is_caught() -> None:
    stream = StreamMasker(MASKER)
    first, counts = stream.feed(b"user alice@exa")
    assert first == b"" and counts == {}
    second, counts = stream.feed(b"mple.com logged in\nnext")
    assert second == b"user [EMAIL] logged in\n" and counts == {"email": 1}
    assert stream.flush() == (b"next", {})


def test_every_planted_value_in_a_stream_is_masked() -> None:
    out, counts = run([PLANTED_TEXT])
    for planted in PLANTED:
        assert planted.hidden.splitlines()[0].encode() not in out, planted
    assert set(counts) >= {"email", "phone", "credit_card", "us_ssn", "iban", "secret"}


def test_feeding_byte_by_byte_gives_the_same_output_as_feeding_whole() -> None:
    whole = run([PLANTED_TEXT])
    assert run([PLANTED_TEXT[i : i + 1] for i in range(len(PLANTED_TEXT))]) == whole


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(PLANTED_TEXT)), max_size=40))
def test_any_split_of_a_planted_text_gives_the_same_output_as_feeding_it_whole(cuts: list[int]) -> None:
    assert run(split_at(PLANTED_TEXT, cuts)) == run([PLANTED_TEXT])


LONG_LINES = (
    b"short alice@example.com\n"
    + b"x" * 150
    + b" bob@example.com "
    + "é".encode() * 70
    + b" 4242 4242 4242 4242\n"
    + b"y" * 300
    + b"\n\n(415) 555-2671 tail"
)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(LONG_LINES)), max_size=30))
def test_long_lines_are_cut_at_the_same_places_whatever_the_split(cuts: list[int]) -> None:
    whole = run([LONG_LINES], max_line=64)
    assert run(split_at(LONG_LINES, cuts), max_line=64) == whole
    whole[0].decode("utf-8")  # cuts fall on character boundaries: still valid UTF-8


def test_memory_is_bounded_by_max_line() -> None:
    stream = StreamMasker(MASKER, max_line=1024)
    emitted = 0
    for _ in range(100):
        data, _ = stream.feed(b"z" * 700)
        emitted += len(data)
        assert stream.held <= 1024
    assert emitted + stream.held == 70_000


def test_a_private_key_block_is_masked_line_by_line_even_when_split() -> None:
    text = f"before\n{RSA_KEY_BLOCK}\nafter alice@example.com\n".encode()
    expected = b"before\n[SECRET]\n[SECRET]\n[SECRET]\n[SECRET]\nafter [EMAIL]\n"
    assert run([text]) == (expected, {"secret": 1, "email": 1})
    assert run([text[i : i + 7] for i in range(0, len(text), 7)]) == (expected, {"secret": 1, "email": 1})
    for line in RSA_KEY_BLOCK.splitlines()[1:-1]:
        assert line.encode() not in run([text])[0]


def test_a_private_key_block_cut_by_max_line_keeps_being_masked() -> None:
    body = b"\n".join([b"A" * 60] * 6)
    text = (
        b"-----BEGIN PRIVATE KEY-----"
        + b"B" * 200
        + b"\n"
        + body
        + b"\n-----END PRIVATE KEY----- done\nnext\n"
    )
    out, counts = run([text], max_line=64)
    assert b"A" * 10 not in out and b"B" * 10 not in out
    assert out.endswith(b"[SECRET] done\nnext\n")
    assert counts == {"secret": 1}


def test_a_disabled_masker_passes_bytes_straight_through() -> None:
    stream = StreamMasker(Masker([]))
    assert stream.feed(b"alice@example.com partial") == (b"alice@example.com partial", {})
    assert stream.flush() == (b"", {})


def test_terminal_output_with_crlf_and_escape_sequences() -> None:
    text = b"\x1b[1mName:\x1b[0m alice@example.com\r\n\x1b[32mok\x1b[0m 123-45-6789\r\n"
    assert run([text]) == (
        b"\x1b[1mName:\x1b[0m [EMAIL]\r\n\x1b[32mok\x1b[0m [US_SSN]\r\n",
        {"email": 1, "us_ssn": 1},
    )
