"""Terminal sessions: a screen rebuilt from a keyframe equals the screen of a full replay, at any instant."""

from __future__ import annotations

import codecs
import os
import tempfile
from pathlib import Path
from typing import Any

import pyte
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings.reader import RecordingReader
from recordings.terminal import (
    MAX_SEQUENCE,
    TerminalModel,
    TerminalScreen,
    TolerantStream,
    apply_terminal_event,
    clamp_size,
)
from tests.recordings.helpers import ssh_header, write_recording


class NaiveTerminal:
    """The reference: pyte (with the two split-independence rules) fed every byte from the start."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = TerminalScreen(*clamp_size(cols, rows))
        self.stream = TolerantStream(self.screen)
        self.decoders: dict[str, Any] = {}

    def apply(self, event: list) -> None:
        if event[1] == "ssh.output":
            decoder = self.decoders.setdefault(event[2], codecs.getincrementaldecoder("utf-8")("replace"))
            self.stream.feed(decoder.decode(event[3]))
        elif event[1] == "ssh.resize":
            cols, rows = clamp_size(event[2], event[3])
            self.screen.resize(lines=rows, columns=cols)


def snapshot(screen: TerminalScreen) -> tuple:
    cells = tuple(tuple(screen.buffer[y][x] for x in range(screen.columns)) for y in range(screen.lines))
    cursor = screen.cursor
    return (
        screen.columns,
        screen.lines,
        tuple(screen.display),
        cells,
        (cursor.x, cursor.y, cursor.hidden, cursor.attrs),
        frozenset(screen.mode),
        screen.margins,
        tuple(sorted(screen.tabstops)),
        screen.title,
    )


SEQUENCES = [
    "\x1b[31m", "\x1b[1;32;44m", "\x1b[0m", "\x1b[7m", "\x1b[38;5;208m", "\x1b[48;2;10;20;30m",
    "\x1b[m", "\x1b[H", "\x1b[2J", "\x1b[K", "\x1b[1K", "\x1b[3;5H", "\x1b[10;1H", "\x1b[A",
    "\x1b[5B", "\x1b[2C", "\x1b[D", "\x1b[2;8r", "\x1b[r", "\x1b[?25l", "\x1b[?25h", "\x1b[?7l",
    "\x1b[?7h", "\x1b[4h", "\x1b[4l", "\x1b[20h", "\x1b[20l", "\x1b[?6h", "\x1b[?6l", "\x1b7",
    "\x1b8", "\x1bM", "\x1bD", "\x1bE", "\x1b[2L", "\x1b[M", "\x1b[3P", "\x1b[2@", "\x1b[4X",
    "\x1b]0;title here\x07", "\x1b]2;other\x1b\\", "\x1b[g", "\x1b[3g", "\x1bH", "\x1b[?5h",
    "\x1b[?5l", "\x1b(0", "\x1b(B", "\x0e", "\x0f", "\x1b#8", "\x1b[99999999999m", "\x1b[38;5;999m",
    "\x1bc",
]  # fmt: skip
TEXT = st.text(alphabet="abcdefgh XYZ0123456789.-_/|", min_size=1, max_size=30)
UNICODE = st.sampled_from(["é", "中文", "🙂", "e\u0301", "\u200b", "ß", "\u0e31", "ｱ"])
CONTROLS = st.sampled_from(
    ["\r\n", "\n", "\r", "\t", "\b", "\x07", "\x01", "\x7f", "\x00", "\x9b31m", "\x18"]
)
# Bulk output (a `cat` of a log) is what the writer and reader skip when it scrolls off; make it common.
BULK = st.builds(
    lambda count, width, newline: "".join(
        f"row {n} {'x' * ((n * width) % 23)}{newline}" for n in range(count)
    ),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=7),
    st.sampled_from(["\r\n", "\n", "\n\r"]),
)
PIECES = st.one_of(TEXT, TEXT, UNICODE, CONTROLS, CONTROLS, st.sampled_from(SEQUENCES), BULK, BULK)


@st.composite
def terminal_sessions(draw: st.DrawFn) -> tuple[tuple[int, int], list[list]]:
    size = (draw(st.integers(min_value=2, max_value=30)), draw(st.integers(min_value=2, max_value=12)))
    text = "".join(draw(st.lists(PIECES, min_size=1, max_size=250)))
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=20))  # arbitrary bytes: bad UTF-8, cut sequences
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=40)))
    events: list[list] = []
    t_us = 0
    start = 0
    for cut in [*cuts, len(data)]:
        t_us += draw(st.integers(min_value=0, max_value=3))
        stream = draw(st.sampled_from(["stdout", "stdout", "stderr"]))
        events.append([t_us, "ssh.output", stream, data[start:cut]])
        start = cut
        if draw(st.integers(min_value=0, max_value=15)) == 0:
            events.append([t_us, "ssh.resize", draw(st.integers(-1, 40)), draw(st.integers(-1, 14))])
    return size, events


def _check_session(size: tuple[int, int], events: list[list], key, **writer_options: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_recording(
            Path(directory) / "t.hrec",
            events,
            key,
            ssh_header(terminal_size=list(size)),
            terminal=True,
            **writer_options,
        )
        with RecordingReader(path) as reader:
            naive = NaiveTerminal(*size)
            continuous = TerminalModel(*size)
            times = sorted({event[0] for event in events})
            position = 0
            for instant in times:
                while position < len(events) and events[position][0] <= instant:
                    naive.apply(events[position])
                    apply_terminal_event(continuous, events[position])
                    position += 1
                expected = snapshot(naive.screen)
                continuous.flush()
                assert snapshot(continuous.screen) == expected, f"lazy model diverged at t={instant}"
                frame = reader.screen_at(instant)
                assert snapshot(frame.screen) == expected, f"screen_at({instant}) diverged"
                assert frame.lines == expected[2]


# HOOP_TERMINAL_EXAMPLES=5000 for a thorough local run; CI keeps the default short.
@settings(max_examples=int(os.environ.get("HOOP_TERMINAL_EXAMPLES", "150")), deadline=None)
@given(session=terminal_sessions(), chunk_max_bytes=st.integers(min_value=1, max_value=600),
       budget=st.integers(min_value=1, max_value=300))  # fmt: skip
def test_screen_at_matches_a_full_replay(signing_key, session, chunk_max_bytes: int, budget: int) -> None:
    size, events = session
    _check_session(size, events, signing_key, chunk_max_bytes=chunk_max_bytes, keyframe_replay_budget=budget)


def test_scrolled_off_output_is_skipped_without_changing_the_screen(signing_key) -> None:
    lines = [f"\x1b[1;3{n % 8}mheader {n}\x1b[0m\r\n" for n in range(5)]
    lines += [f"log line {n:05d} {'x' * (n % 70)}\r\n" for n in range(2500)]  # some wrap at 80 columns
    lines += ["tail\r\npartial"]
    data = "".join(lines).encode()
    events = [[n, "ssh.output", "stdout", data[i : i + 997]] for n, i in enumerate(range(0, len(data), 997))]
    _check_session((80, 24), events, signing_key)


def test_every_chunk_starts_with_a_keyframe(tmp_path: Path, signing_key) -> None:
    events = [[n * 10, "ssh.output", "stdout", f"\x1b[3{n % 8}mline {n}\r\n".encode()] for n in range(500)]
    path = write_recording(
        tmp_path / "k.hrec", events, signing_key, ssh_header(), terminal=True, chunk_max_bytes=900
    )
    with RecordingReader(path) as reader:
        assert len(reader.chunks) > 5
        for index in range(len(reader.chunks)):
            assert reader.chunk_events(index)[0][1] == "screen.keyframe"
        recorded = [event for event in reader.iter_events() if event[1] != "screen.keyframe"]
        assert recorded == events
        assert "line 499" in reader.screen_at(10**9).text
        assert reader.screen_at(-1).text == ""


def test_an_endless_escape_sequence_is_abandoned_and_keyframes_stay_small(
    tmp_path: Path, signing_key
) -> None:
    hostile = b"\x1b]0;" + b"A" * (MAX_SEQUENCE * 3) + b"visible"
    events = [
        [n, "ssh.output", "stdout", hostile[i : i + 500]] for n, i in enumerate(range(0, len(hostile), 500))
    ]
    path = write_recording(
        tmp_path / "h.hrec", events, signing_key, ssh_header(), terminal=True, chunk_max_bytes=700
    )
    with RecordingReader(path) as reader:
        keyframes = [event[2] for event in reader.iter_events() if event[1] == "screen.keyframe"]
        assert keyframes and max(len(frame.get("sequence", "")) for frame in keyframes) <= MAX_SEQUENCE
        model = TerminalModel(80, 24)
        for event in events:
            apply_terminal_event(model, event)
        final = reader.screen_at(events[-1][0])
        assert snapshot(final.screen) == snapshot(model.frame().screen)
        assert "visible" in final.text


def test_keyframe_round_trip_keeps_every_detail() -> None:
    model = TerminalModel(20, 6)
    model.feed_output(
        b"\x1b[2;5r\x1b[?25l\x1b[4h\x1b[31;1mred\x1b[0m \xe4\xb8\xad\x1b7\x1b[3g\x1b]0;t\x07\x1b[4"
    )
    model.feed_output(b"\xe4\xb8", "stderr")  # half a character left undecoded
    copy = TerminalModel.from_keyframe(model.keyframe())
    assert snapshot(copy.screen) == snapshot(model.frame().screen)
    for target in (model, copy):
        target.feed_output(b"1mX\x1b8Y")
        target.feed_output(b"\xad!", "stderr")
    assert snapshot(copy.frame().screen) == snapshot(model.frame().screen)
    assert "中" in copy.frame().text


SETUP = st.lists(
    st.sampled_from(
        ["\x1b[31m", "\x1b[1;44m", "\x1b[0m", "\x1b[?7l", "\x1b[?7h", "\x1b[3;7H", "\x1b[20h", "\r\n"]
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    size=st.tuples(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=5)),
    setup=SETUP,
    runs=st.lists(st.text(alphabet="abc XYZ09~", min_size=1, max_size=40), min_size=1, max_size=4),
)
def test_fast_ascii_drawing_matches_pyte(size: tuple[int, int], setup: list[str], runs: list[str]) -> None:
    fast, reference = TerminalScreen(*size), pyte.Screen(*size)
    for screen in (fast, reference):
        stream = pyte.Stream(screen)
        stream.feed("".join(setup))
        for run in runs:
            screen.draw(run)
    assert snapshot(fast) == snapshot(reference)
