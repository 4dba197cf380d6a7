"""The errors every control API caller sees, the same whether the gateway is embedded or remote."""

from __future__ import annotations


class ControlError(Exception):
    """A request the gateway refused or could not carry out; str() is one line meant for people."""


class ControlUnavailable(ControlError):
    """The control API cannot be reached, or the connection to it broke."""
