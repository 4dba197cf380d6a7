"""The gateway process: owns config, identity, policy, listeners, live sessions and their recorders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.approvals import Approvals
from proxy.audit import AuditLog
from proxy.config import Config, ConnectionSettings, PostgresUpstream, split_host_port
from proxy.control.grant_cache import GrantCache
from proxy.control.grant_policy import GrantedPolicy
from proxy.control.server import ControlServer
from proxy.control.service import ControlService
from proxy.gateway_queries import WRITE_FUNCTIONS_TTL
from proxy.identity.model import Identity
from proxy.identity.verifier import IssuerConfig, TokenVerifier
from proxy.masking.columns import ColumnRules
from proxy.masking.masker import Masker
from proxy.masking.table_names import TableNames
from proxy.policy.classify import SqlClassifier
from proxy.policy.engine import PolicyEngine, SessionPolicy
from proxy.postgres.catalog_watch import CatalogWatch
from proxy.postgres.framing import CancelRequest
from proxy.postgres.listener import PostgresListener
from proxy.postgres.session_masking import SessionMasking, load_or_create_mask_secret
from proxy.postgres.upstream import UpstreamLink, UpstreamTarget
from proxy.recorder import SessionRecorder, open_session_recorder
from proxy.sessions import Session, SessionRegistry
from proxy.shared_audit import SharedAudit
from proxy.store.base import SessionIndexRecord, Store
from proxy.store.factory import open_store
from proxy.tls import ensure_listener_certificate, server_context
from proxy.worker_ipc import CancelRouter

if TYPE_CHECKING:
    from proxy.ssh.server import SshListener

log = logging.getLogger("hoop.gateway")


class RecordingUnavailable(Exception):
    """The session's recording could not be started; in strict mode the session is refused."""


class Gateway:
    """One gateway process. Embedded (TUI, tests, demo) or headless (`hoop-tui serve`)."""

    def __init__(self, config: Config, *, worker_index: int = 0, reuse_port: bool = False) -> None:
        self.config = config
        self.settings = config.gateway
        self.worker_index = worker_index
        self.reuse_port = reuse_port
        self.sessions = SessionRegistry()
        self.verifier = self._make_verifier(config)
        self.policies = PolicyEngine(config.policies)
        self.postgres: PostgresListener | None = None
        self.postgres_address: tuple[str, int] | None = None
        self.ssh: SshListener | None = None
        self.ssh_address: tuple[str, int] | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._cancel_router: CancelRouter | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self._classifiers: dict[str, tuple[SqlClassifier, float]] = {}
        self._maskers: dict[int, tuple[SessionPolicy, Masker, ColumnRules | None]] = {}
        self._table_names: dict[str, TableNames] = {}
        self._catalog_watches: dict[str, CatalogWatch] = {}
        self._mask_secret: bytes | None = None
        # Approval requests are owned per process: a restarted worker cancels what it held before.
        self.instance_id = f"{self.settings.gateway_id}/{worker_index}"
        self.store: Store = open_store(self.settings.store, self.settings.state_dir, self.instance_id)
        self.approvals = Approvals(self.store, self.instance_id, self.audit)
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # Control API (worker 0 listens; LocalControl calls the service in-process) and just-in-time grants.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.grants = GrantCache(
            self.store, lambda record: self.audit(None, record), audit_expiry=worker_index == 0
        )
        self.control_service = ControlService(self)
        self.control: ControlServer | None = None
        self._recorders: dict[str, SessionRecorder] = {}
        self.shared_audit = SharedAudit(self.store, self.instance_id)
        self.audit_log = AuditLog(
            self.settings.state_dir / "audit",
            self.settings.gateway_id,
            durable=self.settings.recording_durability != "none",
        )

    @staticmethod
    def _make_verifier(config: Config) -> TokenVerifier:
        return TokenVerifier(
            [
                IssuerConfig(
                    issuer=i.issuer,
                    audience=i.audience,
                    groups_claim=i.groups_claim,
                    ca_file=str(i.ca_file) if i.ca_file else None,
                )
                for i in config.identity.issuers
            ],
            state_dir=config.gateway.state_dir,
            leeway_seconds=config.identity.leeway_seconds,
        )

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.audit_log.start()
        await self.store.open()
        self.shared_audit.start()
        stale = await self.store.cancel_pending_of_gateway(self.instance_id, time.time())
        for request in stale:
            log.warning(
                "approval request %s was held by a previous run of this gateway: cancelled", request.id
            )
            self.audit(None, {"action": "approval.cancelled_at_restart", "id": request.id})
        self.loop = asyncio.get_running_loop()
        await self.grants.start()
        if self.worker_index == 0:
            self.control = ControlServer(self, self.control_service)
            await self.control.start()
        if self.settings.ssh_listen:
            from proxy.ssh.server import (
                SshListener,  # asyncssh is only loaded by gateways that listen for SSH
            )

            host, port = split_host_port(self.settings.ssh_listen)
            self.ssh = SshListener(self)
            self.ssh_address = await self.ssh.start(host, port, reuse_port=self.reuse_port)
            log.info("ssh listener on %s:%d", *self.ssh_address)
        if self.settings.postgres_listen:
            host, port = split_host_port(self.settings.postgres_listen)
            self.postgres = PostgresListener(self)
            self.postgres_address = await self.postgres.start(host, port, reuse_port=self.reuse_port)
            log.info("postgres listener on %s:%d", *self.postgres_address)
        self._in_background(self._watch_recorders(), "recorder watch")
        if self.reuse_port:
            self._cancel_router = CancelRouter(
                self.settings.state_dir / "run", self._cancel_from_peer, on_kill=self.kill_local
            )
            await self._cancel_router.start()

    async def _watch_recorders(self, interval: float = 0.5) -> None:
        """A session whose recording fails is ended in strict mode (fail closed); logged otherwise."""
        warned: set[str] = set()
        while not self._stopping:
            for session in self.sessions.list():
                recorder = self._recorders.get(session.id)
                if recorder is None or recorder.error is None or session.id in warned:
                    continue
                warned.add(session.id)
                log.error("recording of session %s failed: %s", session.id, recorder.error)
                self.audit(session, {"action": "recording.failed", "error": str(recorder.error)})
                if self.settings.strict and session.terminate is not None:
                    message = "hoop: the session's recording failed, so the session is ended"
                    session.terminate(message, "58030")  # io_error
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        self._stopping = True
        for watch in self._catalog_watches.values():
            watch.cancel()
        if self.control is not None:
            await self.control.stop()
        if self.postgres is not None:
            await self.postgres.stop()
        if self.ssh is not None:
            await self.ssh.stop()
        if self._cancel_router is not None:
            await self._cancel_router.stop()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.grants.stop()
        await self.shared_audit.stop()
        await self.store.close()
        await asyncio.to_thread(self.audit_log.close)

    def reload(self, config: Config) -> None:
        """Apply a new config (SIGHUP).

        Live sessions keep the policy they started with; new sessions get the new identity, connection and
        policy settings. Listen addresses and the state dir need a restart.
        """
        if (config.gateway.postgres_listen, config.gateway.ssh_listen, config.gateway.state_dir) != (
            self.settings.postgres_listen,
            self.settings.ssh_listen,
            self.settings.state_dir,
        ):
            log.warning("reload: listen addresses and state_dir changes take effect after a restart")
        verifier = self._make_verifier(config)
        self.config = config
        self.verifier = verifier
        self.policies = PolicyEngine(config.policies)
        self._classifiers.clear()
        self._maskers.clear()
        self._table_names.clear()  # a connection's upstream may have changed
        for watch in self._catalog_watches.values():
            watch.cancel()  # it logs in with the old settings; the next session starts a new one
        self._catalog_watches.clear()
        self.audit(None, {"action": "config.reload", "path": str(config.path)})
        log.info("configuration reloaded from %s", config.path)

    # ---------------------------------------------------------------- services for the listeners

    def tls_context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            hosts = ["localhost", "127.0.0.1"]
            if self.settings.postgres_listen:
                hosts.append(split_host_port(self.settings.postgres_listen)[0])
            if self.settings.control.startswith("tcp://"):
                hosts.append(split_host_port(self.settings.control.removeprefix("tcp://"))[0])
            cert, key = ensure_listener_certificate(
                self.settings.state_dir, self.settings.tls_cert, self.settings.tls_key, sorted(set(hosts))
            )
            self._tls_context = server_context(cert, key)
        return self._tls_context

    def postgres_connection(self, name: str) -> ConnectionSettings | None:
        connection = self.config.connections.get(name)
        if connection is None or connection.type != "postgres":
            return None
        return connection

    def ssh_connection(self, name: str) -> ConnectionSettings | None:
        connection = self.config.connections.get(name)
        if connection is None or connection.type != "ssh":
            return None
        return connection

    def policy_for(self, identity: Identity, connection: str) -> SessionPolicy | GrantedPolicy | None:
        base = self.policies.for_session(identity.groups, connection)
        if base is None:
            return None  # a grant widens a policy; it never admits a session on its own
        return GrantedPolicy(base, self.grants, identity.groups, connection)

    @staticmethod
    def upstream_target(connection: ConnectionSettings) -> UpstreamTarget:
        upstream = connection.upstream
        assert isinstance(upstream, PostgresUpstream)
        return UpstreamTarget(
            host=upstream.host,
            port=upstream.port,
            user=upstream.user,
            database=upstream.database,
            sslmode=upstream.sslmode,
            sslrootcert=upstream.sslrootcert,
        )

    def watch_catalog(
        self, connection: str, tables: TableNames, connect: Callable[[], Awaitable[UpstreamLink]]
    ) -> None:
        """Keep `connection`'s catalog verified while it has sessions (see postgres/catalog_watch.py)."""
        watch = self._catalog_watches.get(connection)
        if watch is None:
            watch = CatalogWatch(
                connection,
                tables,
                connect,
                lambda: any(s.connection == connection for s in self.sessions.list()),
                max_message_size=self.settings.max_message_size,
            )
            self._catalog_watches[connection] = watch
        watch.ensure_running()

    def table_names_for(self, connection: str) -> TableNames:
        """The connection's catalog of table names (shared by its sessions; see masking/table_names.py)."""
        tables = self._table_names.get(connection)
        if tables is None:
            tables = self._table_names[connection] = TableNames()
        return tables

    def masking_for(
        self, policy: SessionPolicy | GrantedPolicy, tables: TableNames | None = None
    ) -> SessionMasking | None:
        """A session's masking state; the (costly) Masker is shared by sessions with the same policies."""
        if isinstance(policy, GrantedPolicy):
            # Keyed by the engine's cached policy: each session has its own GrantedPolicy, and grants never
            # change masking. (Keyed by the wrapper, every session built a Masker and kept it for good.)
            policy = policy.base
        if not policy.mask_entities and not policy.mask_columns:
            return None
        shared = self._maskers.get(id(policy))
        if shared is None or shared[0] is not policy:
            if self._mask_secret is None:
                self._mask_secret = load_or_create_mask_secret(self.settings.state_dir)
            template = SessionMasking.for_policy(policy, self._mask_secret)
            assert template is not None
            shared = (policy, template.masker, template.column_rules)
            self._maskers[id(policy)] = shared
        return SessionMasking(shared[1], shared[2], tables)

    def classifier_for(self, connection: str) -> tuple[SqlClassifier, bool]:
        """The connection's classifier, and whether its write-function list is due for a refresh."""
        entry = self._classifiers.get(connection)
        if entry is None:
            classifier = SqlClassifier()
            self._classifiers[connection] = (classifier, 0.0)
            return classifier, True
        classifier, loaded_at = entry
        return classifier, time.monotonic() - loaded_at > WRITE_FUNCTIONS_TTL

    def set_write_functions(self, connection: str, rows: list[tuple[str | None, ...]]) -> None:
        classifier, _ = self.classifier_for(connection)
        names = {f"{schema}.{name}".lower() for schema, name in rows if schema and name}
        names |= {name.lower() for _, name in rows if name}
        classifier.set_write_functions(names)
        self._classifiers[connection] = (classifier, time.monotonic())

    def audit(self, session: Session | None, record: dict[str, Any]) -> None:
        """Call on the gateway's event loop."""
        self.audit_log.append(record, session.audit_context if session is not None else None)
        self.shared_audit.append(session, record)

    def open_recorder(self, session: Session, started_ns: int) -> SessionRecorder | None:
        """The session's recorder. In strict mode a session that cannot be recorded is refused (raises)."""
        try:
            recorder = open_session_recorder(self, session, started_ns)
        except Exception as error:
            if self.settings.strict:
                raise RecordingUnavailable(str(error)) from error
            log.warning("session %s runs unrecorded (strict = false): %s", session.id, error)
            return None
        session.recording_path = str(recorder.path)
        self._recorders[session.id] = recorder
        return recorder

    def live_recorder(self, session_id: str) -> SessionRecorder | None:
        """The recorder of a session of this process, for the control API's live tail."""
        return self._recorders.get(session_id)

    def _in_background(self, coroutine: Any, what: str) -> None:
        async def run() -> None:
            try:
                await coroutine
            except Exception as error:
                log.error("%s failed: %s", what, error)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def session_started(self, session: Session) -> None:
        self.sessions.add(session)
        record = SessionIndexRecord(
            id=session.id,
            gateway_id=self.instance_id,
            protocol=session.protocol,
            connection=session.connection,
            identity=session.identity.subject,
            groups=tuple(session.identity.groups),
            client_address=session.client_address,
            started_at=session.started_at,
            ended_at=None,
            end_reason=None,
            recording_path=session.recording_path or None,
        )
        self._in_background(self.store.record_session_start(record), "sessions index")
        self.audit(
            session,
            {"action": "session.start", "protocol": session.protocol, "client": session.client_address},
        )
        log.info(
            "session %s started: %s (%s) → %s from %s",
            session.id,
            session.identity.subject,
            ",".join(session.identity.groups),
            session.connection,
            session.client_address,
        )

    def session_ended(self, session: Session, reason: str, recorder: SessionRecorder | None) -> None:
        self.sessions.end(session, reason)
        self.audit(session, {"action": "session.end", "reason": reason})
        self._in_background(self.store.record_session_end(session.id, time.time(), reason), "sessions index")
        log.info("session %s ended: %s", session.id, reason)
        self._recorders.pop(session.id, None)
        if recorder is not None:
            recorder.end_live(reason)
            # Sealing fsyncs: keep it off the event loop.
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(recorder.close, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def schedule_expiry(self, session: Session) -> asyncio.TimerHandle | None:
        """End the session when its token expires (plus the configured grace)."""
        deadline = session.identity.expires_at + self.config.identity.expiry_grace_seconds
        delay = max(0.0, deadline - time.time())

        def expire() -> None:
            if session.terminate is not None:
                session.terminate("hoop: the session's token expired; reconnect with a fresh token", "28000")

        return asyncio.get_running_loop().call_later(delay, expire)

    def kill_local(self, session_id: str, message: str) -> bool:
        """End a session of this process from outside (operator kill): FATAL `message` to its client."""
        session = self.sessions.get(session_id)
        if session is None or session.terminate is None:
            return False
        session.terminate(message, "57P01")  # admin_shutdown, as pg_terminate_backend reports
        return True

    async def route_kill(self, session_id: str, message: str) -> bool:
        """Ask the sibling workers to end a session one of them owns; False when there are none."""
        if self._cancel_router is None:
            return False
        await self._cancel_router.broadcast_kill(session_id, message)
        return True

    async def route_cancel(self, request: CancelRequest) -> None:
        if self._cancel_router is not None:
            await self._cancel_router.broadcast(request.encode())

    async def _cancel_from_peer(self, packet: bytes) -> None:
        from proxy.postgres.framing import decode_startup_packet

        with contextlib.suppress(Exception):
            request = decode_startup_packet(packet)
            if isinstance(request, CancelRequest) and self.postgres is not None:
                await self.postgres.cancel_local(request)

    def describe(self) -> dict[str, Any]:
        return {
            "gateway_id": self.settings.gateway_id,
            "pid": os.getpid(),
            "postgres": self.postgres_address,
            "ssh": self.ssh_address,
            "state_dir": str(Path(self.settings.state_dir)),
        }
