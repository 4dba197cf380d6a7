"""Recorded values as JSON: bytes become ``{"utf8": ...}`` or ``{"base64": ...}`` so jq can read them."""

from __future__ import annotations

import base64
import math
from typing import Any

import msgpack


def bytes_to_json(data: bytes) -> dict[str, str]:
    """``{"utf8": text}`` when ``data`` is valid UTF-8, else ``{"base64": ...}``: lossless either way."""
    try:
        return {"utf8": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def to_json(value: Any) -> Any:
    """A JSON-serialisable copy of a msgpack-decoded value."""
    if isinstance(value, bytes):
        return bytes_to_json(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; jq rejects them.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {_key(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "base64": base64.b64encode(value.data).decode("ascii")}
    return repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return str(key)


def display_text(value: Any) -> str:
    """A recorded value as one line of human text (for CSV cells and transcripts)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        for name in ("subject", "sub", "name", "id"):
            if name in value:
                return display_text(value[name])
        return ", ".join(f"{_key(k)}={display_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(display_text(item) for item in value)
    return str(value)
