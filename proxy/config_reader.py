"""Typed access to the parsed TOML document: every error names the file, line and dotted key."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from proxy.config_errors import (
    ConfigError,
    KeyPath,
    SourceLines,
    format_key_path,
)
from proxy.durations import DurationError, parse_duration

MISSING: Any = object()
_T = TypeVar("_T")

# ------------------------------------------------------------------------------------------------------------
# Typed access to the parsed document, every error pointing at file:line: key
# ------------------------------------------------------------------------------------------------------------


def toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


_TYPE_NAMES: dict[type, str] = {str: "a string", int: "an integer", bool: "a boolean", float: "a float"}


def suggestion(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(sorted(choices))


class ConfigReader:
    """Walks the parsed TOML, checking keys and types; every error names the file, line and dotted key."""

    def __init__(self, source: Path, lines: SourceLines, base_dir: Path) -> None:
        self.source = source
        self.lines = lines
        self.base_dir = base_dir

    def error(self, key: KeyPath, message: str) -> ConfigError:
        return ConfigError(self.source, self.lines.line_of(key), format_key_path(key), message)

    def line(self, key: KeyPath) -> int | None:
        return self.lines.line_of(key)

    def check_keys(self, table: Mapping[str, Any], where: KeyPath, allowed: Collection[str]) -> None:
        for name in table:
            if name not in allowed:
                raise self.error((*where, name), f"unknown key '{name}'; {suggestion(name, allowed)}")

    def typed(self, table: Mapping[str, Any], where: KeyPath, name: str, kind: type[_T], default: Any) -> _T:
        value = table.get(name, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise self.error((*where, name), f"missing required key '{name}'")
            return default
        # bool is an int in Python, but `workers = true` is a mistake, not the number 1.
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            raise self.error((*where, name), f"expected {_TYPE_NAMES[kind]}, got {toml_type(value)}")
        return value

    def string(self, table: Mapping[str, Any], where: KeyPath, name: str, default: Any = MISSING) -> str:
        """A non-empty string (when written), else `default`; missing without a default is an error."""
        value = self.typed(table, where, name, str, default)
        if name in table and not value.strip():
            raise self.error((*where, name), "must not be empty")
        return value

    def string_list(
        self, table: Mapping[str, Any], where: KeyPath, name: str, default: Any = MISSING
    ) -> tuple[str, ...]:
        value = table.get(name, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise self.error((*where, name), f"missing required key '{name}'")
            return default
        if isinstance(value, str):
            raise self.error((*where, name), f'expected an array of strings, e.g. {name} = ["{value}"]')
        if not isinstance(value, list):
            raise self.error((*where, name), f"expected an array of strings, got {toml_type(value)}")
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error((*where, name, index), f"expected a string, got {toml_type(item)}")
            if not item.strip():
                raise self.error((*where, name, index), "must not be an empty string")
            if item in items:
                raise self.error((*where, name, index), f"'{item}' is listed twice")
            items.append(item)
        return tuple(items)

    def path(
        self, table: Mapping[str, Any], where: KeyPath, name: str, default: Any = None, *, required: str = ""
    ) -> Path | None:
        """A path relative to the config file; `required` says what it is, for the error when missing."""
        if required and name not in table:
            # Located at the table that lacks the key: the reader sees where to add it.
            raise self.error(where, f'missing required key "{name}": {required}')
        value = self.string(table, where, name, default)
        if value is None:
            return None
        return self.resolve(value)

    def resolve(self, value: str | Path) -> Path:
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = self.base_dir / candidate
        return Path(os.path.normpath(candidate))

    def duration(self, table: Mapping[str, Any], where: KeyPath, name: str, default: float) -> float:
        value = table.get(name, MISSING)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.error((*where, name), f'expected a duration like "5m", got {toml_type(value)}')
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except DurationError as error:
                raise self.error((*where, name), str(error)) from None
        if not math.isfinite(value) or value < 0:
            raise self.error((*where, name), 'a duration must be zero or more seconds, e.g. "30s"')
        return float(value)

    def sub_tables(self, document: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        value = document.get(name, [])
        if isinstance(value, dict):
            raise self.error((name,), f"write [[{name}]] (an array of tables), one per entry, not [{name}]")
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error((name,), f"expected [[{name}]] tables, got {toml_type(value)}")
        return value
