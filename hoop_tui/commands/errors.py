"""How CLI commands fail: one clear line on stderr and a non-zero exit, never a traceback for user errors."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

EXIT_USAGE = 2


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"hoop-tui: {message}", err=True)
    sys.exit(code)


def load_config_or_exit(path: str):
    from proxy.config import load_config
    from proxy.config_errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as error:
        fail(str(error), EXIT_USAGE)
