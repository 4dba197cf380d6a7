"""Reading a control request's fields: typed, bounded, and every mistake reported as one ControlError line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from proxy.control.errors import ControlError

MAX_TEXT = 1000  # ids, group names, reasons
MAX_LIST = 64
_MISSING: Any = object()


class Params:
    """The fields of one request; `done()` refuses any field no reader asked for (a typo is not ignored)."""

    def __init__(self, op: str, fields: Mapping[str, Any], ignore: tuple[str, ...] = ("id", "op")) -> None:
        self.op = op
        self._fields = fields
        self._read = set(ignore)

    def _get(self, name: str, default: Any) -> Any:
        self._read.add(name)
        value = self._fields.get(name, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise ControlError(f"{self.op}: missing field '{name}'")
            return default
        return value

    def text(self, name: str, default: Any = _MISSING, *, max_length: int = MAX_TEXT) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or not value.strip():
            raise ControlError(f"{self.op}: '{name}' must be a non-empty string")
        if len(value) > max_length or "\x00" in value:
            raise ControlError(f"{self.op}: '{name}' must be at most {max_length} characters, without NUL")
        return value

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise ControlError(f"{self.op}: '{name}' must be true or false")
        return value

    def number(self, name: str, default: Any = _MISSING, *, low: float, high: float) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ControlError(f"{self.op}: '{name}' must be a number")
        if not low <= value <= high:
            raise ControlError(f"{self.op}: '{name}' must be between {low:g} and {high:g}")
        return float(value)

    def integer(self, name: str, default: Any = _MISSING, *, low: int, high: int) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ControlError(f"{self.op}: '{name}' must be an integer")
        if not low <= value <= high:
            raise ControlError(f"{self.op}: '{name}' must be between {low} and {high}")
        return value

    def text_list(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise ControlError(f"{self.op}: '{name}' must be a non-empty list of strings")
        if len(value) > MAX_LIST:
            raise ControlError(f"{self.op}: '{name}' may hold at most {MAX_LIST} entries")
        for item in value:
            if not isinstance(item, str) or not item or len(item) > MAX_TEXT or "\x00" in item:
                raise ControlError(f"{self.op}: every entry of '{name}' must be a non-empty string")
        return list(dict.fromkeys(value))

    def done(self) -> None:
        unknown = sorted(set(self._fields) - self._read)
        if unknown:
            raise ControlError(f"{self.op}: unknown field(s) {', '.join(repr(name) for name in unknown)}")
