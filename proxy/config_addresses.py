"""Listen addresses and upstream URLs in the config: host:port splitting and host-name checks."""

from __future__ import annotations

import ipaddress
import re
from typing import TypeVar
from urllib.parse import SplitResult

# DNS labels; underscores are tolerated because container and service-discovery names often carry them.
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
_T = TypeVar("_T")

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


def url_host_port(parts: SplitResult, default_port: int) -> tuple[str, int]:
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
