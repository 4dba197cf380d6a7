"""Analysis of an SSH exec command line: every simple command it would run, file writes, opaque parts."""

from __future__ import annotations

import functools
import itertools
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bashlex
import bashlex.errors

from proxy.ssh.wrappers import (
    HARMLESS_WRITE_TARGETS,
    Invocation,
    Word,
    program_effects,
    risky_variable,
)

__all__ = ["MAX_CODE_DEPTH", "CommandAnalysis", "analyse_command"]

MAX_CODE_DEPTH = 8  # shell code inside shell code (sh -c "sh -c ..."); deeper is opaque
# bashlex costs about 20 µs per character, so both the line and the total parsing are bounded.
_MAX_TEXT = 4 * 1024  # longer command lines are not parsed at all: opaque
_MAX_PARSED_CHARACTERS = 8 * 1024  # all bashlex runs of one line, nested code and scans included
_MAX_PARSES = 256  # bashlex runs per line, however short each is
_MAX_NODE_NESTING = 120  # syntax-tree depth (subshells in substitutions in ...); deeper is opaque
_MAX_WRAPPERS = 32  # sudo env nice sudo ...: one command wrapped this many times is opaque
_MAX_CACHED_TEXT = 2048  # only lines this short are cached, so the cache stays a few MiB at most
_MAX_SUBSTITUTION_TRIES = 64  # candidate ends tried for one `$(` bashlex did not parse itself
_MAX_REASON = 200  # characters per reason
_MAX_PARAMETER_NESTING = 8  # ${a:-${b:-...}} deeper than this is opaque
_MAX_BRACE_GROUPS = 12  # brace expansion is only done for words with fewer `{` than this
_MAX_BRACE_WORDS = 64  # ... and only when it yields at most this many words

Node = Any  # bashlex.ast.node: attributes vary by kind


@dataclass(frozen=True, slots=True)
class CommandAnalysis:
    commands: tuple[tuple[str, ...], ...]  # every simple command that would run (argv), wrappers included
    kinds: frozenset[str]  # subset of {"exec", "file_write", "opaque"}
    reasons: tuple[str, ...]  # why it is file_write / opaque, for people
    text: str


def analyse_command(command_line: str) -> CommandAnalysis:
    """Every simple command `command_line` would run, as argv, with wrappers looked through.

    Never raises: what cannot be analysed (or fails to) is reported as kind "opaque" with a reason.
    """
    if not isinstance(command_line, str):
        return CommandAnalysis(
            (), frozenset({"opaque"}), ("the command line is not text",), repr(command_line)
        )
    if len(command_line) <= _MAX_CACHED_TEXT:
        return _cached_analysis(command_line)
    return _analyse(command_line)


@functools.lru_cache(maxsize=2048)
def _cached_analysis(command_line: str) -> CommandAnalysis:
    return _analyse(command_line)


def _analyse(command_line: str) -> CommandAnalysis:
    findings = _Findings()
    try:
        if len(command_line) > _MAX_TEXT:
            findings.opaque(f"the command line is longer than {_MAX_TEXT} characters")
        else:
            _analyse_code(command_line, findings, 0, _SESSION_INPUT)
    except RecursionError:
        findings.opaque("the command line is nested too deeply to analyse")
    except Exception:  # a bug here must not let a command through unanalysed: fail closed
        findings.opaque("cannot analyse the command line (internal error)")
    return CommandAnalysis(
        tuple(findings.commands), frozenset(findings.kinds), tuple(findings.reasons), command_line
    )


class _Findings:
    """What the walk has found so far, across all nested code of one command line."""

    __slots__ = ("commands", "kinds", "parsed_characters", "parses", "reasons")

    def __init__(self) -> None:
        self.commands: dict[tuple[str, ...], None] = {}  # ordered set
        self.kinds: set[str] = set()
        self.reasons: dict[str, None] = {}
        self.parses = 0
        self.parsed_characters = 0

    def command(self, argv: tuple[str, ...]) -> None:
        self.commands.setdefault(argv)
        self.kinds.add("exec")

    def opaque(self, reason: str) -> None:
        self.kinds.add("opaque")
        self.reasons.setdefault(_shorten(reason))

    def file_write(self, reason: str) -> None:
        self.kinds.add("file_write")
        self.reasons.setdefault(_shorten(reason))

    def spend_parse(self, text: str) -> bool:
        """Whether parsing `text` still fits the line's budget (counted as spent either way)."""
        self.parses += 1
        self.parsed_characters += len(text)
        return self.parses <= _MAX_PARSES and self.parsed_characters <= _MAX_PARSED_CHARACTERS


def _shorten(reason: str) -> str:
    """Reasons quote pieces of the line; a reviewer needs the gist, not 16 KiB of it."""
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


@dataclass(frozen=True, slots=True)
class _Input:
    """What a command reads on stdin: literal text when the command line fixes it, else its source."""

    literal: str | None
    source: str


_SESSION_INPUT = _Input(None, "the session's input")


@dataclass(frozen=True, slots=True)
class _Output:
    """What a command writes to a pipe: literal text when known (echo 'rm x' | sh), else None."""

    literal: str | None
    producer: str


_NO_OUTPUT = _Output(None, "a compound command")


# -- parsing -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parse:
    trees: list[Node]
    heredoc_delimiters: dict[int, tuple[int, str]]  # quoted delimiter start → (end as written, delimiter)
    problem: str | None  # the parse cannot be trusted completely (opaque), though it is still walked
    open_comment_at_end: bool  # the text ends inside a comment (so a `)` after it would be commented out)


def _parse(text: str) -> _Parse:
    """bashlex's parse of `text`, with its gaps worked around and checked. Raises what bashlex raises."""
    parse_text, delimiters = _unquote_heredoc_delimiters(text)
    # bashlex has no grammar for the `time` and `coproc` keywords; as plain words they are unwrapped like
    # /usr/bin/time. The swap keeps every offset, and words are read back from the original text.
    parse_text = parse_text.replace("time", "TIME").replace("coproc", "COPROC")
    if (len(text) - len(text.rstrip("\\"))) % 2:
        # bash keeps a backslash that ends the input as a character; bashlex would join it to the newline
        # added below.
        raise bashlex.errors.ParsingError("the line ends with a backslash", text, len(text) - 1)
    if not parse_text.endswith("\n"):
        parse_text += "\n"  # bashlex only finds a here-document's last line when a newline ends it
    trees = bashlex.parse(parse_text)
    problem = _check_heredocs(trees, delimiters) if "<<" in text else None
    uncovered, open_comment = _check_coverage(text, trees, delimiters)
    return _Parse(trees, delimiters, problem or uncovered, open_comment)


def _describe_parse_error(error: Exception) -> str:
    if isinstance(error, NotImplementedError):
        message = str(error)
        for needle, construct in (
            ("arithmetic", "arithmetic expansion"),
            ("pattern", "case statement"),
            ("case", "case statement"),
            ("select", "select loop"),
            ("coproc", "coproc"),
        ):
            if needle in message:
                return f"cannot parse: unsupported shell syntax ({construct})"
        return "cannot parse: unsupported shell syntax"
    if isinstance(error, bashlex.errors.ParsingError):
        return f"cannot parse: {error.message}"
    return f"cannot parse: the shell parser failed ({type(error).__name__})"


def _iter_nodes(node: Node) -> Iterator[Node]:
    """Every node under `node` (itself included), without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for attribute in ("parts", "list", "redirects"):
            children = getattr(current, attribute, None)
            if isinstance(children, list):
                stack.extend(child for child in children if hasattr(child, "kind"))
        for attribute in ("command", "output", "heredoc"):
            child = getattr(current, attribute, None)
            if hasattr(child, "kind"):
                stack.append(child)


def _check_heredocs(trees: list[Node], delimiters: dict[int, tuple[int, str]]) -> str | None:
    """Every delimiter we unquoted must be a here-document delimiter in bashlex's parse, and have a body."""
    found: set[int] = set()
    for tree in trees:
        for node in _iter_nodes(tree):
            if node.kind == "redirect" and node.type in ("<<", "<<-"):
                if getattr(node, "heredoc", None) is None:
                    return "cannot parse: a here-document has no body"
                found.add(node.output.pos[0])
    if not set(delimiters) <= found:
        return "cannot parse: here-document delimiters are ambiguous"
    return None


_COMMENT_BEFORE = frozenset(" \t\n;&|()")
_SUBSTITUTION_OPENERS = ("$(", "<(", ">(", "`")


def _check_coverage(
    text: str, trees: list[Node], delimiters: dict[int, tuple[int, str]]
) -> tuple[str | None, bool]:
    """Everything bashlex did not turn into a token must be blanks or comments.

    bashlex silently drops what it does not understand in a few places; a dropped command must not go
    unanalysed. Returns (problem, whether the text ends inside a comment).
    """
    covered = bytearray(len(text))

    def mark(start: int, end: int) -> None:
        start = max(0, min(start, len(text)))
        end = max(start, min(end, len(text)))
        covered[start:end] = b"\x01" * (end - start)

    for start, (end, _) in delimiters.items():
        mark(start, end)  # a quoted delimiter is longer as written than the word bashlex saw
    for tree in trees:
        for node in _iter_nodes(tree):
            kind = node.kind
            if kind in ("operator", "reservedword", "pipe", "heredoc"):
                mark(*node.pos)
            elif kind in ("word", "assignment"):
                # The word's own characters; the commands substituted into it mark their own tokens.
                position = node.pos[0]
                for part in sorted(
                    (p for p in node.parts if p.kind in ("commandsubstitution", "processsubstitution")),
                    key=lambda p: p.pos[0],
                ):
                    opener = next((o for o in _SUBSTITUTION_OPENERS if text.startswith(o, part.pos[0])), "$(")
                    mark(position, part.pos[0] + len(opener))
                    position = part.pos[1] - 1
                mark(position, node.pos[1])
            elif kind == "redirect":
                output = node.output
                mark(node.pos[0], output.pos[0] if hasattr(output, "kind") else node.pos[1])
    index = 0
    while index < len(text):
        if covered[index]:
            index += 1
            continue
        char = text[index]
        if char in " \t\n":
            index += 1
        elif char == "\\" and text.startswith("\n", index + 1):
            index += 2
        elif char == "#" and (index == 0 or text[index - 1] in _COMMENT_BEFORE):
            end = text.find("\n", index)
            if end < 0:
                return None, True
            index = end
        else:
            snippet = text[index : index + 24]
            return f"cannot parse: the shell parser skipped {snippet!r}", False
    return None, False


# -- quoted here-document delimiters -------------------------------------------------------------------------

_WORD_END = frozenset(" \t\n;&|<>()")


def _unquote_heredoc_delimiters(text: str) -> tuple[str, dict[int, tuple[int, str]]]:
    """Rewrite `<<'EOF'` to `<<EOF  ` (same length): bashlex compares body lines with the quoted spelling.

    Returns the rewritten text and {delimiter start: (end as written, delimiter)}. _check_heredocs later
    proves every rewrite landed on a real here-document delimiter, so a misread here can only make the line
    opaque.
    """
    if "<<" not in text:
        return text, {}
    chars = list(text)
    delimiters: dict[int, tuple[int, str]] = {}
    pending: list[tuple[str, bool]] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
        elif char == "'":
            close = text.find("'", index + 1)
            index = length if close < 0 else close + 1
        elif char == '"':
            index = _quoted_end(text, index + 1, '"')
        elif char == "`":
            index = _quoted_end(text, index + 1, "`")
        elif char == "$" and text.startswith("'", index + 1):
            index = _ansi_c_end(text, index + 2)
        elif char == "#" and (index == 0 or text[index - 1] in _COMMENT_BEFORE):
            end = text.find("\n", index)
            index = length if end < 0 else end
        elif char == "\n":
            index += 1
            for delimiter, strip_tabs in pending:
                index = _heredoc_body_end(text, index, delimiter, strip_tabs)
            pending.clear()
        elif text.startswith("<<<", index):
            index += 3
        elif text.startswith("<<", index):
            start = index + 2
            strip_tabs = text.startswith("-", start)
            start += strip_tabs
            while start < length and text[start] in " \t":
                start += 1
            end, delimiter, quoted = _read_delimiter(text, start)
            if quoted and delimiter and not (set(delimiter) & (_WORD_END | set("'\"\\$`"))):
                chars[start:end] = delimiter + " " * (end - start - len(delimiter))
                delimiters[start] = (end, delimiter)
            pending.append((delimiter, strip_tabs))
            index = max(end, index + 2)
        else:
            index += 1
    return "".join(chars), delimiters


def _quoted_end(text: str, index: int, quote: str) -> int:
    """Index after the closing `quote` (backslash escapes honoured); len(text) when unterminated."""
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text[index] == quote:
            return index + 1
        else:
            index += 1
    return len(text)


def _ansi_c_end(text: str, index: int) -> int:
    return _quoted_end(text, index, "'")


def _read_delimiter(text: str, index: int) -> tuple[int, str, bool]:
    """(end, delimiter after quote removal, whether it was quoted) for the word starting at `index`."""
    parts: list[str] = []
    quoted = False
    while index < len(text) and text[index] not in _WORD_END:
        char = text[index]
        if char == "\\":
            quoted = True
            parts.append(text[index + 1 : index + 2])
            index += 2
        elif char in "'\"":
            quoted = True
            close = _quoted_end(text, index + 1, char) if char == '"' else text.find("'", index + 1) + 1
            if close <= 0:
                return len(text), "", True
            parts.append(text[index + 1 : close - 1])
            index = close
        else:
            parts.append(char)
            index += 1
    return index, "".join(parts), quoted


def _heredoc_body_end(text: str, index: int, delimiter: str, strip_tabs: bool) -> int:
    while index < len(text):
        end = text.find("\n", index)
        line = text[index : len(text) if end < 0 else end]
        index = len(text) if end < 0 else end + 1
        if (line.lstrip("\t") if strip_tabs else line) == delimiter:
            break
    return index


# -- words ---------------------------------------------------------------------------------------------------

_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]|[@*#?$!-]")
_PARAMETER_BASE = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:\[(?:[0-9]+|@|\*)\])?"
_SIMPLE_PARAMETER = re.compile(rf"#?{_PARAMETER_BASE}")
_PARAMETER_WITH_WORD = re.compile(
    rf"({_PARAMETER_BASE})(:?[-=+?]|##?|%%?|//?|/#|/%|\^\^?|,,?)(.*)", re.DOTALL
)
_PARAMETER_SUBSTRING = re.compile(rf"{_PARAMETER_BASE}(?::\s*-?\s*[0-9]+\s*){{1,2}}")
_BRACE_EXPANSION = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_ANSI_C_SIMPLE = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
    "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
_ANSI_C_NUMERIC = (("x", 16, 2), ("u", 16, 4), ("U", 16, 8))


@dataclass(slots=True)
class _ReadWord:
    word: Word
    problems: list[str]  # reasons the line is opaque
    nested_code: list[str]  # code bashlex left unparsed (inside ${...}): analysed best effort


def _starts_expansion(following: str, *, quoted: bool) -> bool:
    """Whether `$` then `following` starts an expansion: $x, ${, $(, and outside quotes $'...' and $"..."."""
    if not following:
        return False
    return following.isalnum() or following in "({[_@*#?$!-" or (not quoted and following in "'\"")


class _WordReader:
    """Reads one word as bash would: quote removal, and which parts only exist at run time.

    It also checks bashlex: a word that holds an unquoted blank or operator, or an unterminated quote,
    means bashlex split the line differently from bash, and the line is opaque.
    """

    def __init__(self, raw: str, offset: int, substitutions: dict[int, int]) -> None:
        self.raw = raw
        self.offset = offset
        self.substitutions = substitutions  # absolute start → absolute end of bashlex-parsed substitutions
        self.out: list[str] = []
        self.skeleton: list[str] = []  # unquoted characters as written; "_" for quoted or expanded ones
        self.known = True
        self.expansions = 0
        self.literal = 0
        self.problems: list[str] = []
        self.nested_code: list[str] = []

    def read(self) -> _ReadWord:
        index = self._read_from(0)
        if index < len(self.raw):
            self.out.append(self.raw[index:])
            self.known = False
        skeleton = "".join(self.skeleton)
        if skeleton.startswith("~") or _BRACE_EXPANSION.search(skeleton):
            self.known = False
        word = Word(
            "".join(self.out),
            self.raw,
            known=self.known,
            may_vanish=self.expansions > 0 and self.literal == 0,
        )
        return _ReadWord(word, self.problems, self.nested_code)

    def _disagree(self) -> int:
        self.problems.append(f"cannot parse the word {self.raw!r}")
        return len(self.raw)

    def _substitution_at(self, index: int) -> int | None:
        end = self.substitutions.get(self.offset + index)
        return None if end is None else end - self.offset

    def _expansion(self, text: str) -> None:
        self.out.append(text)
        self.skeleton.append("_")
        self.known = False
        self.expansions += 1

    def _read_from(self, index: int) -> int:
        raw = self.raw
        while index < len(raw):
            end = self._substitution_at(index)
            if end is not None:
                self._expansion(raw[index:end])
                index = end
                continue
            char = raw[index]
            if char == "\\":
                if raw.startswith("\n", index + 1):
                    index += 2
                    continue
                self.out.append(raw[index + 1 : index + 2] or "\\")
                self.skeleton.append("_")
                self.literal += 1
                index += 2
            elif char == "'":
                close = raw.find("'", index + 1)
                if close < 0:
                    return self._disagree()
                self.out.append(raw[index + 1 : close])
                self.skeleton.append("_")
                self.literal += 1
                index = close + 1
            elif char == '"':
                index = self._double_quoted(index + 1)
            elif char == "$" and _starts_expansion(raw[index + 1 : index + 2], quoted=False):
                index = self._dollar(index, quoted=False)
            elif char == "`" or char in _WORD_END:
                return self._disagree()
            else:
                if char in "*?[":
                    self.known = False  # a glob: the name depends on files present at run time
                self.out.append(char)
                self.skeleton.append(char)
                self.literal += 1
                index += 1
        return index

    def _double_quoted(self, index: int) -> int:
        raw = self.raw
        only_all_arguments = True  # "$@" alone expands to no word at all when there are no arguments
        self.skeleton.append("_")
        while index < len(raw):
            end = self._substitution_at(index)
            if end is not None:
                self._expansion(raw[index:end])
                only_all_arguments = False
                index = end
                continue
            char = raw[index]
            if char == '"':
                if not only_all_arguments:
                    self.literal += 1
                return index + 1
            if char == "\\" and raw[index + 1 : index + 2] in ("$", "`", '"', "\\", "\n"):
                if raw[index + 1] != "\n":
                    self.out.append(raw[index + 1])
                    only_all_arguments = False
                index += 2
            elif char == "$" and _starts_expansion(raw[index + 1 : index + 2], quoted=True):
                before = len(self.out)
                index = self._dollar(index, quoted=True)
                if "".join(self.out[before:]) not in ("$@", "${@}"):
                    only_all_arguments = False
            elif char == "`":
                return self._disagree()
            else:
                self.out.append(char)
                only_all_arguments = False
                index += 1
        return self._disagree()

    def _dollar(self, index: int, *, quoted: bool) -> int:
        raw = self.raw
        following = raw[index + 1]
        if following == "'" and not quoted:
            return self._ansi_c(index + 2)
        if following == '"' and not quoted:
            return index + 1  # $"..." is a translatable string: read it as "..."
        if following in "([":
            # bashlex gives every command substitution a node; a `$(` without one is arithmetic or a
            # disagreement between the parsers.
            arithmetic = raw.startswith("$((", index) or following == "["
            self.problems.append(
                "arithmetic expansion can run commands through array subscripts"
                if arithmetic
                else f"cannot parse the word {raw!r}"
            )
            self._expansion(raw[index:])
            return len(raw)
        if following == "{":
            end = _brace_end(raw, index)
            if end < 0:
                return self._disagree()
            _check_parameter(raw[index + 2 : end - 1], self.problems, self.nested_code)
            self._expansion(raw[index:end])
            return end
        match = _PARAMETER_NAME.match(raw, index + 1)
        if match is None:  # `$` before a letter bash does not take for a name (é): a literal `$`
            self.out.append("$")
            self.skeleton.append("$")
            self.literal += 1
            return index + 1
        self._expansion(raw[index : match.end()])
        return match.end()

    def _ansi_c(self, index: int) -> int:
        """$'...': decoded when every escape is understood, else the word is not known statically."""
        raw = self.raw
        segment_start = index - 2
        decoded: list[str] = []
        understood = True
        truncated = False  # bash ends the string at a NUL byte
        while index < len(raw):
            char = raw[index]
            if char == "'":
                self.out.append("".join(decoded) if understood else raw[segment_start : index + 1])
                self.skeleton.append("_")
                self.literal += 1
                if not understood:
                    self.known = False
                return index + 1
            if char != "\\":
                piece, index = char, index + 1
            else:
                piece, index, ok = _ansi_c_escape(raw, index + 1)
                understood = understood and ok
            if piece == "\0":
                truncated = True
            if not truncated:
                decoded.append(piece)
        return self._disagree()


def _ansi_c_escape(raw: str, index: int) -> tuple[str, int, bool]:
    """(decoded text, index after the escape, understood) for the escape whose letter is at `index`."""
    letter = raw[index : index + 1]
    if not letter:
        return "", index, False
    if letter in _ANSI_C_SIMPLE:
        return _ANSI_C_SIMPLE[letter], index + 1, True
    if letter == "c" and index + 1 < len(raw):
        control = raw[index + 1]
        return ("\x7f" if control == "?" else chr(ord(control) & 0x1F)), index + 2, control.isascii()
    for prefix, base, width in _ANSI_C_NUMERIC:
        if letter == prefix:
            digits = re.match(rf"[0-9a-fA-F]{{1,{width}}}", raw[index + 1 :])
            if digits is None:
                return "\\" + letter, index + 1, True
            value = int(digits.group(), base)
            end = index + 1 + len(digits.group())
            # A byte of 0x80 or more is not a character on its own, and surrogates are not text.
            usable = value < 0x80 if prefix == "x" else value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF
            return (chr(value) if usable else "\ufffd"), end, usable
    octal = re.match(r"[0-7]{1,3}", raw[index:])
    if octal is not None:
        value = int(octal.group(), 8)
        return (chr(value) if value < 0x80 else "\ufffd"), index + len(octal.group()), value < 0x80
    return "\\" + letter, index + 1, True


def _brace_end(raw: str, index: int) -> int:
    """Index after the `}` closing the `${` at `index`; -1 when there is none."""
    depth = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            index += 2
            continue
        if raw.startswith("${", index):
            depth += 1
            index += 2
            continue
        if char == "}":
            depth -= 1
            index += 1
            if depth == 0:
                return index
            continue
        if char == "'":
            close = raw.find("'", index + 1)
            if close < 0:
                return -1
            index = close + 1
            continue
        if char in '"`':
            index = _quoted_end(raw, index + 1, char)
            continue
        index += 1
    return -1


def _check_parameter(inner: str, problems: list[str], nested_code: list[str], depth: int = 0) -> None:
    """Which ${...} forms are plain lookups, and which evaluate code (subscripts, indirection, @P...)."""
    if depth > _MAX_PARAMETER_NESTING:
        problems.append("parameter expansions nested too deeply to analyse")
        return
    if _SIMPLE_PARAMETER.fullmatch(inner) or _PARAMETER_SUBSTRING.fullmatch(inner):
        return
    match = _PARAMETER_WITH_WORD.fullmatch(inner)
    if match is None:
        problems.append(f"parameter expansion ${{{inner}}} may evaluate code")
        return
    name, operator, word = match.groups()
    if operator in (":=", "=") and risky_variable(name.partition("[")[0]):
        problems.append(f"${{{inner}}} sets {name}, which changes what programs run")
    if any(opener in word for opener in ("$(", "`", "$[", "<(", ">(")):
        problems.append(f"parameter expansion ${{{inner}}} runs nested commands")
        nested_code.append(word)
        return
    position = word.find("${")
    while position >= 0:
        end = _brace_end(word, position)
        if end < 0:
            problems.append(f"cannot parse the parameter expansion ${{{inner}}}")
            return
        _check_parameter(word[position + 2 : end - 1], problems, nested_code, depth + 1)
        position = word.find("${", end)


# -- code bashlex leaves as text: here-document bodies, ${x:-$(...)} ------------------------------------


def _substitution_end(text: str, start: int, findings: _Findings) -> int | None:
    """Index of the `)` that closes the `$(` whose body starts at `start`, as bash would find it.

    bash ends a command substitution at the first `)` where its body parses as complete commands; so
    does this, trying the parenthesis-balanced `)` first (usually right), then each `)` in turn. A
    candidate that ends inside a comment or right after a backslash is not an end.
    """
    balanced = _balanced_close(text, start)
    if balanced is not None and _complete_code(text[start:balanced], findings):
        return balanced
    close = start
    for _ in range(_MAX_SUBSTITUTION_TRIES):
        close = text.find(")", close)
        if close < 0:
            return None
        if close != balanced and _complete_code(text[start:close], findings):
            return close
        close += 1
    return None


def _complete_code(candidate: str, findings: _Findings) -> bool:
    """Whether `candidate` parses as complete commands that end outside any comment or escape."""
    if (len(candidate) - len(candidate.rstrip("\\"))) % 2:
        return False
    if not candidate.strip(" \t\n"):
        return True
    if not findings.spend_parse(candidate):
        return False
    parsed = _try_parse(candidate)
    return parsed is not None and parsed.problem is None and not parsed.open_comment_at_end


def _balanced_close(text: str, start: int) -> int | None:
    """The `)` that balances the parentheses from `start`, skipping quotes; None if there is none."""
    depth = 1
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "'":
            close = text.find("'", index + 1)
            if close < 0:
                return None
            index = close + 1
            continue
        if char in '"`':
            index = _quoted_end(text, index + 1, char)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _embedded_code(text: str, findings: _Findings) -> tuple[list[str], list[str]]:
    """(command-substitution bodies, problems) in text where `$(`, backticks and `${` are live.

    Single quotes do not protect anything here (in a here-document they are ordinary characters).
    """
    codes: list[str] = []
    problems: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
        elif text.startswith("$((", index) or text.startswith("$[", index):
            problems.append("arithmetic expansion can run commands through array subscripts")
            index += 2
        elif text.startswith("$(", index):
            close = _substitution_end(text, index + 2, findings)
            if close is None:
                problems.append("cannot find the end of a command substitution")
                return codes, problems
            codes.append(text[index + 2 : close])
            index = close + 1
        elif char == "`":
            close = index + 1
            while close < len(text) and text[close] != "`":
                close += 2 if text[close] == "\\" else 1
            if close >= len(text):
                problems.append("cannot find the end of a backquoted command")
                return codes, problems
            codes.append(re.sub(r"\\([$`\\])", r"\1", text[index + 1 : close]))
            index = close + 1
        elif text.startswith("${", index):
            end = _brace_end(text, index)
            if end < 0:
                problems.append("cannot parse a parameter expansion")
                return codes, problems
            nested: list[str] = []
            _check_parameter(text[index + 2 : end - 1], problems, nested)
            for word in nested:
                more_codes, more_problems = _embedded_code(word, findings)
                codes.extend(more_codes)
                problems.extend(more_problems)
            index = end
        else:
            index += 1
    return codes, problems


# -- the walk ------------------------------------------------------------------------------------------------


def _analyse_code(text: str, findings: _Findings, depth: int, stdin: _Input) -> None:
    """Parse `text` as shell code and add what it runs to `findings`."""
    if depth > MAX_CODE_DEPTH:
        findings.opaque(f"shell code nested more than {MAX_CODE_DEPTH} levels deep")
        return
    if all(not line.strip(" \t") or line.lstrip(" \t").startswith("#") for line in text.split("\n")):
        return  # blank or comments only: runs nothing
    if not findings.spend_parse(text):
        findings.opaque("too much nested shell code to analyse")
        return
    try:
        parsed = _parse(text)
    except Exception as error:  # bashlex fails in many ways (ParsingError, NotImplementedError, ...)
        findings.opaque(_describe_parse_error(error))
        _analyse_parts_best_effort(text, findings, depth, stdin)
        return
    if parsed.problem:
        findings.opaque(parsed.problem)
    walker = _Walker(findings, text, parsed.heredoc_delimiters, depth)
    for tree in parsed.trees:
        walker.node(tree, stdin, 0)


def _analyse_parts_best_effort(text: str, findings: _Findings, depth: int, stdin: _Input) -> None:
    """After a failed parse (already opaque), still find what the parts run, so a deny can match.

    The line is cut at top-level `;`, `&`, `|` and newlines; each part that parses is walked, and the
    command substitutions in one that does not are analysed on their own. This only ever adds commands.
    """
    segments = _top_level_segments(text)
    for segment in segments:
        if not findings.spend_parse(segment):
            return
        parsed = _try_parse(segment) if len(segments) > 1 else None  # one part: it just failed whole
        if parsed is None:
            codes, _ = _embedded_code(segment, findings)
            for code in codes:
                _analyse_code(code, findings, depth + 1, stdin)
            continue
        walker = _Walker(findings, segment, parsed.heredoc_delimiters, depth)
        for tree in parsed.trees:
            walker.node(tree, stdin, 0)


def _try_parse(text: str) -> _Parse | None:
    try:
        return _parse(text)
    except Exception:  # bashlex fails in many ways; here a failure only means "not this part"
        return None


def _top_level_segments(text: str) -> list[str]:
    """`text` cut at list and pipeline operators outside quotes and parentheses (a rough cut)."""
    segments: list[str] = []
    start = depth = index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "'" and depth == 0:
            close = text.find("'", index + 1)
            index = len(text) if close < 0 else close + 1
            continue
        if char in '"`':
            index = _quoted_end(text, index + 1, char)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0 and char in ";&|\n":
            segments.append(text[start:index])
            start = index + 1
        index += 1
    segments.append(text[start:])
    return [segment for segment in segments if segment.strip(" \t")]


_NAMED_FD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_ECHO_OPTIONS = re.compile(r"-[neE]+")
_SIMPLE_PRINTF_FORMAT = re.compile(r"(?:[^%\\]|%s|%%|\\n|\\t|\\\\)*")


class _Walker:
    """Walks bashlex's syntax trees for one piece of shell code."""

    __slots__ = ("depth", "findings", "heredoc_delimiters", "source")

    def __init__(
        self, findings: _Findings, source: str, heredoc_delimiters: dict[int, tuple[int, str]], depth: int
    ) -> None:
        self.findings = findings
        self.source = source
        self.heredoc_delimiters = heredoc_delimiters
        self.depth = depth

    def node(self, node: Node, stdin: _Input, nesting: int) -> _Output:
        if nesting > _MAX_NODE_NESTING:
            self.findings.opaque("the command line is nested too deeply to analyse")
            return _NO_OUTPUT
        kind = node.kind
        if kind == "command":
            return self._command(node, stdin, nesting)
        if kind == "pipeline":
            self._pipeline(node, stdin, nesting)
        elif kind == "list":
            for part in node.parts:
                if part.kind != "operator":
                    self.node(part, stdin, nesting + 1)
        elif kind == "compound":
            self._compound(node, stdin, nesting)
        elif kind in ("if", "while", "until", "for"):
            self._control(node, stdin, nesting)
        elif kind == "function":
            for part in node.parts:
                if part.kind not in ("word", "reservedword"):
                    self.node(part, stdin, nesting + 1)
        elif kind not in ("reservedword", "operator", "pipe"):
            self.findings.opaque(f"cannot analyse the shell construct '{kind}'")
        return _NO_OUTPUT

    def _pipeline(self, node: Node, stdin: _Input, nesting: int) -> None:
        previous: _Output | None = None
        for part in node.parts:
            if part.kind in ("pipe", "reservedword"):
                continue
            part_stdin = (
                stdin if previous is None else _Input(previous.literal, f"a pipe from {previous.producer}")
            )
            previous = self.node(part, part_stdin, nesting + 1)

    def _compound(self, node: Node, stdin: _Input, nesting: int) -> None:
        items = node.list
        if (
            len(items) > 1
            and items[0].kind == "reservedword"
            and items[0].word == "("
            and items[1].kind == "compound"
            and items[1].list
            and items[1].list[0].kind == "reservedword"
            and items[1].list[0].word == "("
            and items[1].pos[0] == items[0].pos[1]
        ):
            self.findings.opaque("arithmetic command (( ... )) can run commands through array subscripts")
        inner_stdin = stdin
        for redirect in getattr(node, "redirects", None) or []:
            inner_stdin, _ = self._redirect(redirect, inner_stdin, stdin, nesting)
        for item in items:
            if item.kind != "reservedword":
                self.node(item, inner_stdin, nesting + 1)

    def _control(self, node: Node, stdin: _Input, nesting: int) -> None:
        parts = node.parts
        for index, part in enumerate(parts):
            if part.kind == "reservedword":
                continue
            if part.kind == "word":
                word = self._word(part, stdin, nesting)
                if node.kind == "for" and index == 1 and risky_variable(word.text):
                    self.findings.opaque(f"the for loop sets {word.text}, which changes what programs run")
            else:
                self.node(part, stdin, nesting + 1)

    # -- simple commands -----------------------------------------------------------------------------------

    def _command(self, node: Node, stdin: _Input, nesting: int) -> _Output:
        words: list[Word] = []
        redirects: list[Node] = []
        parts = node.parts
        for index, part in enumerate(parts):
            kind = part.kind
            if kind == "assignment":
                self._assignment(part, stdin, nesting)
            elif kind == "word":
                following = parts[index + 1] if index + 1 < len(parts) else None
                raw = self.source[part.pos[0] : part.pos[1]]
                if (
                    following is not None
                    and following.kind == "redirect"
                    and following.pos[0] == part.pos[1]
                    and _NAMED_FD.fullmatch(raw)
                ):
                    if risky_variable(raw[1:-1]):
                        self.findings.opaque(f"sets {raw[1:-1]}, which changes what programs run")
                    continue  # `{fd}>file` names a file descriptor; it is not an argument
                words.extend(self._brace_expanded(self._word(part, stdin, nesting), first=not words))
            elif kind == "redirect":
                redirects.append(part)
            else:
                self.findings.opaque(f"cannot analyse the shell construct '{kind}'")
        command_stdin = stdin
        stdout_redirected = False
        for redirect in redirects:
            command_stdin, redirected = self._redirect(redirect, command_stdin, stdin, nesting)
            stdout_redirected = stdout_redirected or redirected
        if not words:
            return _NO_OUTPUT
        literal = self._invocation(Invocation(tuple(words)), command_stdin, nesting, 0)
        return _Output(None if stdout_redirected else literal, words[0].text)

    def _brace_expanded(self, word: Word, *, first: bool) -> list[Word]:
        """Brace expansion is static: `{rm,ls} x` runs `rm ls x`, so expand it rather than guess."""
        if word.known or set(word.raw) & _NOT_BRACE_ONLY:
            return [word]
        expanded = _expand_braces(word.raw)
        if expanded is None or expanded == [word.raw]:
            return [word]
        if first:
            # Kept opaque all the same: a program name built at run time is not what reviewers expect.
            self.findings.opaque(f"the program name {word.raw} uses brace expansion")
        return [Word(text, text) for text in expanded]

    def _substitutions(self, node: Node, stdin: _Input, nesting: int) -> dict[int, int]:
        """Walk the commands substituted into a word; returns their spans."""
        spans: dict[int, int] = {}
        for part in node.parts:
            if part.kind in ("commandsubstitution", "processsubstitution"):
                spans[part.pos[0]] = part.pos[1]
                self.node(part.command, stdin, nesting + 1)
            elif part.kind not in ("parameter", "tilde"):
                self.findings.opaque(f"cannot analyse the word part '{part.kind}'")
        return spans

    def _word(self, node: Node, stdin: _Input, nesting: int) -> Word:
        spans = self._substitutions(node, stdin, nesting)
        start, end = node.pos
        read = _WordReader(self.source[start:end], start, spans).read()
        self._report_word(read, stdin)
        return read.word

    def _report_word(self, read: _ReadWord, stdin: _Input) -> None:
        for problem in read.problems:
            self.findings.opaque(problem)
        for code in read.nested_code:
            codes, problems = _embedded_code(code, self.findings)
            for problem in problems:
                self.findings.opaque(problem)
            for body in codes:
                _analyse_code(body, self.findings, self.depth + 1, stdin)

    def _assignment(self, node: Node, stdin: _Input, nesting: int) -> None:
        spans = self._substitutions(node, stdin, nesting)
        start, end = node.pos
        raw = self.source[start:end]
        name, _, _ = raw.partition("=")
        name = name.removesuffix("+")
        base, bracket, subscript = name.partition("[")
        if bracket and not re.fullmatch(r"\s*(?:[0-9]+|@|\*)\s*\]", subscript):
            self.findings.opaque(
                f"array subscript in {name} is evaluated as arithmetic, which can run commands"
            )
        if risky_variable(base):
            self.findings.opaque(f"sets {base}, which changes what programs run")
        value_start = start + len(raw.partition("=")[0]) + 1
        read = _WordReader(self.source[value_start:end], value_start, spans).read()
        self._report_word(read, stdin)

    # -- redirections ----------------------------------------------------------------------------------------

    def _redirect(self, node: Node, stdin: _Input, outer: _Input, nesting: int) -> tuple[_Input, bool]:
        """Applies one redirection: returns (the command's stdin after it, whether stdout left the pipe)."""
        kind = node.type
        descriptor = node.input
        reads_stdin = descriptor in (None, 0)
        writes_stdout = descriptor in (None, 1) or kind.startswith("&")
        target = node.output
        if kind in ("<<", "<<-"):
            heredoc = self._heredoc(node, outer)
            return (heredoc if reads_stdin else stdin), False
        word = self._word(target, outer, nesting) if hasattr(target, "kind") else None
        if kind == "<<<":
            if word is None or not reads_stdin:
                return stdin, False
            return _Input(word.text + "\n" if word.known else None, "a here-string"), False
        if word is not None and self._network(word):
            return (_Input(None, "a network connection") if reads_stdin else stdin), writes_stdout
        if kind in (">", ">>", ">|", "&>", "&>>"):
            if word is not None and not self._process_substitution(target):
                self._file_write(word)
            return stdin, writes_stdout
        if kind in (">&", "<&"):
            to_descriptor = word is None or (word.known and (word.text.isdigit() or word.text == "-"))
            if kind == ">&" and word is not None and not to_descriptor:
                self._file_write(word)  # `>&file` sends stdout and stderr to a file
            if kind == "<&" and reads_stdin:
                return _Input(None, "another file descriptor"), False
            return stdin, kind == ">&" and writes_stdout
        if kind in ("<", "<>"):
            if kind == "<>" and word is not None:
                self._file_write(word)  # opens read-write, creating the file
            if reads_stdin:
                source = "a process substitution" if self._process_substitution(target) else "a file"
                return _Input(None, f"{source} {word.text if word else ''}".strip()), False
            return stdin, False
        self.findings.opaque(f"cannot analyse the redirection {kind}")
        return stdin, False

    def _process_substitution(self, target: Node) -> bool:
        parts = getattr(target, "parts", None) or []
        return (
            len(parts) == 1
            and parts[0].kind == "processsubstitution"
            and tuple(parts[0].pos) == tuple(target.pos)
        )

    def _network(self, word: Word) -> bool:
        if word.text.startswith(("/dev/tcp/", "/dev/udp/")):
            self.findings.opaque(f"redirection to the network ({word.text})")
            return True
        return False

    def _file_write(self, word: Word) -> None:
        if word.known and word.text in HARMLESS_WRITE_TARGETS:
            return
        self.findings.file_write(f"output redirection to {word.text}")

    def _heredoc(self, node: Node, outer: _Input) -> _Input:
        """A here-document's body: literal when its delimiter is quoted or it holds no expansions."""
        delimiter_node = node.output
        start = delimiter_node.pos[0]
        rewritten = self.heredoc_delimiters.get(start)
        quoted = rewritten is not None
        delimiter = rewritten[1] if rewritten else self.source[start : delimiter_node.pos[1]]
        body_start, body_end = node.heredoc.pos
        content = self.source[body_start:body_end]
        body, newline, last_line = content.rpartition("\n")
        lines = body.split("\n") if newline else []
        if node.type == "<<-":
            last_line = last_line.lstrip("\t")
            lines = [line.lstrip("\t") for line in lines]
        if last_line != delimiter:
            self.findings.opaque("cannot find the end of a here-document")
            return _Input(None, "a here-document")
        text = "".join(line + "\n" for line in lines)
        if quoted or not any(char in text for char in "$`\\"):
            return _Input(text, "a here-document")
        codes, problems = _embedded_code(text, self.findings)
        for problem in problems:
            self.findings.opaque(problem)
        if codes:
            self.findings.opaque("a here-document runs command substitutions")
        for code in codes:
            _analyse_code(code, self.findings, self.depth + 1, outer)
        return _Input(None, "a here-document with expansions")

    # -- what runs -------------------------------------------------------------------------------------------

    def _invocation(self, invocation: Invocation, stdin: _Input, nesting: int, wrappers: int) -> str | None:
        """Record a command and whatever it runs in turn; returns its output when literal (for `| sh`)."""
        argv = invocation.argv
        findings = self.findings
        if not argv:
            return None
        if wrappers > _MAX_WRAPPERS:
            findings.opaque("too many nested wrapper commands")
            return None
        findings.command(tuple(word.text for word in argv))
        program = argv[0]
        if not program.known:
            findings.opaque(f"the program name {program.raw} is not known statically")
            if program.may_vanish and len(argv) > 1:
                # An expansion that comes out empty disappears: the next word is then the program.
                self._invocation(Invocation(argv[1:], invocation.extra_args), stdin, nesting, wrappers + 1)
            return None
        if program.text.startswith("="):
            findings.opaque(f"the program name {program.text} is expanded by zsh")
        effects = program_effects(invocation)
        if effects is None:
            return _literal_output(argv, stdin)
        for reason in effects.opaque:
            findings.opaque(reason)
        for reason in effects.file_writes:
            findings.file_write(reason)
        for inner in effects.invocations:
            self._invocation(inner, stdin, nesting, wrappers + 1)
        for script in effects.scripts:
            if not script.known:
                findings.opaque(f"{script.origin}: the code is not known statically")
            _analyse_code(script.text, findings, self.depth + 1, stdin)
        if effects.stdin_shell is not None:
            if stdin.literal is not None:
                rest = _Input(None, f"the rest of {effects.stdin_shell}'s input")
                _analyse_code(stdin.literal, findings, self.depth + 1, rest)
            else:
                findings.opaque(f"{effects.stdin_shell} reads commands from {stdin.source}")
        return _literal_output(argv, stdin)


_NOT_BRACE_ONLY = frozenset("'\"\\$`*?[~")
_SEQUENCE = re.compile(r"(-?[0-9]+)\.\.(-?[0-9]+)(?:\.\.(-?[0-9]+))?")


def _expand_braces(text: str) -> list[str] | None:
    """bash brace expansion of an unquoted word: the words it becomes; None when that would be too many."""
    if text.count("{") > _MAX_BRACE_GROUPS:
        return None
    for start, char in enumerate(text):
        if char != "{":
            continue
        alternatives = _brace_alternatives(text, start)
        if alternatives is None:
            continue
        end, choices = alternatives
        if len(choices) > _MAX_BRACE_WORDS:
            return None
        words: list[str] = []
        for choice in choices:
            expanded = _expand_braces(text[:start] + choice + text[end + 1 :])
            if expanded is None:
                return None
            words.extend(expanded)
            if len(words) > _MAX_BRACE_WORDS:
                return None
        return words
    return [text]


def _brace_alternatives(text: str, start: int) -> tuple[int, list[str]] | None:
    """(index of the closing `}`, alternatives) for the brace at `start`; None if it does not expand."""
    depth = 0
    commas: list[int] = []
    for end in range(start, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                break
        elif text[end] == "," and depth == 1:
            commas.append(end)
    else:
        return None
    if commas:
        bounds = [start, *commas, end]
        return end, [text[a + 1 : b] for a, b in itertools.pairwise(bounds)]
    sequence = _SEQUENCE.fullmatch(text[start + 1 : end])
    if sequence is None:
        return None
    first, last = int(sequence.group(1)), int(sequence.group(2))
    step = abs(int(sequence.group(3) or 1)) or 1
    span = range(first, last + 1, step) if first <= last else range(first, last - 1, -step)
    if len(span) > _MAX_BRACE_WORDS:
        return end, [""] * (_MAX_BRACE_WORDS + 1)  # too many: the caller gives up
    return end, [str(number) for number in span]


def _literal_output(argv: tuple[Word, ...], stdin: _Input) -> str | None:
    """What echo / printf / cat write, when the command line fixes it completely."""
    if not all(word.known for word in argv):
        return None
    name = posixpath.basename(argv[0].text)
    args = [word.text for word in argv[1:]]
    if name == "echo":
        newline = True
        while args and _ECHO_OPTIONS.fullmatch(args[0]):
            newline = newline and "n" not in args[0]
            args.pop(0)
        text = " ".join(args)
        # Some echos (dash's) turn backslash escapes into other characters: not literal then.
        return None if "\\" in text else text + ("\n" if newline else "")
    if name == "printf":
        return _printf(args[0], args[1:]) if args and not args[0].startswith("-") else None
    if name == "cat" and args in ([], ["-"]):
        return stdin.literal
    return None


def _printf(template: str, values: list[str]) -> str | None:
    """printf with only %s, %% and \\n / \\t / \\\\ escapes; None for anything richer."""
    if not _SIMPLE_PRINTF_FORMAT.fullmatch(template):
        return None
    pieces = re.split(r"(%s|%%|\\n|\\t|\\\\)", template)
    replacements = {"%%": "%", "\\n": "\n", "\\t": "\t", "\\\\": "\\"}
    output: list[str] = []
    remaining = list(values)
    while True:
        consumed = False
        for piece in pieces:
            if piece == "%s":
                output.append(remaining.pop(0) if remaining else "")
                consumed = True
            else:
                output.append(replacements.get(piece, piece))
        if not remaining or not consumed:
            return "".join(output)
