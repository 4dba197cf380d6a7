"""Opening the gateway's own connection to the upstream server and logging in with the held credential."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from proxy.hosts import is_loopback_host
from proxy.postgres.endpoint import Endpoint, PeerClosed
from proxy.postgres.framing import CancelRequest, MessageDecoder, SSLRequest, StartupMessage
from proxy.postgres.messages import (
    Authentication,
    BackendKeyData,
    ErrorResponse,
    Message,
    NegotiateProtocolVersion,
    NoticeResponse,
    ParameterStatus,
    PasswordMessage,
    ReadyForQuery,
)
from proxy.postgres.protocol import (
    AUTH_CLEARTEXT,
    AUTH_MD5,
    AUTH_OK,
    AUTH_SASL,
    AUTH_SASL_CONTINUE,
    AUTH_SASL_FINAL,
    PROTOCOL_3_0,
    ProtocolError,
)
from proxy.postgres.upstream_auth import ScramClient, md5_password
from proxy.tls import upstream_context


class UpstreamError(Exception):
    """The upstream could not be reached or refused the gateway's login. `str()` is safe to log."""

    def __init__(self, message: str, *, server_error: ErrorResponse | None = None) -> None:
        super().__init__(message)
        self.server_error = server_error


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    host: str
    port: int
    user: str
    database: str
    sslmode: str = "prefer"
    sslrootcert: Path | None = None
    connect_timeout: float = 10.0


@dataclass(slots=True)
class UpstreamLink:
    """A logged-in upstream connection, ready for queries."""

    endpoint: Endpoint
    target: UpstreamTarget
    backend_pid: int
    backend_secret: bytes
    parameters: dict[str, str] = field(default_factory=dict)
    notices: list[NoticeResponse] = field(default_factory=list)
    transaction_status: str = "I"
    pending: bytes = b""  # bytes received after ReadyForQuery (asynchronous messages) — relay them first


async def _next_message(endpoint: Endpoint, decoder: MessageDecoder) -> Message:
    while True:
        message = decoder.next_message()
        if message is not None:
            return message
        decoder.feed(await endpoint.receive())


async def _negotiate_tls(endpoint: Endpoint, target: UpstreamTarget) -> None:
    if target.sslmode == "disable":
        return
    endpoint.write(SSLRequest().encode())
    answer = await endpoint.receive()
    if answer[:1] == b"S" and len(answer) == 1:
        context = upstream_context(target.sslmode, target.sslrootcert)
        await endpoint.start_tls(context, server_side=False, server_hostname=target.host)
    elif answer[:1] == b"N" and len(answer) == 1:
        if target.sslmode in ("require", "verify-ca", "verify-full"):
            raise UpstreamError(f"upstream does not support TLS but sslmode is {target.sslmode}")
    elif answer[:1] == b"E":
        raise UpstreamError("upstream rejected the TLS request")
    else:
        raise UpstreamError("upstream answered the TLS request with unexpected bytes")


async def _authenticate(
    endpoint: Endpoint, decoder: MessageDecoder, target: UpstreamTarget, password: str | None
) -> None:
    scram: ScramClient | None = None
    while True:
        message = await _next_message(endpoint, decoder)
        if isinstance(message, ErrorResponse):
            raise UpstreamError(f"upstream refused login: {message.message}", server_error=message)
        if isinstance(message, NegotiateProtocolVersion):
            continue
        if not isinstance(message, Authentication):
            raise UpstreamError(f"unexpected {type(message).__name__} during upstream login")
        if message.code == AUTH_OK:
            return
        if password is None and message.code != AUTH_OK:
            raise UpstreamError("upstream asks for a password but the connection has none configured")
        assert password is not None
        if message.code == AUTH_CLEARTEXT:
            if not endpoint.is_tls and not is_loopback_host(target.host):
                # libpq sends it anyway; we refuse to put the held secret on the wire in clear.
                raise UpstreamError("upstream asks for a cleartext password over an unencrypted connection")
            endpoint.write(PasswordMessage.for_password(password).encode())
        elif message.code == AUTH_MD5:
            salt = message.data[:4]
            endpoint.write(PasswordMessage.for_password(md5_password(target.user, password, salt)).encode())
        elif message.code == AUTH_SASL:
            if ScramClient.MECHANISM not in message.sasl_mechanisms():
                raise UpstreamError("upstream offers no SASL mechanism the gateway supports")
            scram = ScramClient(password)
            initial = PasswordMessage.for_sasl_initial(ScramClient.MECHANISM, scram.first_message())
            endpoint.write(initial.encode())
        elif message.code == AUTH_SASL_CONTINUE and scram is not None:
            endpoint.write(PasswordMessage(scram.final_message(message.data)).encode())
        elif message.code == AUTH_SASL_FINAL and scram is not None:
            scram.verify_final(message.data)
        else:
            raise UpstreamError(f"upstream asks for an unsupported authentication method ({message.code})")


async def connect_upstream(
    target: UpstreamTarget,
    password: str | None,
    parameters: dict[str, str],
    *,
    max_message_size: int,
) -> UpstreamLink:
    """Connect, negotiate TLS per sslmode, log in, and read up to the first ReadyForQuery."""
    loop = asyncio.get_running_loop()
    try:
        _, endpoint = await asyncio.wait_for(
            loop.create_connection(Endpoint, target.host, target.port), target.connect_timeout
        )
    except (OSError, TimeoutError) as exc:
        raise UpstreamError(f"cannot reach upstream {target.host}:{target.port}: {exc}") from None
    try:
        async with asyncio.timeout(target.connect_timeout):
            await _negotiate_tls(endpoint, target)
            startup = StartupMessage(
                PROTOCOL_3_0, {"user": target.user, "database": target.database, **parameters}
            )
            endpoint.write(startup.encode())
            decoder = MessageDecoder("backend", max_message_size)
            await _authenticate(endpoint, decoder, target, password)
            link = UpstreamLink(endpoint, target, 0, b"")
            while True:
                message = await _next_message(endpoint, decoder)
                if isinstance(message, ParameterStatus):
                    link.parameters[message.name] = message.value
                elif isinstance(message, BackendKeyData):
                    link.backend_pid, link.backend_secret = message.pid, message.secret
                elif isinstance(message, NoticeResponse):
                    link.notices.append(message)
                elif isinstance(message, ErrorResponse):
                    raise UpstreamError(
                        f"upstream refused the session: {message.message}", server_error=message
                    )
                elif isinstance(message, ReadyForQuery):
                    link.transaction_status = message.status
                    break
                else:
                    raise UpstreamError(
                        f"unexpected {type(message).__name__} while starting the upstream session"
                    )
            link.pending = decoder.framer.take_raw() + endpoint.unread()
            return link
    except UpstreamError:
        endpoint.abort()
        raise
    except (PeerClosed, ConnectionError, OSError) as exc:
        endpoint.abort()
        raise UpstreamError(f"upstream closed the connection during login: {exc}") from None
    except TimeoutError:
        endpoint.abort()
        raise UpstreamError("upstream login timed out") from None
    except ProtocolError as exc:
        endpoint.abort()
        raise UpstreamError(f"upstream protocol error during login: {exc}") from None


async def run_query(link: UpstreamLink, sql: str, *, max_message_size: int) -> list[tuple[str | None, ...]]:
    """Run one query on an idle upstream link before relaying starts (the gateway's own bookkeeping)."""
    from proxy.postgres.messages import DataRow, Query

    decoder = MessageDecoder("backend", max_message_size)
    decoder.feed(link.pending)
    link.pending = b""
    link.endpoint.write(Query(sql).encode())
    rows: list[tuple[str | None, ...]] = []
    failure: str | None = None
    while True:
        message = await _next_message(link.endpoint, decoder)
        if isinstance(message, DataRow):
            rows.append(tuple(None if v is None else v.decode("utf-8", "replace") for v in message.values))
        elif isinstance(message, ErrorResponse):
            failure = message.message
        elif isinstance(message, ReadyForQuery):
            link.transaction_status = message.status
            break
    link.pending = decoder.framer.take_raw() + link.endpoint.unread()
    if failure is not None:
        raise UpstreamError(f"gateway query failed upstream: {failure}")
    return rows


async def send_cancel(target: UpstreamTarget, pid: int, secret: bytes) -> None:
    """Ask the upstream to cancel the running query of backend `pid` (a fresh, short-lived connection)."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(CancelRequest(pid, secret).encode())
            await writer.drain()
            await reader.read(1)  # the server closes the connection when done
            writer.close()
    except (OSError, TimeoutError):
        pass  # cancellation is best effort, exactly as in libpq
