"""What the approvals, sessions and grants commands share: reaching the control API, and printing answers."""

from __future__ import annotations

import datetime
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hoop_tui.commands.errors import EXIT_USAGE, fail, load_config_or_exit

if TYPE_CHECKING:
    from proxy.control.client import ControlClient

T = TypeVar("T")
Column = tuple[str, Callable[[dict[str, Any]], str]]


@dataclass(frozen=True)
class ControlTarget:
    """Where the control API is and how to sign in: from --control/--config and --token/HOOP_TOKEN."""

    control: str | None
    config: str | None
    token: str | None
    ca_file: str | None

    def call(self, action: Callable[[ControlClient], Awaitable[T]]) -> T:
        """Run `action` against the gateway; any refusal ends the command with one line on stderr."""
        from proxy.control.client import control_target, run_control
        from proxy.control.errors import ControlError

        address, ca_file = self.control, self.ca_file
        if address is None:
            if self.config is None:
                fail("say which gateway: --control ADDRESS or --config FILE", EXIT_USAGE)
            config = load_config_or_exit(self.config)
            address, default_ca = control_target(config)
            ca_file = ca_file or (str(default_ca) if default_ca else None)
        if not self.token:
            fail("no operator token: pass --token or set HOOP_TOKEN", EXIT_USAGE)
        try:
            return run_control(address, self.token, action, ca_file=ca_file)
        except ControlError as error:
            fail(str(error))


def control_options(command: Callable[..., None]) -> Callable[..., None]:
    """Adds --control, --config, --token and --ca-file; the command receives them as `target`."""

    @click.option("--control", metavar="ADDRESS", help='Control API: "unix:PATH" or "tcp://HOST:PORT".')
    @click.option(
        "--config", type=click.Path(dir_okay=False), help="Gateway config to read gateway.control from."
    )
    @click.option("--token", envvar="HOOP_TOKEN", help="Operator token (default: $HOOP_TOKEN).")
    @click.option(
        "--ca-file",
        type=click.Path(dir_okay=False, exists=True),
        help="CA certificate for a tcp:// control address (default: the gateway's own, with --config).",
    )
    @functools.wraps(command)
    def wrapper(
        control: str | None, config: str | None, token: str | None, ca_file: str | None, **kwargs: Any
    ) -> None:
        command(target=ControlTarget(control, config, token, ca_file), **kwargs)

    return wrapper


def json_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(command)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Aligned columns with a header; an empty list prints the header only."""
    cells = [[header for header, _ in columns]]
    cells += [[_one_line(render(row)) for _, render in columns] for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    for line in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _one_line(text: str, limit: int = 60) -> str:
    # Control characters are shown, never sent: a statement carrying "\x1b[2K" must not rewrite the
    # operator's terminal line into something else they then approve.
    flat = " ".join(_CONTROL.sub(lambda match: repr(match.group())[1:-1], text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def utc_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def time_left(timestamp: float | None) -> str:
    from proxy.durations import format_duration

    if timestamp is None:
        return "-"
    left = timestamp - time.time()
    return f"in {format_duration(round(left))}" if left > 0 else "passed"
