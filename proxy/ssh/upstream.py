"""The gateway's SSH client side: one connection to a connection's upstream host with the gateway-held key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncssh

from proxy.config import ConnectionSettings, SshUpstream
from proxy.ssh.algorithms import MACS, UPSTREAM_CIPHERS

CONNECT_TIMEOUT = 15.0


class SshUpstreamError(Exception):
    """The upstream could not be reached or refused the gateway; str() is safe to show the agent."""


@dataclass(frozen=True, slots=True)
class SshUpstreamTarget:
    name: str
    host: str
    port: int
    user: str
    key_file: str
    known_hosts: str

    @classmethod
    def from_connection(cls, connection: ConnectionSettings) -> SshUpstreamTarget:
        upstream = connection.upstream
        assert isinstance(upstream, SshUpstream)
        if connection.key_file is None or connection.known_hosts is None:
            raise SshUpstreamError(f'connection "{connection.name}" has no key_file or known_hosts')
        return cls(
            connection.name,
            upstream.host,
            upstream.port,
            upstream.user,
            str(connection.key_file),
            str(connection.known_hosts),
        )


async def connect_ssh_upstream(target: SshUpstreamTarget) -> asyncssh.SSHClientConnection:
    """Log in to the upstream host. The host key must match `known_hosts` (never trust on first use).

    Raises SshUpstreamError with a message for the agent; the detail for the operator is its __cause__.
    """
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                target.host,
                target.port,
                username=target.user,
                client_keys=[target.key_file],
                known_hosts=target.known_hosts,
                # Nothing of the gateway host's own SSH setup may leak into an upstream login.
                agent_path=None,
                config=[],
                password=None,
                kbdint_auth=False,
                gss_auth=False,
                preferred_auth=["publickey"],
                keepalive_interval=30,
                encryption_algs=list(UPSTREAM_CIPHERS),
                mac_algs=list(MACS),
            ),
            CONNECT_TIMEOUT,
        )
    except asyncssh.HostKeyNotVerifiable as error:
        raise SshUpstreamError(
            f'the host key of connection "{target.name}"\'s upstream does not match its known_hosts entry; '
            "the gateway refuses to connect"
        ) from error
    except asyncssh.PermissionDenied as error:
        raise SshUpstreamError(
            f'the upstream of connection "{target.name}" refused the gateway\'s key'
        ) from error
    except (OSError, asyncssh.Error, TimeoutError) as error:
        raise SshUpstreamError(f'the upstream of connection "{target.name}" is unavailable') from error
