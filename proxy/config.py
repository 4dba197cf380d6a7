"""The gateway's TOML configuration (DESIGN §6): typed, validated settings with file:line errors."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from proxy.config_addresses import split_host_port
from proxy.config_errors import (
    ConfigError,
    CredentialError,
    SourceLines,
    syntax_error,
)
from proxy.config_model import (
    POLICY_KINDS,
    SQL_KINDS,
    SSH_KINDS,
    Config,
    ConnectionSettings,
    GatewaySettings,
    IdentitySettings,
    IssuerSettings,
    PolicySettings,
    PostgresUpstream,
    SshUpstream,
)
from proxy.config_reader import ConfigReader
from proxy.config_sections import read_config
from proxy.config_template import starter_config_text
from proxy.hosts import is_loopback_host

__all__ = [
    "POLICY_KINDS",
    "SQL_KINDS",
    "SSH_KINDS",
    "Config",
    "ConfigError",
    "ConnectionSettings",
    "CredentialError",
    "GatewaySettings",
    "IdentitySettings",
    "IssuerSettings",
    "PolicySettings",
    "PostgresUpstream",
    "SshUpstream",
    "is_loopback_host",
    "load_config",
    "parse_config",
    "split_host_port",
    "starter_config_text",
]

# ------------------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> Config:
    """Read and validate the config file at `path`; raises ConfigError with file, line and key."""
    config_path = Path(path)
    try:
        raw = config_path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            config_path, None, None, f"cannot read config: {reason}; create one with `hoop-tui init`"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            config_path, line, None, "the config is not valid UTF-8; save it as UTF-8"
        ) from None
    return parse_config(text, config_path)


def parse_config(text: str, path: Path) -> Config:
    """Validate TOML `text`; `path` names it in errors and anchors relative paths (its directory)."""
    path = Path(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise syntax_error(path, text, error) from None
    reader = ConfigReader(path, SourceLines(text), Path(os.path.abspath(path)).parent)
    return read_config(reader, document)
