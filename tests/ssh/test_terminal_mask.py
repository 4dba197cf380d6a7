"""The second, screen-level reading of pty output: values split by cursor control are masked too."""

from __future__ import annotations

import pytest

from proxy.masking.masker import Masker
from proxy.ssh.terminal_mask import TerminalMasker, visible_text


@pytest.fixture(scope="module")
def screen_masker() -> TerminalMasker:
    return TerminalMasker(Masker(["email", "us_ssn", "secret"], secret=b"k" * 32))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text", "plain text"),
        ("dave@\r@example.net", "dave@example.net"),  # readline's redraw at the right margin
        ("\x1b[01;32mroot@vm\x1b[00m:~# ls", "root@vm:~# ls"),
        ("abc\x08d", "abd"),
        ("\x1b]0;title\x07prompt$ ", "prompt$ "),
        ("ends with\r", "ends with"),
    ],
)
def test_visible_text_is_what_the_screen_paints(raw: str, shown: str) -> None:
    text, where = visible_text(raw)
    assert text == shown
    assert [raw[index] for index in where] == list(shown)


@pytest.mark.parametrize(
    ("raw", "planted"),
    [
        (b"$ echo pty-42 dave@\r@example.net\r\n", b"dave@"),
        (b"mail: \x1b[1malice.smith\x1b[0m@example.org\r\n", b"alice.smith"),
        (b"ssn 078-05-x\x081120\r\n", b"078-05"),
    ],
)
def test_a_value_split_by_cursor_control_is_masked(screen_masker: TerminalMasker, raw: bytes, planted: bytes):
    masked, counts = screen_masker.mask(raw)
    assert planted not in masked
    assert sum(counts.values()) == 1
    assert masked.endswith(b"\r\n")


def test_output_without_cursor_control_is_returned_as_is(screen_masker: TerminalMasker) -> None:
    data = b"total 12\r\n-rw-r--r-- 1 root root 42 app.log\r\n"
    masked, counts = screen_masker.mask(data)
    assert masked is data
    assert counts == {}
