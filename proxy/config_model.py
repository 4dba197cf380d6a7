"""The gateway's settings as the rest of the gateway reads them (DESIGN §6), and the kinds a policy names."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from proxy.config_addresses import split_host_port
from proxy.config_errors import (
    CredentialError,
)
from proxy.hosts import is_loopback_host

_T = TypeVar("_T")

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
    auditor_mask: tuple[str, ...] = ()  # entities masked further for auditors who are not admins (at render)

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
