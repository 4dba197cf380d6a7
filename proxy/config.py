"""The gateway's TOML configuration (DESIGN §6): typed, validated settings with file:line errors."""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from proxy.config_errors import (
    ConfigError,
    CredentialError,
    KeyPath,
    SourceLines,
    format_key_path,
    syntax_error,
)
from proxy.durations import DurationError, parse_duration
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

SQL_KINDS: frozenset[str] = frozenset(
    {
        "read", "write", "ddl", "drop", "truncate", "dcl", "copy_in", "copy_out", "copy_program",
        "dangerous_function", "transaction", "session", "utility", "opaque",
    }
)  # fmt: skip
SSH_KINDS: frozenset[str] = frozenset(
    {"exec", "shell", "file_write", "port_forward", "agent_forward", "x11", "sftp"}
)
POLICY_KINDS: frozenset[str] = SQL_KINDS | SSH_KINDS

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
RECORDING_DURABILITIES = ("chunk", "batch", "none")
MASK_STRATEGY_NAMES = ("redact", "partial", "hash")
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
_MIN_MESSAGE_SIZE = 1024
_MAX_MESSAGE_SIZE = 1024 * 1024 * 1024
_MAX_WORKERS = 64
_MAX_LEEWAY_SECONDS = 300.0
_MAX_EXPIRY_GRACE_SECONDS = 86400.0

_KIND_ENTRY = re.compile(r"([a-z_]+)(?::([a-z_]+))?")
_CONNECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENTITY_NAME = re.compile(r"[a-z][a-z0-9_]*|custom:[a-z][a-z0-9_]*")
# DNS labels; underscores are tolerated because container and service-discovery names often carry them.
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_SIZE = re.compile(r"\s*([0-9]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}
_GATEWAY_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_PARTIAL_STRATEGY = re.compile(r"partial(?::([0-9]{1,2}))?")
_MISSING: Any = object()
_T = TypeVar("_T")


# ------------------------------------------------------------------------------------------------------------
# Settings (the contract the rest of the gateway reads)
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    state_dir: Path
    recordings_dir: Path
    store: str = "sqlite"
    control: str = ""
    postgres_listen: str | None = "127.0.0.1:15432"
    ssh_listen: str | None = "127.0.0.1:2222"
    workers: int = 1
    gateway_id: str = field(default_factory=socket.gethostname)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ssh_host_key: Path | None = None  # the SSH listener's host key; generated in state_dir/keys when unset
    require_tls: bool | None = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    recording_durability: str = "chunk"
    strict: bool = True
    admin_groups: tuple[str, ...] = ()  # control API: kill sessions, any grant, read recordings
    auditor_groups: tuple[str, ...] = ()  # control API: list sessions and read their recordings

    def __post_init__(self) -> None:
        if not self.control:
            # A default that depends on state_dir; frozen, so it is set once here.
            object.__setattr__(self, "control", f"unix:{self.state_dir / 'control.sock'}")

    def requires_tls(self, listen: str) -> bool:
        """Whether clients of the listener at `listen` ("host:port") must use TLS."""
        if self.require_tls is not None:
            return self.require_tls
        host, _port = split_host_port(listen)
        return not is_loopback_host(host)


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    issuer: str  # "local" or an https issuer URL (http only on loopback)
    audience: str = "hoop"
    groups_claim: str = "groups"
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    issuers: tuple[IssuerSettings, ...]
    audience: str = "hoop"
    groups_claim: str = "groups"
    leeway_seconds: float = 30.0
    expiry_grace_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PostgresUpstream:
    host: str  # a host name, an IP address, or the directory of a Unix socket
    port: int
    user: str
    database: str
    sslmode: str
    sslrootcert: Path | None = None
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class SshUpstream:
    host: str
    port: int
    user: str


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    name: str
    type: Literal["postgres", "ssh"]
    upstream: PostgresUpstream | SshUpstream
    password_env: str | None = None
    password_file: Path | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    config_path: Path | None = None  # where this connection was configured, for error messages
    line: int | None = None  # where its [[connections]] table starts

    def read_password(self) -> str | None:
        """The upstream password, read now (so rotation needs no restart); None when none is configured.

        Raises CredentialError naming the env var or file (never the value) when it is missing or empty.
        """
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                state = "is empty" if value == "" else "is not set"
                raise self._credential_error(
                    "password_env",
                    f"environment variable {self.password_env} {state}; export it with the upstream password",
                )
            return value
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise self._credential_error(
                    "password_file", f"password file {self.password_file} is not UTF-8 text"
                ) from None
            except OSError as error:
                reason = error.strerror or type(error).__name__
                raise self._credential_error(
                    "password_file", f"cannot read password file {self.password_file}: {reason}"
                ) from None
            # `echo secret > file` leaves a newline that is not part of the password.
            value = text.rstrip("\r\n")
            if not value:
                raise self._credential_error("password_file", f"password file {self.password_file} is empty")
            return value
        return None

    def _credential_error(self, key: str, message: str) -> CredentialError:
        return CredentialError(
            self.config_path or Path("<config>"), self.line, f"connections.{self.name}.{key}", message
        )


@dataclass(frozen=True, slots=True)
class PolicySettings:
    groups: tuple[str, ...]
    connections: tuple[str, ...]
    allow: frozenset[str] = frozenset()
    review: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    mask: tuple[str, ...] = ()
    mask_columns: tuple[str, ...] = ()
    mask_strategies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    review_timeout_seconds: float = 300.0
    approvers: tuple[str, ...] = ()
    allow_commands: tuple[str, ...] = ()
    review_commands: tuple[str, ...] = ()
    deny_commands: tuple[str, ...] = ()
    line: int = 0
    mask_rules: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # name -> regex


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    gateway: GatewaySettings
    identity: IdentitySettings
    connections: Mapping[str, ConnectionSettings]
    policies: tuple[PolicySettings, ...]


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
    reader = _Reader(path, SourceLines(text), Path(os.path.abspath(path)).parent)
    return _read_config(reader, document)


# ------------------------------------------------------------------------------------------------------------
# Typed access to the parsed document, every error pointing at file:line: key
# ------------------------------------------------------------------------------------------------------------


def _toml_type(value: object) -> str:
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


def _suggestion(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(sorted(choices))


class _Reader:
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
                raise self.error((*where, name), f"unknown key '{name}'; {_suggestion(name, allowed)}")

    def typed(self, table: Mapping[str, Any], where: KeyPath, name: str, kind: type[_T], default: Any) -> _T:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error((*where, name), f"missing required key '{name}'")
            return default
        # bool is an int in Python, but `workers = true` is a mistake, not the number 1.
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            raise self.error((*where, name), f"expected {_TYPE_NAMES[kind]}, got {_toml_type(value)}")
        return value

    def string(self, table: Mapping[str, Any], where: KeyPath, name: str, default: Any = _MISSING) -> str:
        """A non-empty string (when written), else `default`; missing without a default is an error."""
        value = self.typed(table, where, name, str, default)
        if name in table and not value.strip():
            raise self.error((*where, name), "must not be empty")
        return value

    def string_list(
        self, table: Mapping[str, Any], where: KeyPath, name: str, default: Any = _MISSING
    ) -> tuple[str, ...]:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error((*where, name), f"missing required key '{name}'")
            return default
        if isinstance(value, str):
            raise self.error((*where, name), f'expected an array of strings, e.g. {name} = ["{value}"]')
        if not isinstance(value, list):
            raise self.error((*where, name), f"expected an array of strings, got {_toml_type(value)}")
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error((*where, name, index), f"expected a string, got {_toml_type(item)}")
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
        value = table.get(name, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.error((*where, name), f'expected a duration like "5m", got {_toml_type(value)}')
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
            raise self.error((name,), f"expected [[{name}]] tables, got {_toml_type(value)}")
        return value


# ------------------------------------------------------------------------------------------------------------
# Addresses and URLs
# ------------------------------------------------------------------------------------------------------------


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" / "[v6]:port" into its parts; raises ValueError saying what is wrong."""
    if address.startswith("["):
        closing = address.find("]")
        if closing == -1 or address[closing + 1 : closing + 2] != ":":
            raise ValueError('write an IPv6 address as "[::1]:port"')
        host, port_text = address[1:closing], address[closing + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{host}' is not an IPv6 address") from None
    else:
        host, separator, port_text = address.rpartition(":")
        if not separator or not host:
            raise ValueError('expected "host:port", e.g. "127.0.0.1:15432"')
        if ":" in host:
            raise ValueError('write an IPv6 address in brackets, e.g. "[::1]:15432"')
        if not _is_host(host):
            raise ValueError(f"'{host}' is not a valid host name or IP address")
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ValueError(f"'{port_text}' is not a port number (0-65535)")
    return host, int(port_text)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOSTNAME.fullmatch(host) is not None
    return True


def _url_host_port(parts: SplitResult, default_port: int) -> tuple[str, int]:
    """Host and port of a split URL; ValueError on a bad port or host."""
    try:
        port = parts.port
    except ValueError:
        # urllib's message quotes the raw text, which could be a mistyped secret: say it in our own words.
        raise ValueError("the port is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if host and not _is_host(host):
        raise ValueError(f"'{host}' is not a valid host name or IP address")
    return host, default_port if port is None else port


# ------------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = ("gateway", "identity", "connections", "policies")
_GATEWAY_KEYS = (
    "state_dir", "recordings_dir", "store", "control", "postgres_listen", "ssh_listen", "workers",
    "gateway_id", "tls_cert", "tls_key", "ssh_host_key", "require_tls", "max_message_size",
    "recording_durability", "strict",
    "admin_groups", "auditor_groups",
)  # fmt: skip
_IDENTITY_KEYS = ("issuer", "issuers", "audience", "groups_claim", "ca_file", "leeway", "expiry_grace")
_ISSUER_KEYS = ("issuer", "audience", "groups_claim", "ca_file")
_POSTGRES_CONNECTION_KEYS = ("name", "type", "upstream", "password_env", "password_file")
_SSH_CONNECTION_KEYS = ("name", "type", "upstream", "key_file", "known_hosts")
_CONNECTION_KEYS = tuple(dict.fromkeys(_POSTGRES_CONNECTION_KEYS + _SSH_CONNECTION_KEYS))
_DECISION_LISTS = ("allow", "review", "deny")
_COMMAND_LISTS = ("allow_commands", "review_commands", "deny_commands")
_POLICY_KEYS = (
    "groups", "connections", *_DECISION_LISTS, "mask", "mask_columns", "mask_strategies", "mask_rules",
    "review_timeout", "approvers", *_COMMAND_LISTS,
)  # fmt: skip


def _read_config(reader: _Reader, document: dict[str, Any]) -> Config:
    reader.check_keys(document, (), _TOP_LEVEL_KEYS)
    gateway = _read_gateway(reader, _section(reader, document, "gateway"))
    identity = _read_identity(reader, _section(reader, document, "identity"))
    connections = _read_connections(reader, reader.sub_tables(document, "connections"))
    policies = tuple(
        _read_policy(reader, table, index, connections)
        for index, table in enumerate(reader.sub_tables(document, "policies"))
    )
    return Config(
        path=Path(os.path.abspath(reader.source)),
        gateway=gateway,
        identity=identity,
        connections=MappingProxyType(connections),
        policies=policies,
    )


def _section(reader: _Reader, document: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise reader.error((name,), f"expected a [{name}] table, got {_toml_type(value)}")
    return value


def _read_gateway(reader: _Reader, table: dict[str, Any]) -> GatewaySettings:
    where: KeyPath = ("gateway",)
    reader.check_keys(table, where, _GATEWAY_KEYS)
    state_dir = reader.resolve(reader.string(table, where, "state_dir", "./hoop-state"))
    recordings_dir = reader.resolve(reader.string(table, where, "recordings_dir", "./recordings"))
    tls_cert = reader.path(table, where, "tls_cert")
    tls_key = reader.path(table, where, "tls_key")
    if (tls_cert is None) != (tls_key is None):
        missing = "tls_key" if tls_key is None else "tls_cert"
        present = "tls_cert" if tls_key is None else "tls_key"
        raise reader.error((*where, present), f"set {missing} too: a TLS certificate and its key go together")
    workers = reader.typed(table, where, "workers", int, 1)
    if not 1 <= workers <= _MAX_WORKERS:
        raise reader.error((*where, "workers"), f"must be between 1 and {_MAX_WORKERS}, got {workers}")
    durability = reader.string(table, where, "recording_durability", "chunk")
    if durability not in RECORDING_DURABILITIES:
        hint = _suggestion(durability, RECORDING_DURABILITIES)
        raise reader.error((*where, "recording_durability"), f"unknown mode '{durability}'; {hint}")
    gateway_id = reader.string(table, where, "gateway_id", "") or socket.gethostname()
    if not _GATEWAY_ID.fullmatch(gateway_id):
        raise reader.error(
            (*where, "gateway_id"), "use 1-128 letters, digits and . _ - : @ (no spaces) for the gateway id"
        )
    return GatewaySettings(
        state_dir=state_dir,
        recordings_dir=recordings_dir,
        store=_read_store(reader, table, where),
        control=_read_control(reader, table, where, state_dir),
        postgres_listen=_read_listen(reader, table, where, "postgres_listen", "127.0.0.1:15432"),
        ssh_listen=_read_listen(reader, table, where, "ssh_listen", "127.0.0.1:2222"),
        workers=workers,
        gateway_id=gateway_id,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ssh_host_key=reader.path(table, where, "ssh_host_key"),
        require_tls=reader.typed(table, where, "require_tls", bool, None),
        max_message_size=_read_size(reader, table, where, "max_message_size"),
        recording_durability=durability,
        strict=reader.typed(table, where, "strict", bool, True),
        admin_groups=_read_role_groups(reader, table, where, "admin_groups"),
        auditor_groups=_read_role_groups(reader, table, where, "auditor_groups"),
    )


def _read_role_groups(reader: _Reader, table: dict[str, Any], where: KeyPath, name: str) -> tuple[str, ...]:
    groups = reader.string_list(table, where, name, ())
    if "*" in groups:
        position = groups.index("*")
        raise reader.error((*where, name, position), "'*' would give everyone this role; name the groups")
    return groups


def _read_store(reader: _Reader, table: dict[str, Any], where: KeyPath) -> str:
    store = reader.string(table, where, "store", "sqlite")
    if store == "sqlite":
        return store
    key = (*where, "store")
    if not store.startswith(("postgresql://", "postgres://")):
        raise reader.error(key, 'use "sqlite" or a "postgresql://user@host/db" URL')
    _check_postgres_url(reader, key, store)
    return store


def _read_control(reader: _Reader, table: dict[str, Any], where: KeyPath, state_dir: Path) -> str:
    control = reader.string(table, where, "control", "")
    if not control:
        return f"unix:{state_dir / 'control.sock'}"
    key = (*where, "control")
    if control.startswith("unix:"):
        socket_path = control.removeprefix("unix:")
        if not socket_path:
            raise reader.error(key, 'name the socket file, e.g. "unix:./hoop-state/control.sock"')
        return f"unix:{reader.resolve(socket_path)}"
    if control.startswith("tcp://"):
        try:
            split_host_port(control.removeprefix("tcp://"))
        except ValueError as error:
            raise reader.error(key, f"bad TCP address: {error}") from None
        return control
    raise reader.error(key, 'use "unix:PATH" or "tcp://HOST:PORT" for the control API address')


def _read_listen(
    reader: _Reader, table: dict[str, Any], where: KeyPath, name: str, default: str
) -> str | None:
    address = reader.typed(table, where, name, str, default).strip()
    if address in ("", "off"):
        return None
    try:
        split_host_port(address)
    except ValueError as error:
        raise reader.error((*where, name), f'bad listen address: {error}; or "off" to disable') from None
    return address


def _read_size(reader: _Reader, table: dict[str, Any], where: KeyPath, name: str) -> int:
    value = table.get(name, DEFAULT_MAX_MESSAGE_SIZE)
    key = (*where, name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise reader.error(key, f'expected a byte count or a size like "64MiB", got {_toml_type(value)}')
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match is None:
            raise reader.error(key, f'cannot read size {value!r}; write e.g. "64MiB", "512KiB" or 1048576')
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not _MIN_MESSAGE_SIZE <= value <= _MAX_MESSAGE_SIZE:
        raise reader.error(key, "must be between 1KiB and 1GiB")
    return value


def _read_identity(reader: _Reader, table: dict[str, Any]) -> IdentitySettings:
    where: KeyPath = ("identity",)
    reader.check_keys(table, where, _IDENTITY_KEYS)
    audience = reader.string(table, where, "audience", "hoop")
    groups_claim = reader.string(table, where, "groups_claim", "groups")
    ca_file = reader.path(table, where, "ca_file")
    if "issuer" in table and "issuers" in table:
        raise reader.error((*where, "issuers"), "use either issuer or [[identity.issuers]], not both")
    issuers: list[IssuerSettings] = []
    if "issuers" in table:
        entries = table["issuers"]
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise reader.error((*where, "issuers"), "write each issuer as an [[identity.issuers]] table")
        for index, entry in enumerate(entries):
            entry_where: KeyPath = (*where, "issuers", index)
            reader.check_keys(entry, entry_where, _ISSUER_KEYS)
            issuers.append(
                IssuerSettings(
                    issuer=_check_issuer(
                        reader, (*entry_where, "issuer"), reader.string(entry, entry_where, "issuer")
                    ),
                    audience=reader.string(entry, entry_where, "audience", audience),
                    groups_claim=reader.string(entry, entry_where, "groups_claim", groups_claim),
                    ca_file=reader.path(entry, entry_where, "ca_file", None) or ca_file,
                )
            )
    else:
        raw = table.get("issuer", "local")
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not names:
            raise reader.error((*where, "issuer"), '"local", an issuer URL, or a non-empty array of them')
        for index, name in enumerate(names):
            key: KeyPath = (*where, "issuer") if isinstance(raw, str) else (*where, "issuer", index)
            if not isinstance(name, str):
                raise reader.error(key, f"expected a string, got {_toml_type(name)}")
            issuers.append(IssuerSettings(_check_issuer(reader, key, name), audience, groups_claim, ca_file))
    if not issuers:
        raise reader.error(
            (*where, "issuers"), 'add at least one [[identity.issuers]] table (issuer = "local")'
        )
    seen: set[str] = set()
    for index, issuer in enumerate(issuers):
        if issuer.issuer in seen:
            key = (*where, "issuers", index) if "issuers" in table else (*where, "issuer", index)
            raise reader.error(key, f"issuer '{issuer.issuer}' is listed twice")
        seen.add(issuer.issuer)
    leeway = reader.duration(table, where, "leeway", 30.0)
    if leeway > _MAX_LEEWAY_SECONDS:
        raise reader.error(
            (*where, "leeway"), "keep the clock leeway at 5m or less; it weakens expiry checks"
        )
    grace = reader.duration(table, where, "expiry_grace", 0.0)
    if grace > _MAX_EXPIRY_GRACE_SECONDS:
        raise reader.error((*where, "expiry_grace"), "keep the expiry grace at 24h or less")
    return IdentitySettings(tuple(issuers), audience, groups_claim, leeway, grace)


def _check_issuer(reader: _Reader, key: KeyPath, issuer: str) -> str:
    if issuer == "local":
        return issuer
    try:
        parts = urlsplit(issuer)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise reader.error(key, 'use "local" or the issuer URL, e.g. "https://login.example.com"')
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise reader.error(key, "an issuer URL must use https (http is accepted only on loopback)")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise reader.error(key, "an issuer URL has no user, password, query or fragment")
    return issuer


def _read_connections(reader: _Reader, tables: list[dict[str, Any]]) -> dict[str, ConnectionSettings]:
    connections: dict[str, ConnectionSettings] = {}
    for index, table in enumerate(tables):
        where: KeyPath = ("connections", index)
        connection = _read_connection(reader, table, where)
        if connection.name in connections:
            raise reader.error((*where, "name"), f"a connection named '{connection.name}' is already defined")
        connections[connection.name] = connection
    return connections


def _read_connection(reader: _Reader, table: dict[str, Any], where: KeyPath) -> ConnectionSettings:
    reader.check_keys(table, where, _CONNECTION_KEYS)
    name = reader.string(table, where, "name")
    if not _CONNECTION_NAME.fullmatch(name):
        raise reader.error(
            (*where, "name"),
            "use letters, digits, '_', '.' and '-' (it is the database / SSH user clients name)",
        )
    kind = reader.string(table, where, "type")
    if kind not in ("postgres", "ssh"):
        raise reader.error(
            (*where, "type"), f"unknown type '{kind}'; {_suggestion(kind, ('postgres', 'ssh'))}"
        )
    allowed = _POSTGRES_CONNECTION_KEYS if kind == "postgres" else _SSH_CONNECTION_KEYS
    for key in table:
        if key not in allowed:
            raise reader.error((*where, key), f"{key} does not apply to a {kind} connection; remove it")
    upstream_text = reader.string(table, where, "upstream")
    upstream_key = (*where, "upstream")
    if kind == "ssh":
        return ConnectionSettings(
            name=name,
            type="ssh",
            upstream=_parse_ssh_upstream(reader, upstream_key, upstream_text),
            # Both required: a login without the gateway's own key would need a secret from the agent, and one
            # without a known host key could be intercepted on the first connect (no trust on first use).
            key_file=reader.path(table, where, "key_file", required="the gateway's private key for the host"),
            known_hosts=reader.path(
                table, where, "known_hosts", required="a known_hosts file with the host's key (ssh-keyscan)"
            ),
            config_path=reader.source,
            line=reader.line(where),
        )
    password_env = reader.string(table, where, "password_env", None)
    if password_env is not None and not _ENV_NAME.fullmatch(password_env):
        raise reader.error((*where, "password_env"), "name an environment variable, e.g. APPDB_PASSWORD")
    password_file = reader.path(table, where, "password_file")
    if password_env is not None and password_file is not None:
        raise reader.error((*where, "password_file"), "set password_env or password_file, not both")
    return ConnectionSettings(
        name=name,
        type="postgres",
        upstream=_parse_postgres_upstream(reader, upstream_key, upstream_text),
        password_env=password_env,
        password_file=password_file,
        config_path=reader.source,
        line=reader.line(where),
    )


_SECRET_IN_URL = (
    "remove the password from the URL and set password_env or password_file (secrets never go in the config)"
)


def _check_postgres_url(reader: _Reader, key: KeyPath, url: str) -> tuple[SplitResult, str, int]:
    """Split a postgresql:// URL, rejecting secrets and a bad host/port (the URL itself is never echoed)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            raise reader.error(key, _SECRET_IN_URL)
        if any(name == "password" for name, _value in parse_qsl(parts.query, keep_blank_values=True)):
            raise reader.error(key, _SECRET_IN_URL)
        host, port = _url_host_port(parts, 5432)
    except ValueError as error:
        raise reader.error(key, f"bad host or port in the URL: {error}") from None
    return parts, host, port


def _parse_postgres_upstream(reader: _Reader, key: KeyPath, url: str) -> PostgresUpstream:
    if not url.startswith(("postgresql://", "postgres://")):
        raise reader.error(key, 'expected a URL like "postgresql://user@host:5432/db?sslmode=require"')
    parts, host, port = _check_postgres_url(reader, key, url)
    options: dict[str, str] = {}
    sslmode = "prefer"  # libpq's default
    sslrootcert: Path | None = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "sslmode":
            if value not in SSLMODES:
                raise reader.error(key, f"unknown sslmode '{value}'; {_suggestion(value, SSLMODES)}")
            sslmode = value
        elif name == "sslrootcert":
            sslrootcert = reader.resolve(value)
        elif name == "host" and not host:
            # postgresql://user@/db?host=/run/postgresql reaches a Unix socket directory.
            if not value.startswith("/"):
                raise reader.error(
                    key, "a host query parameter must be a Unix socket directory (absolute path)"
                )
            host = value
        elif name in ("host", "port", "user", "dbname"):
            raise reader.error(key, f"put {name} in the URL itself, not in the query string")
        elif name in ("sslcert", "sslkey", "sslcrl", "passfile"):
            options[name] = str(reader.resolve(value))
        else:
            options[name] = value
    if not host:
        raise reader.error(key, "the URL names no host")
    user = unquote(parts.username or "")
    if not user:
        raise reader.error(key, 'name the upstream user in the URL, e.g. "postgresql://app@host/db"')
    database = unquote(parts.path.removeprefix("/")) or user
    if parts.fragment:
        raise reader.error(key, "a postgresql URL has no #fragment")
    return PostgresUpstream(host, port, user, database, sslmode, sslrootcert, MappingProxyType(options))


def _parse_ssh_upstream(reader: _Reader, key: KeyPath, text: str) -> SshUpstream:
    url = text if text.startswith("ssh://") else f"ssh://{text}"
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            raise reader.error(key, "remove the password: the gateway signs in to SSH hosts with key_file")
        if parts.path or parts.query or parts.fragment:
            raise reader.error(key, 'expected "user@host:port", e.g. "deploy@10.0.0.5:22"')
        host, port = _url_host_port(parts, 22)
    except ValueError as error:
        raise reader.error(key, f"bad host or port: {error}") from None
    user = unquote(parts.username or "")
    if not user or not host:
        raise reader.error(key, 'expected "user@host:port", e.g. "deploy@10.0.0.5:22"')
    return SshUpstream(host, port, user)


def _read_policy(
    reader: _Reader, table: dict[str, Any], index: int, connections: Mapping[str, ConnectionSettings]
) -> PolicySettings:
    where: KeyPath = ("policies", index)
    reader.check_keys(table, where, _POLICY_KEYS)
    groups = reader.string_list(table, where, "groups")
    if not groups:
        raise reader.error((*where, "groups"), 'name at least one group, or "*" for every identity')
    names = reader.string_list(table, where, "connections")
    if not names:
        raise reader.error((*where, "connections"), 'name at least one connection, or "*" for all')
    for position, name in enumerate(names):
        if name != "*" and name not in connections:
            hint = _suggestion(name, connections) if connections else "no [[connections]] are defined"
            raise reader.error((*where, "connections", position), f"unknown connection '{name}'; {hint}")
    approvers = reader.string_list(table, where, "approvers", ())
    if "*" in approvers:
        raise reader.error(
            (*where, "approvers", approvers.index("*")),
            "'*' would let anyone approve; name the approver groups",
        )
    decision_lists = {name: _read_kind_list(reader, table, where, name) for name in _DECISION_LISTS}
    _reject_overlaps(reader, table, where, decision_lists)
    command_lists = {name: _read_command_list(reader, table, where, name) for name in _COMMAND_LISTS}
    _reject_overlaps(reader, table, where, command_lists)
    mask_rules = _read_mask_rules(reader, table, where)
    mask = reader.string_list(table, where, "mask", ())
    for position, entity in enumerate(mask):
        if not _ENTITY_NAME.fullmatch(entity):
            raise reader.error((*where, "mask", position), f"'{entity}' is not an entity name like 'email'")
        if entity.startswith("custom:") and entity.removeprefix("custom:") not in mask_rules:
            raise reader.error((*where, "mask", position), f"define the rule {entity} in mask_rules")
    mask = tuple(dict.fromkeys((*mask, *(f"custom:{name}" for name in mask_rules))))
    timeout = reader.duration(table, where, "review_timeout", 300.0)
    if timeout <= 0:
        raise reader.error((*where, "review_timeout"), 'must be longer than zero, e.g. "5m"')
    return PolicySettings(
        groups=groups,
        connections=names,
        allow=decision_lists["allow"],
        review=decision_lists["review"],
        deny=decision_lists["deny"],
        mask=mask,
        mask_columns=_read_mask_columns(reader, table, where),
        mask_strategies=_read_mask_strategies(reader, table, where, mask),
        review_timeout_seconds=timeout,
        approvers=approvers,
        allow_commands=command_lists["allow_commands"],
        review_commands=command_lists["review_commands"],
        deny_commands=command_lists["deny_commands"],
        line=reader.line(where) or 0,
        mask_rules=MappingProxyType(mask_rules),
    )


def _read_kind_list(reader: _Reader, table: dict[str, Any], where: KeyPath, name: str) -> frozenset[str]:
    entries = reader.string_list(table, where, name, ())
    for position, entry in enumerate(entries):
        match = _KIND_ENTRY.fullmatch(entry)
        kind = match.group(1) if match else entry.partition(":")[0]
        if kind not in POLICY_KINDS:
            raise reader.error(
                (*where, name, position), f"unknown kind '{kind}'; {_suggestion(kind, POLICY_KINDS)}"
            )
        if match is None:
            raise reader.error(
                (*where, name, position),
                f"'{entry}' is not 'kind' or 'kind:flag' (flags are lower_case words)",
            )
    return frozenset(entries)


def _read_command_list(reader: _Reader, table: dict[str, Any], where: KeyPath, name: str) -> tuple[str, ...]:
    patterns = reader.string_list(table, where, name, ())
    normalised: list[str] = []
    for position, pattern in enumerate(patterns):
        program = pattern.split()[0]
        if "/" in program:
            basename = program.rstrip("/").rsplit("/", 1)[-1]
            raise reader.error(
                (*where, name, position),
                f"commands match by program basename; write '{basename}' instead of '{program}'",
            )
        normalised.append(" ".join(pattern.split()))
    return tuple(normalised)


def _reject_overlaps(
    reader: _Reader, table: dict[str, Any], where: KeyPath, lists: Mapping[str, Collection[str]]
) -> None:
    """An entry in two of allow/review/deny is a contradiction the admin must resolve, not a silent pick."""
    seen: dict[str, str] = {}
    for list_name, entries in lists.items():
        for entry in entries:
            if entry in seen:
                raw = table[list_name]
                position = next(
                    (
                        i
                        for i, item in enumerate(raw)
                        if isinstance(item, str) and " ".join(item.split()) == entry
                    ),
                    0,
                )
                raise reader.error(
                    (*where, list_name, position),
                    f"'{entry}' is in both {seen[entry]} and {list_name}; keep it in one list",
                )
            seen[entry] = list_name


def _read_mask_columns(reader: _Reader, table: dict[str, Any], where: KeyPath) -> tuple[str, ...]:
    columns = reader.string_list(table, where, "mask_columns", ())
    for position, pattern in enumerate(columns):
        if any(char.isspace() for char in pattern):
            raise reader.error(
                (*where, "mask_columns", position), 'write column globs like "*.email", no spaces'
            )
    return columns


def _read_mask_strategies(
    reader: _Reader, table: dict[str, Any], where: KeyPath, mask: tuple[str, ...]
) -> Mapping[str, str]:
    raw = table.get("mask_strategies", {})
    key: KeyPath = (*where, "mask_strategies")
    if not isinstance(raw, dict):
        raise reader.error(key, f'expected a table like {{ email = "hash" }}, got {_toml_type(raw)}')
    strategies: dict[str, str] = {}
    for entity, strategy in raw.items():
        entity_key = (*key, entity)
        if entity not in mask:
            raise reader.error(entity_key, f"'{entity}' is not in mask; add it there or remove this strategy")
        if not isinstance(strategy, str) or not _is_strategy(strategy):
            raise reader.error(entity_key, 'use "redact", "hash", "partial" or "partial:N" (keep the last N)')
        strategies[entity] = strategy
    return MappingProxyType(strategies)


def _is_strategy(text: str) -> bool:
    return text in ("redact", "hash") or _PARTIAL_STRATEGY.fullmatch(text) is not None


def _read_mask_rules(reader: _Reader, table: dict[str, Any], where: KeyPath) -> dict[str, str]:
    raw = table.get("mask_rules", {})
    key: KeyPath = (*where, "mask_rules")
    if not isinstance(raw, dict):
        raise reader.error(
            key, f'expected a table like {{ order_ref = "ORD-[0-9]{{8}}" }}, got {_toml_type(raw)}'
        )
    rules: dict[str, str] = {}
    for name, pattern in raw.items():
        rule_key = (*key, name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise reader.error(rule_key, "name custom rules with lower_case words")
        if not isinstance(pattern, str) or not pattern:
            raise reader.error(rule_key, "expected a regular expression string")
        try:
            re.compile(pattern)
        except re.error as error:
            raise reader.error(rule_key, f"invalid regular expression: {error}") from None
        rules[name] = pattern
    return rules


# ------------------------------------------------------------------------------------------------------------
# Starter config (what `hoop-tui init` writes)
# ------------------------------------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


_STARTER_TEMPLATE = """\
# hoop-tui gateway configuration. Relative paths are resolved against this file's directory.
# Every key is checked when the gateway starts: a typo stops it with the file, line and key.

[gateway]
state_dir = {state_dir}          # signing keys, the local token issuer, the sqlite store
recordings_dir = "./recordings"    # one tamper-evident .hrec file per session
store = "sqlite"                   # or "postgresql://hoop@db-host/hoop" when several gateways share state
control = {control}   # control API for the console; or "tcp://127.0.0.1:7443"
admin_groups = []                  # token groups that may kill sessions, grant access and read recordings
auditor_groups = []                # token groups that may list sessions and read recordings
postgres_listen = "127.0.0.1:15432"  # agents connect here with psql/asyncpg/psycopg; "off" disables
ssh_listen = "127.0.0.1:2222"        # agents connect here with ssh; "off" disables
# workers = 2                      # gateway processes sharing the listen ports
# tls_cert = "./tls/gateway.crt"   # client-facing TLS; a self-signed pair is generated when absent
# tls_key = "./tls/gateway.key"
# ssh_host_key = "./keys/ssh_host" # the SSH listener's host key; generated in state_dir/keys when absent
# max_message_size = "64MiB"       # larger protocol messages end that session
# recording_durability = "chunk"   # chunk | batch | none
# strict = true                    # a recording or store failure ends the session (fail closed)

[identity]
issuer = "local"                   # tokens from `hoop-tui token mint`; or an https OIDC issuer URL
audience = "hoop"
groups_claim = "groups"
# leeway = "30s"                   # clock skew tolerated on exp/nbf/iat
# expiry_grace = "0s"              # how long a session may outlive its token

[[connections]]
name = "appdb"                     # agents use it as the database name: dbname=appdb
type = "postgres"
upstream = "postgresql://app@127.0.0.1:5432/app?sslmode=prefer"
password_env = "APPDB_PASSWORD"    # or password_file = "./secrets/appdb"; never a password in this file

# [[connections]]
# name = "web1"                    # agents use it as the SSH user: ssh -p 2222 web1@gateway
# type = "ssh"
# upstream = "deploy@10.0.0.5:22"
# key_file = "./keys/web1"         # the gateway's private key for the upstream host
# known_hosts = "./keys/known_hosts"

[[policies]]
groups = ["ci-agents"]             # token groups this policy applies to ("*" for everyone)
connections = ["appdb"]
allow = ["read", "transaction", "session"]
review = ["write", "ddl"]          # held in the live session until an approver decides
deny = ["drop", "truncate", "copy_program", "dangerous_function", "opaque", "write:no_where"]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret"]
# mask_columns = ["*.email", "users.ssn"]
# mask_strategies = {{ email = "hash", credit_card = "partial:4" }}
review_timeout = "5m"
approvers = ["oncall"]             # groups whose members may decide held statements
"""


def starter_config_text(state_dir: str = "./hoop-state") -> str:
    """A valid, commented config: the local issuer, one postgres connection and a policy like DESIGN §6."""
    control_path = state_dir.rstrip("/") + "/control.sock"
    return _STARTER_TEMPLATE.format(
        state_dir=_toml_string(state_dir), control=_toml_string(f"unix:{control_path}")
    )
