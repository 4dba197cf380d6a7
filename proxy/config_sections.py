"""Reading the [gateway], [identity] and [[connections]] sections into settings."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from proxy.config_addresses import split_host_port, url_host_port
from proxy.config_errors import (
    KeyPath,
)
from proxy.config_model import (
    DEFAULT_MAX_MESSAGE_SIZE,
    RECORDING_DURABILITIES,
    SSLMODES,
    Config,
    ConnectionSettings,
    GatewaySettings,
    IdentitySettings,
    IssuerSettings,
    PostgresUpstream,
    SshUpstream,
)
from proxy.config_policies import read_policy
from proxy.config_reader import ConfigReader, suggestion, toml_type
from proxy.hosts import is_loopback_host

_MIN_MESSAGE_SIZE = 1024
_MAX_MESSAGE_SIZE = 1024 * 1024 * 1024
_MAX_WORKERS = 64
_MAX_LEEWAY_SECONDS = 300.0
_MAX_EXPIRY_GRACE_SECONDS = 86400.0

_CONNECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
_T = TypeVar("_T")

# ------------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = ("gateway", "identity", "connections", "policies")
_GATEWAY_KEYS = (
    "state_dir", "recordings_dir", "store", "control", "postgres_listen", "ssh_listen", "workers",
    "gateway_id", "tls_cert", "tls_key", "ssh_host_key", "require_tls", "max_message_size",
    "recording_durability", "strict",
    "admin_groups", "auditor_groups", "auditor_mask",
)  # fmt: skip
_IDENTITY_KEYS = ("issuer", "issuers", "audience", "groups_claim", "ca_file", "leeway", "expiry_grace")
_ISSUER_KEYS = ("issuer", "audience", "groups_claim", "ca_file")
_POSTGRES_CONNECTION_KEYS = ("name", "type", "upstream", "password_env", "password_file")
_SSH_CONNECTION_KEYS = ("name", "type", "upstream", "key_file", "known_hosts")
_CONNECTION_KEYS = tuple(dict.fromkeys(_POSTGRES_CONNECTION_KEYS + _SSH_CONNECTION_KEYS))


def read_config(reader: ConfigReader, document: dict[str, Any]) -> Config:
    reader.check_keys(document, (), _TOP_LEVEL_KEYS)
    gateway = _read_gateway(reader, _section(reader, document, "gateway"))
    identity = _read_identity(reader, _section(reader, document, "identity"))
    connections = _read_connections(reader, reader.sub_tables(document, "connections"))
    policies = tuple(
        read_policy(reader, table, index, connections)
        for index, table in enumerate(reader.sub_tables(document, "policies"))
    )
    return Config(
        path=Path(os.path.abspath(reader.source)),
        gateway=gateway,
        identity=identity,
        connections=MappingProxyType(connections),
        policies=policies,
    )


def _section(reader: ConfigReader, document: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise reader.error((name,), f"expected a [{name}] table, got {toml_type(value)}")
    return value


def _read_gateway(reader: ConfigReader, table: dict[str, Any]) -> GatewaySettings:
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
        hint = suggestion(durability, RECORDING_DURABILITIES)
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
        auditor_mask=_read_auditor_mask(reader, table, where),
    )


def _read_role_groups(
    reader: ConfigReader, table: dict[str, Any], where: KeyPath, name: str
) -> tuple[str, ...]:
    groups = reader.string_list(table, where, name, ())
    if "*" in groups:
        position = groups.index("*")
        raise reader.error((*where, name, position), "'*' would give everyone this role; name the groups")
    return groups


def _read_auditor_mask(reader: ConfigReader, table: dict[str, Any], where: KeyPath) -> tuple[str, ...]:
    from proxy.masking.entities import BUILTIN_ENTITIES

    entities = reader.string_list(table, where, "auditor_mask", ())
    for position, entity in enumerate(entities):
        if entity not in BUILTIN_ENTITIES:
            raise reader.error((*where, "auditor_mask", position), suggestion(entity, BUILTIN_ENTITIES))
    return tuple(dict.fromkeys(entities))


def _read_store(reader: ConfigReader, table: dict[str, Any], where: KeyPath) -> str:
    store = reader.string(table, where, "store", "sqlite")
    if store == "sqlite":
        return store
    key = (*where, "store")
    if not store.startswith(("postgresql://", "postgres://")):
        raise reader.error(key, 'use "sqlite" or a "postgresql://user@host/db" URL')
    _check_postgres_url(reader, key, store)
    return store


def _read_control(reader: ConfigReader, table: dict[str, Any], where: KeyPath, state_dir: Path) -> str:
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
    reader: ConfigReader, table: dict[str, Any], where: KeyPath, name: str, default: str
) -> str | None:
    address = reader.typed(table, where, name, str, default).strip()
    if address in ("", "off"):
        return None
    try:
        split_host_port(address)
    except ValueError as error:
        raise reader.error((*where, name), f'bad listen address: {error}; or "off" to disable') from None
    return address


def _read_size(reader: ConfigReader, table: dict[str, Any], where: KeyPath, name: str) -> int:
    value = table.get(name, DEFAULT_MAX_MESSAGE_SIZE)
    key = (*where, name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise reader.error(key, f'expected a byte count or a size like "64MiB", got {toml_type(value)}')
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match is None:
            raise reader.error(key, f'cannot read size {value!r}; write e.g. "64MiB", "512KiB" or 1048576')
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not _MIN_MESSAGE_SIZE <= value <= _MAX_MESSAGE_SIZE:
        raise reader.error(key, "must be between 1KiB and 1GiB")
    return value


def _read_identity(reader: ConfigReader, table: dict[str, Any]) -> IdentitySettings:
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
                raise reader.error(key, f"expected a string, got {toml_type(name)}")
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


def _check_issuer(reader: ConfigReader, key: KeyPath, issuer: str) -> str:
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


def _read_connections(reader: ConfigReader, tables: list[dict[str, Any]]) -> dict[str, ConnectionSettings]:
    connections: dict[str, ConnectionSettings] = {}
    for index, table in enumerate(tables):
        where: KeyPath = ("connections", index)
        connection = _read_connection(reader, table, where)
        if connection.name in connections:
            raise reader.error((*where, "name"), f"a connection named '{connection.name}' is already defined")
        connections[connection.name] = connection
    return connections


def _read_connection(reader: ConfigReader, table: dict[str, Any], where: KeyPath) -> ConnectionSettings:
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
            (*where, "type"), f"unknown type '{kind}'; {suggestion(kind, ('postgres', 'ssh'))}"
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


def _check_postgres_url(reader: ConfigReader, key: KeyPath, url: str) -> tuple[SplitResult, str, int]:
    """Split a postgresql:// URL, rejecting secrets and a bad host/port (the URL itself is never echoed)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            raise reader.error(key, _SECRET_IN_URL)
        if any(name == "password" for name, _value in parse_qsl(parts.query, keep_blank_values=True)):
            raise reader.error(key, _SECRET_IN_URL)
        host, port = url_host_port(parts, 5432)
    except ValueError as error:
        raise reader.error(key, f"bad host or port in the URL: {error}") from None
    return parts, host, port


def _parse_postgres_upstream(reader: ConfigReader, key: KeyPath, url: str) -> PostgresUpstream:
    if not url.startswith(("postgresql://", "postgres://")):
        raise reader.error(key, 'expected a URL like "postgresql://user@host:5432/db?sslmode=require"')
    parts, host, port = _check_postgres_url(reader, key, url)
    options: dict[str, str] = {}
    sslmode = "prefer"  # libpq's default
    sslrootcert: Path | None = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "sslmode":
            if value not in SSLMODES:
                raise reader.error(key, f"unknown sslmode '{value}'; {suggestion(value, SSLMODES)}")
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


def _parse_ssh_upstream(reader: ConfigReader, key: KeyPath, text: str) -> SshUpstream:
    url = text if text.startswith("ssh://") else f"ssh://{text}"
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            raise reader.error(key, "remove the password: the gateway signs in to SSH hosts with key_file")
        if parts.path or parts.query or parts.fragment:
            raise reader.error(key, 'expected "user@host:port", e.g. "deploy@10.0.0.5:22"')
        host, port = url_host_port(parts, 22)
    except ValueError as error:
        raise reader.error(key, f"bad host or port: {error}") from None
    user = unquote(parts.username or "")
    if not user or not host:
        raise reader.error(key, 'expected "user@host:port", e.g. "deploy@10.0.0.5:22"')
    return SshUpstream(host, port, user)
