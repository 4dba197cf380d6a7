"""Config error reporting: the one-line ConfigError and the locator that maps TOML keys to source lines."""

from __future__ import annotations

import bisect
import re
import tomllib
from pathlib import Path

__all__ = ["ConfigError", "CredentialError", "KeyPath", "SourceLines", "format_key_path", "syntax_error"]

# A key's position in the parsed document: table names and keys as str, array indexes as int.
KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = frozenset(",]}\n#")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")
# "scheme://user:secret@host": the password part of any URL a message might quote.
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^\s:/@\"']*):[^\s@\"']*@")


class ConfigError(Exception):
    """A config problem; str() is one line: "<file>:<line>: <dotted key>: <what is wrong, what to do>"."""

    path: Path
    line: int | None
    key: str | None
    message: str

    def __init__(self, path: Path | str, line: int | None, key: str | None, message: str) -> None:
        super().__init__(path, line, key, message)
        self.path = Path(path)
        self.line = line
        self.key = key
        # Messages are shown as a single line in logs and on stderr; never let one span several.
        # A message may quote the offending value; a URL with a password in it must never reach a log.
        self.message = _URL_PASSWORD.sub(r"\1:***@", " ".join(message.split()))

    def __str__(self) -> str:
        location = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        if self.key:
            return f"{location}: {self.key}: {self.message}"
        return f"{location}: {self.message}"


class CredentialError(ConfigError):
    """An upstream secret named by the config (env var or file) is missing or unreadable when it is used."""


def format_key_path(key: KeyPath) -> str:
    """Dotted form for people: ("connections", 0, "upstream") -> "connections[0].upstream"."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _BARE_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            quoted = '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            text += f".{quoted}" if text else quoted
    return text


def syntax_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> ConfigError:
    """Turn tomllib's "msg (at line L, column C)" into a ConfigError carrying the file and line."""
    raw = str(error)
    position = _TOML_POSITION.search(raw)
    description = raw[: position.start()] if position else raw
    line: int | None = None
    column = ""
    if position and position.group(1):
        line = int(position.group(1))
        column = f" at column {position.group(2)}"
    elif position:
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        column = " at the end of the file"
    return ConfigError(path, line, None, f"invalid TOML: {description}{column}; fix the syntax")


class SourceLines:
    """Line numbers for every table, key and array element of a TOML text (tomllib does not keep them)."""

    __slots__ = ("_lines",)

    def __init__(self, text: str) -> None:
        scanner = _Scanner(text)
        scanner.scan()
        self._lines = scanner.lines

    def line_of(self, key: KeyPath) -> int | None:
        """The line of `key`, or of its nearest enclosing table or key that appears in the text."""
        for length in range(len(key), 0, -1):
            line = self._lines.get(key[:length])
            if line is not None:
                return line
        return None

    def exact(self, key: KeyPath) -> int | None:
        """The line of `key` itself, None when it is not written in the text."""
        return self._lines.get(key)


class _ScanStopped(Exception):
    """The scanner met text it does not understand; the lines found so far are kept."""


class _Scanner:
    """A small TOML walker that records where keys are; it trusts tomllib to have validated the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self._newlines = [index for index, char in enumerate(text) if char == "\n"]
        # The last index of each array of tables, keyed by its resolved path (parents' indexes included).
        self._array_counts: dict[KeyPath, int] = {}

    def scan(self) -> None:
        table: KeyPath = ()
        try:
            while True:
                self._skip_blank(newlines=True)
                if self.pos >= len(self.text):
                    return
                if self.text[self.pos] == "[":
                    table = self._header()
                else:
                    self._key_value(table)
        except (_ScanStopped, IndexError, tomllib.TOMLDecodeError):
            return

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self.pos) + 1

    def _record(self, key: KeyPath, line: int) -> None:
        self.lines.setdefault(key, line)

    def _header(self) -> KeyPath:
        line = self._line()
        is_array = self.text.startswith("[[", self.pos)
        self.pos += 2 if is_array else 1
        names = self._dotted_key()
        self._skip_blank(newlines=False)
        closing = "]]" if is_array else "]"
        if not self.text.startswith(closing, self.pos):
            raise _ScanStopped
        self.pos += len(closing)
        resolved: KeyPath = ()
        for position, name in enumerate(names):
            resolved = (*resolved, name)
            is_last = position == len(names) - 1
            if is_last and is_array:
                index = self._array_counts.get(resolved, -1) + 1
                self._array_counts[resolved] = index
                self._record(resolved, line)
                resolved = (*resolved, index)
            elif resolved in self._array_counts:
                # A sub-table header refers to the latest element of an enclosing array of tables.
                resolved = (*resolved, self._array_counts[resolved])
            self._record(resolved, line)
        return resolved

    def _key_value(self, table: KeyPath) -> None:
        line = self._line()
        names = self._dotted_key()
        key = table
        for name in names:
            key = (*key, name)
            self._record(key, line)
        self._skip_blank(newlines=False)
        if self.text[self.pos] != "=":
            raise _ScanStopped
        self.pos += 1
        self._skip_blank(newlines=False)
        self._value(key)

    def _value(self, key: KeyPath) -> None:
        char = self.text[self.pos]
        if char in "\"'":
            self._string()
        elif char == "[":
            self._array(key)
        elif char == "{":
            self._inline_table(key)
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _ScanStopped

    def _array(self, key: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self._record((*key, index), self._line())
            self._value((*key, index))
            self._skip_blank(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1
                index += 1
            elif self.text[self.pos] == "]":
                self.pos += 1
                return
            else:
                raise _ScanStopped

    def _inline_table(self, key: KeyPath) -> None:
        self.pos += 1
        while True:
            self._skip_blank(newlines=True)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            self._key_value(key)
            self._skip_blank(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1
            elif self.text[self.pos] != "}":
                raise _ScanStopped

    def _dotted_key(self) -> tuple[str, ...]:
        names: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            names.append(self._simple_key())
            self._skip_blank(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return tuple(names)

    def _simple_key(self) -> str:
        if self.text[self.pos] in "\"'":
            start = self.pos
            self._string()
            return tomllib.loads("k = " + self.text[start : self.pos])["k"]
        match = _BARE_KEY.match(self.text, self.pos)
        if match is None:
            raise _ScanStopped
        self.pos = match.end()
        return match.group()

    def _string(self) -> None:
        quote = self.text[self.pos]
        triple = quote * 3
        if self.text.startswith(triple, self.pos):
            self.pos += 3
            self._skip_string_body(triple, escapes=quote == '"')
            # Up to two quotes right before the closing delimiter belong to the content ('''a'''''').
            extra = 0
            while extra < 2 and self.pos < len(self.text) and self.text[self.pos] == quote:
                self.pos += 1
                extra += 1
            return
        self.pos += 1
        self._skip_string_body(quote, escapes=quote == '"')

    def _skip_string_body(self, delimiter: str, *, escapes: bool) -> None:
        text = self.text
        while True:
            if self.pos >= len(text):
                raise _ScanStopped
            if escapes and text[self.pos] == "\\":
                self.pos += 2
                continue
            if text.startswith(delimiter, self.pos):
                self.pos += len(delimiter)
                return
            self.pos += 1

    def _skip_blank(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end == -1 else end
            else:
                return
