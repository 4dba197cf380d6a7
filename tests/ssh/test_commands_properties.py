"""Properties of analyse_command: never raises on any text, and whatever real bash runs is seen or opaque."""

from __future__ import annotations

import itertools
import os
import posixpath
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.ssh.commands import CommandAnalysis, analyse_command

KINDS = frozenset({"exec", "file_write", "opaque"})

# Pieces of shell syntax, so generated lines reach deep into the parser. Deliberately without `/`, `.`, `~`,
# `cd`, `-p`, `kill`, `(` and function definitions: the differential test below runs these lines in real
# bash, and nothing generated may reach a real program or fork without bound.
SHELL_TOKENS = [
    "rm", "reboot", "ls", "x", "-rf", "-c", "'r'm", '"r"m', "r''m", "\\rm", "$'\\x72\\x6d'", "$'\\162m'",
    "$X", "${X}", "${X:-rm}", '"$@"', "$(", ")", "`", "'", '"', "|", ";", "&&", "||", "\n", " ", " ",
    "$(rm)", "`reboot`", "$(echo rm)", "eval", "echo", "printf", "bash", "<<<", "<<", "<<-", "EOF",
    "<<'EOF'", "\nEOF\n", "{", "}", "{ ", " }", "if", "then", "fi", "else", "for i in a b;", "do", "done",
    "while false;", "#", "\\", "\\\n", "*", "?", "[", "]", "{rm,ls}", "=", "X=1", "X=", ">", ">>", "2>&1",
    ">&2", "<", "!", "trap", "EXIT", "time", "builtin", "command", "case", "in", "esac", ";;", "$((1))",
    "${#X}", "${X/a/b}", "\t", "r", "m", "$'", "\\'", '\\"', "\\$",
]  # fmt: skip

shell_lines = st.lists(st.sampled_from(SHELL_TOKENS), max_size=24).map("".join)

# Well-formed lines from a small grammar, for the differential tests: words spelled every way bash allows.
WORD_VALUES = ["rm", "ls", "reboot", "x", "-rf", "a b", "it's", 'say "hi"', "tab\there", "back\\slash",
               "$dollar", "semi;colon", "#hash", "new\nline", "", "{a,b}", "*"]  # fmt: skip


def spell(value: str, style: int) -> str:
    """One way to write `value` as a single bash word."""
    if style == 0 and value and "\n" not in value:
        return "".join(char if char.isalnum() or char in "-_" else "\\" + char for char in value)
    if style == 1:
        return "'" + value.replace("'", "'\\''") + "'"
    if style == 2:
        return '"' + "".join("\\" + char if char in '\\"$`' else char for char in value) + '"'
    if style == 3:
        return "$'" + "".join(f"\\x{ord(char):02x}" if ord(char) < 128 else char for char in value) + "'"
    if style == 4:
        return '$"' + "".join("\\" + char if char in '\\"$`' else char for char in value) + '"'
    half = len(value) // 2
    return spell(value[:half], 1) + spell(value[half:], 2)


static_words = st.builds(spell, st.sampled_from(WORD_VALUES), st.integers(0, 5))
dynamic_words = st.sampled_from(
    ["$X", '"$X"', "${X:-rm}", "$1", '"$@"', "r*", "{rm,ls}", "$(echo rm)", "x$X"]
)
redirections = st.sampled_from(
    ["", "", " > out", " 2>/dev/null", " >> out 2>&1", " < in", " # c; rm", " &>o"]
)


def grammar_lines(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    simple = st.builds(
        lambda assignments, argv, redirection: " ".join([*assignments, *argv]) + redirection,
        st.lists(st.sampled_from(["X=1", "Y='a b'", "Z=$(rm)"]), max_size=1),
        st.lists(words, min_size=1, max_size=4),
        redirections,
    )

    def compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        operators = st.sampled_from([" | ", "; ", " && ", " || ", "\n", " & "])
        prefixes = st.sampled_from(["command", "builtin command", "time -p", "!", "time X=1"])
        return st.one_of(
            st.builds(lambda a, operator, b: a + operator + b, inner, operators, inner),
            st.builds(lambda a: "{ " + a + "; }", inner),
            st.builds(lambda c, a, b: f"if {c}; then {a}; else {b}; fi", inner, inner, inner),
            st.builds(lambda a: f"for i in a b; do {a}; done", inner),
            st.builds(lambda a: f"echo $({a})", inner),
            st.builds(lambda a: "bash -c " + spell(a, 1), inner),
            st.builds(lambda a: "eval " + spell(a, 1), inner),
            st.builds(lambda a: "trap " + spell(a, 1) + " EXIT", inner),
            st.builds(lambda a: f"bash <<'EOF'\n{a}\nEOF\n", inner),
            st.builds(lambda a: f"cat <<EOF\n$({a})\nEOF\n", inner),
            st.builds(lambda a: "echo " + spell(a, 1) + " | bash", inner),
            st.builds(lambda a: "bash <<< " + spell(a, 2), inner),
            st.builds(lambda prefix, a: prefix + " " + a, prefixes, inner),
            st.builds(lambda a: "# comment\n" + a + " \\\n", inner),
        )

    return st.recursive(simple, compound, max_leaves=6)


def check_invariants(line: str, analysis: CommandAnalysis) -> None:
    assert isinstance(analysis, CommandAnalysis)
    assert analysis.text == line
    assert analysis.kinds <= KINDS
    assert ("exec" in analysis.kinds) == bool(analysis.commands)
    for argv in analysis.commands:
        assert isinstance(argv, tuple) and argv and all(isinstance(arg, str) for arg in argv)
    assert bool(analysis.reasons) == bool(analysis.kinds & {"file_write", "opaque"})
    assert not any("internal error" in reason for reason in analysis.reasons), analysis


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(line: str) -> None:
    check_invariants(line, analyse_command(line))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shell_lines)
def test_shell_like_text_never_raises(line: str) -> None:
    analysis = analyse_command(line)
    check_invariants(line, analysis)
    assert analyse_command(line) == analysis  # deterministic


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from("$'\"`\\(){}<>|&;#\n x-=*?[]!~r"), max_size=60))
def test_punctuation_soup_never_raises(line: str) -> None:
    check_invariants(line, analyse_command(line))


# -- differential: what real bash runs ---------------------------------------------------------------------

# bash is started with an empty PATH, so every external program it tries to run ends up in
# command_not_found_handle, which logs the argv instead of running anything.
_LOGGING_HANDLER = """\
command_not_found_handle() {
    local IFS=$'\\x1f'
    printf '%s\\x1e' "$*" >> "$HOOP_TEST_LOG"
    return 127
}
"""
_BASH = shutil.which("bash")
_RUNS = itertools.count()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    assert _BASH is not None
    root = tmp_path_factory.mktemp("bash-sandbox")
    paths = {"empty_path": root / "path", "cwd": root / "cwd", "env": root / "env.sh", "log": root / "log"}
    paths["empty_path"].mkdir()
    paths["cwd"].mkdir()
    paths["env"].write_text(_LOGGING_HANDLER)
    # The one real program on PATH: bash itself, so `bash -c ...` and `... | bash` run their code too.
    (paths["empty_path"] / "bash").symlink_to(_BASH)
    yield paths


def run_in_bash(line: str, sandbox: dict[str, Path]) -> list[list[str]]:
    """The argv of every external program bash tried to run for `line` (none of them actually runs)."""
    assert _BASH is not None
    # A fresh log per line: a process of an earlier line, killed but not yet gone, must not write into this
    # line's record (a shared, truncated log made this test flaky under load).
    log = sandbox["log"].with_name(f"log-{next(_RUNS)}")
    log.write_bytes(b"")
    environment = {
        "PATH": str(sandbox["empty_path"]),
        "HOME": str(sandbox["cwd"]),
        "BASH_ENV": str(sandbox["env"]),
        "HOOP_TEST_LOG": str(log),
    }
    process = subprocess.Popen(
        [_BASH, "-c", line],
        cwd=sandbox["cwd"],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    records = log.read_bytes().decode("utf-8", "replace").split("\x1e")
    log.unlink()
    return [record.split("\x1f") for record in records if record]


@pytest.mark.skipif(_BASH is None, reason="needs bash")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shell_lines)
def test_every_program_bash_runs_is_seen_or_opaque(sandbox: dict[str, Path], line: str) -> None:
    analysis = analyse_command(line)
    if "opaque" in analysis.kinds:
        return  # the gateway fails closed on this line whatever bash would do
    seen = {posixpath.basename(argv[0]) for argv in analysis.commands}
    for argv in run_in_bash(line, sandbox):
        assert argv[0] in seen, (line, argv, analysis)


@pytest.mark.skipif(_BASH is None, reason="needs bash")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grammar_lines(st.one_of(static_words, dynamic_words)))
def test_every_program_in_well_formed_lines_is_seen_or_opaque(sandbox: dict[str, Path], line: str) -> None:
    analysis = analyse_command(line)
    if "opaque" in analysis.kinds:
        return
    seen = {posixpath.basename(argv[0]) for argv in analysis.commands}
    for argv in run_in_bash(line, sandbox):
        assert argv[0] in seen, (line, argv, analysis)


@pytest.mark.skipif(_BASH is None, reason="needs bash")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grammar_lines(static_words))
def test_static_words_resolve_to_the_argv_bash_runs(sandbox: dict[str, Path], line: str) -> None:
    """Quote removal matches bash exactly, so argument globs in the policy see the real arguments."""
    analysis = analyse_command(line)
    if "opaque" in analysis.kinds:
        return
    for argv in run_in_bash(line, sandbox):
        assert tuple(argv) in analysis.commands, (line, argv, analysis)


@pytest.mark.skipif(_BASH is None, reason="needs bash")
@pytest.mark.parametrize(
    "line",
    [
        "r''m -rf x; time $'\\x72m' y",
        "$X reboot",
        "trap 'rm q' EXIT",
        "echo ${X:-$(rm w)}",
        "bash -c 'rm z'",
        "{rm,ls} x",
        "echo rm | bash",
        "bash <<< 'reboot'",
        "cat <<EOF\n$(reboot)\nEOF",
    ],
)
def test_the_sandbox_sees_what_bash_runs(sandbox: dict[str, Path], line: str) -> None:
    """The differential test's own check: the sandbox does log what bash tries to run."""
    assert run_in_bash(line, sandbox), line
