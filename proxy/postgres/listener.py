"""The Postgres listener: accepts agents, runs the startup/TLS/auth handshake, then hands off to the relay."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.approvals import HoldOutcome
from proxy.gateway_queries import WRITE_FUNCTIONS_SQL
from proxy.identity.model import TokenRejected
from proxy.postgres.catalog_watch import verify_catalog
from proxy.postgres.endpoint import Endpoint, PeerClosed
from proxy.postgres.enforcement import StatementGate, Verdict
from proxy.postgres.framing import (
    CancelRequest,
    GSSENCRequest,
    MessageDecoder,
    SSLRequest,
    StartupDecoder,
    StartupMessage,
)
from proxy.postgres.messages import (
    Authentication,
    BackendKeyData,
    NegotiateProtocolVersion,
    ParameterStatus,
    PasswordMessage,
    ReadyForQuery,
    error_response,
)
from proxy.postgres.protocol import (
    AUTH_CLEARTEXT,
    AUTH_OK,
    SQLSTATE_CONNECTION_FAILURE,
    SQLSTATE_FEATURE_NOT_SUPPORTED,
    SQLSTATE_INVALID_AUTHORIZATION,
    SQLSTATE_INVALID_CATALOG,
    SQLSTATE_INVALID_PASSWORD,
    SQLSTATE_PROTOCOL_VIOLATION,
    ProtocolError,
)
from proxy.postgres.relay import PgRelay
from proxy.postgres.upstream import UpstreamError, UpstreamTarget, connect_upstream, run_query, send_cancel
from proxy.sessions import Session, new_session_id

if TYPE_CHECKING:
    from proxy.gateway import Gateway

log = logging.getLogger("hoop.postgres")

HANDSHAKE_TIMEOUT = 60.0
# Startup parameters passed on to the upstream. Everything else (notably `options`, `role`,
# `default_transaction_read_only`, `replication`, `search_path`) is dropped: it could widen what the session
# may do without ever being classified (a SET after login goes through the classifier instead).
# `client_encoding` above all: the classifier reads SQL as UTF-8, so a multibyte encoding such as SJIS or
# GBK, whose second bytes can be a backslash or quote, would let one string mean different statements to
# the classifier and to the server. Sessions stay UTF-8; a client asking for another encoding is refused.
FORWARDED_PARAMETERS = frozenset(
    {
        "application_name",
        "datestyle",
        "timezone",
        "intervalstyle",
        "extra_float_digits",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    }
)


class HandshakeRefused(Exception):
    """Ends a handshake with one FATAL error to the client."""

    def __init__(self, message: str, code: str, log_detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.log_detail = log_detail


@dataclass(slots=True)
class CancelEntry:
    secret: bytes
    target: UpstreamTarget
    upstream_pid: int
    upstream_secret: bytes
    relay: PgRelay | None = None  # a held statement is cancelled here, not upstream


class CancelKeys:
    """Gateway-issued cancel keys → the upstream key of the same session."""

    def __init__(self) -> None:
        self._entries: dict[int, CancelEntry] = {}

    def add(
        self, secret_length: int, target: UpstreamTarget, upstream_pid: int, upstream_secret: bytes
    ) -> tuple[int, bytes]:
        while True:
            pid = secrets.randbelow(2**31 - 2) + 1
            if pid not in self._entries:
                break
        secret = secrets.token_bytes(secret_length)
        self._entries[pid] = CancelEntry(secret, target, upstream_pid, upstream_secret)
        return pid, secret

    def get(self, pid: int) -> CancelEntry | None:
        return self._entries.get(pid)

    def remove(self, pid: int) -> None:
        self._entries.pop(pid, None)

    def lookup(self, pid: int, secret: bytes) -> CancelEntry | None:
        entry = self._entries.get(pid)
        if entry is None or not secrets.compare_digest(entry.secret, secret):
            return None
        return entry


class _ClientEndpoint(Endpoint):
    """An accepted agent socket; starts its handshake task as soon as it connects."""

    __slots__ = ("_listener",)

    def __init__(self, listener: PostgresListener) -> None:
        super().__init__()
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._listener.spawn(self)


class PostgresListener:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.cancel_keys = CancelKeys()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._relays: set[PgRelay] = set()
        self.require_tls = False

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        settings = self.gateway.settings
        self.require_tls = settings.requires_tls(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self._server = await loop.create_server(
            lambda: _ClientEndpoint(self),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        sock = self._server.sockets[0]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        bound = sock.getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in list(self._relays):
            relay.terminate("hoop: the gateway is shutting down", "57P01")
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def spawn(self, endpoint: _ClientEndpoint) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(endpoint))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- handshake

    async def _handle(self, client: Endpoint) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                startup, leftover = await self._read_startup(client)
                if startup is None:
                    return
                relay_setup = await self._establish(client, startup, leftover)
        except HandshakeRefused as refused:
            if refused.log_detail:
                log.info("refused %s: %s", client.peername(), refused.log_detail)
            client.write(error_response(str(refused), refused.code, "FATAL").encode())
            client.close()
            return
        except ProtocolError as exc:
            log.info("protocol error from %s during startup: %s", client.peername(), exc)
            client.write(
                error_response(f"protocol violation: {exc}", SQLSTATE_PROTOCOL_VIOLATION, "FATAL").encode()
            )
            client.close()
            return
        except (PeerClosed, ConnectionError, TimeoutError, OSError) as exc:
            log.debug("handshake with %s ended: %s", client.peername(), exc)
            client.abort()
            return
        except Exception:
            log.exception("internal error during handshake with %s", client.peername())
            client.write(error_response("internal gateway error", "XX000", "FATAL").encode())
            client.close()
            return
        relay_setup()

    async def _read_startup(self, client: Endpoint) -> tuple[StartupMessage | None, bytes]:
        decoder = StartupDecoder()
        encrypted = False
        while True:
            packet = decoder.next_packet()
            if packet is None:
                decoder.feed(await client.receive())
                continue
            if isinstance(packet, SSLRequest):
                if encrypted:
                    raise ProtocolError("SSLRequest inside an encrypted connection")
                if decoder.take_raw():
                    # Plaintext piggybacked on an SSLRequest could be injected into the TLS session.
                    raise ProtocolError("unencrypted data after SSLRequest")
                client.write(b"S")
                await client.start_tls(self.gateway.tls_context(), server_side=True)
                encrypted = True
            elif isinstance(packet, GSSENCRequest):
                client.write(b"N")
            elif isinstance(packet, CancelRequest):
                await self._cancel(packet)
                client.close()
                return None, b""
            else:
                return packet, decoder.take_raw()

    async def _cancel(self, request: CancelRequest) -> None:
        if not await self.cancel_local(request):
            # Another worker process may own the key; it is routed there (or silently ignored, as PG does).
            await self.gateway.route_cancel(request)

    async def cancel_local(self, request: CancelRequest) -> bool:
        entry = self.cancel_keys.lookup(request.pid, request.secret)
        if entry is None:
            return False
        if entry.relay is not None and entry.relay.cancel_hold():
            return True
        await send_cancel(entry.target, entry.upstream_pid, entry.upstream_secret)
        return True

    async def _establish(self, client: Endpoint, startup: StartupMessage, leftover: bytes) -> Any:
        params = startup.parameters
        if "replication" in params and params["replication"].lower() not in ("false", "off", "no", "0"):
            raise HandshakeRefused(
                "replication connections are not supported by the gateway", SQLSTATE_FEATURE_NOT_SUPPORTED
            )
        minor = startup.minor
        protocol_options = [key for key in params if key.startswith("_pq_.")]
        negotiated_minor = 2 if minor >= 2 else 0
        if minor != negotiated_minor or protocol_options:
            client.write(NegotiateProtocolVersion(negotiated_minor, tuple(protocol_options)).encode())
        if self.require_tls and not client.is_tls:
            raise HandshakeRefused(
                "the gateway requires TLS on this listener (use sslmode=require)",
                SQLSTATE_INVALID_AUTHORIZATION,
            )
        # asyncpg sends 'utf-8' with the quotes; PostgreSQL accepts any spelling of the name.
        encoding = (
            params.get("client_encoding", "UTF8")
            .strip()
            .strip("'\"")
            .replace("-", "")
            .replace("_", "")
            .upper()
        )
        if encoding not in ("UTF8", "UNICODE"):
            raise HandshakeRefused(
                f'the gateway only relays UTF8 sessions (client_encoding "{params.get("client_encoding")}")',
                SQLSTATE_FEATURE_NOT_SUPPORTED,
            )
        client_user = params.get("user", "")
        connection_name = params.get("database") or client_user

        client.write(Authentication(AUTH_CLEARTEXT).encode())
        decoder = MessageDecoder("frontend", self.gateway.settings.max_message_size)
        decoder.feed(leftover)
        message = decoder.next_message()
        while message is None:
            decoder.feed(await client.receive())
            message = decoder.next_message()
        if not isinstance(message, PasswordMessage):
            raise ProtocolError("expected a password message")
        try:
            token = message.password()
        except ProtocolError:
            token = ""
        try:
            identity = await self.gateway.verifier.verify(token)
        except TokenRejected as rejected:
            raise HandshakeRefused(
                f'password authentication failed for user "{client_user}"',
                SQLSTATE_INVALID_PASSWORD,
                log_detail=f"token rejected: {rejected.detail}",
            ) from None

        connection = self.gateway.postgres_connection(connection_name)
        if connection is None:
            raise HandshakeRefused(
                f'connection "{connection_name}" is not configured on this gateway', SQLSTATE_INVALID_CATALOG
            )
        session_policy = self.gateway.policy_for(identity, connection_name)
        if session_policy is None:
            raise HandshakeRefused(
                f'no policy allows "{identity.subject}" (groups: {", ".join(identity.groups) or "none"}) '
                f'to use connection "{connection_name}"',
                SQLSTATE_INVALID_AUTHORIZATION,
            )
        try:
            password = connection.read_password()
        except Exception as exc:
            raise HandshakeRefused(
                f'the gateway has no usable credential for connection "{connection_name}"',
                SQLSTATE_CONNECTION_FAILURE,
                log_detail=str(exc),
            ) from None
        target = self.gateway.upstream_target(connection)
        forwarded = {k: v for k, v in params.items() if k.lower() in FORWARDED_PARAMETERS}
        forwarded.setdefault("application_name", f"hoop-tui/{identity.subject}"[:63])
        if not session_policy.allows_writes:
            # The second wall: even a statement the classifier misjudged cannot write.
            forwarded["default_transaction_read_only"] = "on"
        classifier, refresh_functions = self.gateway.classifier_for(connection_name)
        max_size = self.gateway.settings.max_message_size
        try:
            link = await connect_upstream(target, password, forwarded, max_message_size=max_size)
            if refresh_functions:
                rows = await run_query(link, WRITE_FUNCTIONS_SQL, max_message_size=max_size)
                self.gateway.set_write_functions(connection_name, rows)
            tables = self.gateway.table_names_for(connection_name) if session_policy.mask_columns else None
            if tables is not None:
                await verify_catalog(link, tables, max_message_size=max_size)
                watch_parameters = {"application_name": "hoop-tui catalog check"[:63]}
                watch_parameters["default_transaction_read_only"] = "on"
                self.gateway.watch_catalog(
                    connection_name,
                    tables,
                    lambda: connect_upstream(target, password, watch_parameters, max_message_size=max_size),
                )
        except UpstreamError as exc:
            raise HandshakeRefused(
                f'the upstream of connection "{connection_name}" is unavailable',
                SQLSTATE_CONNECTION_FAILURE,
                log_detail=f"{connection_name}: {exc}",
            ) from None

        secret_length = 32 if negotiated_minor >= 2 else 4
        pid, secret = self.cancel_keys.add(secret_length, target, link.backend_pid, link.backend_secret)
        greeting = [Authentication(AUTH_OK).encode()]
        greeting += [ParameterStatus(k, v).encode() for k, v in link.parameters.items()]
        greeting += [notice.encode() for notice in link.notices]
        greeting.append(BackendKeyData(pid, secret).encode())
        greeting.append(ReadyForQuery(link.transaction_status).encode())
        pending_client = decoder.framer.take_raw() + client.unread()

        session = Session(
            id=new_session_id(),
            protocol="postgres",
            connection=connection_name,
            identity=identity,
            client_address=client.peername(),
            client_user=client_user,
        )
        started_ns = time.monotonic_ns()
        try:
            recorder = self.gateway.open_recorder(session, started_ns)
        except Exception as error:
            link.endpoint.abort()
            self.cancel_keys.remove(pid)
            raise HandshakeRefused(
                "the gateway cannot record this session, so it is refused (strict mode)",
                SQLSTATE_CONNECTION_FAILURE,
                log_detail=f"recorder: {error}",
            ) from None

        def record_event(kind: str, details: dict[str, Any]) -> None:
            if recorder is not None:
                recorder.append([recorder.now_us(), kind, details])

        async def hold(request_id: str, verdict: Verdict, sql: str) -> HoldOutcome:
            decision = verdict.decision
            assert decision is not None
            return await self.gateway.approvals.hold(
                session,
                request_id,
                statement=sql,
                kind=verdict.kind,
                rule=verdict.rule,
                reason="; ".join(dict.fromkeys(s.reason for s in verdict.statements if s.reason)),
                approvers=decision.approvers,
                timeout_seconds=decision.review_timeout_seconds,
                record=record_event,
            )

        def setup() -> None:
            def closed(reason: str) -> None:
                self._relays.discard(relay)
                self.cancel_keys.remove(pid)
                if expiry is not None:
                    expiry.cancel()
                self.gateway.session_ended(session, reason, recorder)

            relay = PgRelay(
                client,
                link.endpoint,
                max_message_size=self.gateway.settings.max_message_size,
                record=None,
                record_many=recorder.append_many if recorder is not None else None,
                on_close=closed,
                started_ns=started_ns,
                gate=StatementGate(session_policy, classifier),
                audit=lambda record: self.gateway.audit(session, record),
                hold=hold,
                masking=self.gateway.masking_for(session_policy, tables),
            )
            cancel_entry = self.cancel_keys.get(pid)
            if cancel_entry is not None:
                cancel_entry.relay = relay
            relay.transaction_status = link.transaction_status
            session.counters = relay.counters
            session.terminate = relay.terminate
            self._relays.add(relay)
            self.gateway.session_started(session)
            expiry = self.gateway.schedule_expiry(session)
            client.transport.writelines(greeting)  # type: ignore[union-attr]
            relay.start(server_pending=link.pending)
            if pending_client:
                relay.from_client(pending_client)

        return setup
