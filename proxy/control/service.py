"""Every control operation for a verified caller: sign-in, role checks, request fields, and the op table.

The socket server and the in-process `LocalControl` both call this object, so embedded and remote callers
are checked and answered identically. Roles are recomputed from the running config on every request (a
SIGHUP reload changes them), and a token that has expired is refused even on an open connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from proxy.approvals import ApprovalRefused
from proxy.control.errors import ControlError
from proxy.control.grant_requests import add_grant, list_grants, revoke_grant
from proxy.control.kill import kill_session
from proxy.control.params import Params
from proxy.control.roles import ADMIN, ANY_ROLE, APPROVER, AUDITOR, require, roles_for
from proxy.control.session_events import open_session_events
from proxy.control.streams import Watch, list_sessions, watch_approvals, watch_sessions
from proxy.control.viewer_masking import EventMasker, masked_watch, viewer_entities
from proxy.control.views import approval_view
from proxy.identity.model import PUBLIC_REJECTION_MESSAGE, Identity, TokenRejected
from proxy.store.base import APPROVAL_STATES, StoreError

if TYPE_CHECKING:
    from proxy.gateway import Gateway

log = logging.getLogger("hoop.control")

NO_ROLE_MESSAGE = "this token's groups hold no control role (approver, auditor or admin)"
MAX_TOKEN_LENGTH = 16 * 1024

Handler = Callable[[Identity, frozenset[str], Params], Awaitable[Any]]
StreamOpener = Callable[[Identity, frozenset[str], Params], Awaitable[Watch]]


class ControlService:
    """The control operations of one gateway process; methods take the caller's verified Identity."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._requests: dict[str, Handler] = {
            "whoami": self._whoami,
            "sessions.list": self._sessions_list,
            "sessions.kill": self._sessions_kill,
            "approvals.list": self._approvals_list,
            "approvals.decide": self._approvals_decide,
            "grants.add": self._grants_add,
            "grants.list": self._grants_list,
            "grants.revoke": self._grants_revoke,
        }
        self._streams: dict[str, StreamOpener] = {
            "sessions.watch": self._sessions_watch,
            "session.events": self._session_events,
            "approvals.watch": self._approvals_watch,
        }

    # -- who is calling -------------------------------------------------------------------------------------

    async def authenticate(self, token: object) -> Identity:
        """The token's identity, if it is valid and holds a control role; else ControlError."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise ControlError(PUBLIC_REJECTION_MESSAGE)
        try:
            identity = await self.gateway.verifier.verify(token)
        except TokenRejected as rejected:
            log.info("control API: token rejected (%s)", rejected.detail)
            raise ControlError(rejected.public_message) from None
        if self.deadline(identity) <= time.time():
            # Within the verifier's clock leeway, but already past the point where its connection would end.
            raise ControlError(PUBLIC_REJECTION_MESSAGE)
        if not self.roles(identity):
            log.info("control API: %s holds no control role", identity.subject)
            raise ControlError(NO_ROLE_MESSAGE)
        return identity

    def deadline(self, identity: Identity) -> float:
        """When a caller's token stops working here: its expiry plus the grace agent sessions get too."""
        return identity.expires_at + self.gateway.config.identity.expiry_grace_seconds

    def roles(self, identity: Identity) -> frozenset[str]:
        return roles_for(identity.groups, self.gateway.config)

    def _current_roles(self, identity: Identity) -> frozenset[str]:
        if self.deadline(identity) <= time.time():
            raise ControlError("your token expired; sign in again")
        roles = self.roles(identity)
        if not roles:
            raise ControlError(NO_ROLE_MESSAGE)
        return roles

    def whoami(self, identity: Identity) -> dict[str, Any]:
        return {
            "subject": identity.subject,
            "groups": list(identity.groups),
            "roles": sorted(self.roles(identity)),
            "expires_at": identity.expires_at,
            "gateway": self.gateway.settings.gateway_id,
            "instance": self.gateway.instance_id,
            # What this viewer sees masked beyond the recordings, for consoles reading recording files
            # themselves; session events from this API come masked already.
            "render_mask": sorted(self.render_mask(self.roles(identity))),
        }

    def render_mask(self, roles: frozenset[str]) -> frozenset[str]:
        return viewer_entities(roles, self.gateway.settings.auditor_mask)

    # -- dispatch -------------------------------------------------------------------------------------------

    def is_stream(self, op: str) -> bool:
        return op in self._streams

    def knows(self, op: str) -> bool:
        return op in self._requests or op in self._streams

    async def request(self, identity: Identity, op: str, fields: Mapping[str, Any]) -> Any:
        handler = self._requests.get(op)
        if handler is None:
            raise ControlError(self._unknown(op))
        return await handler(identity, self._current_roles(identity), Params(op, fields))

    async def open_stream(self, identity: Identity, op: str, fields: Mapping[str, Any]) -> Watch:
        opener = self._streams.get(op)
        if opener is None:
            raise ControlError(self._unknown(op))
        return await opener(identity, self._current_roles(identity), Params(op, fields))

    def _unknown(self, op: str) -> str:
        if self.is_stream(op):
            return f"{op} is a stream; open it as one"
        return f"unknown operation {op!r}; known: {', '.join(sorted({*self._requests, *self._streams}))}"

    # -- operations -----------------------------------------------------------------------------------------

    async def _whoami(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        params.done()
        return self.whoami(identity)

    async def _sessions_list(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        include_ended = params.flag("all", False)
        limit = params.integer("limit", 500, low=1, high=10_000)
        params.done()
        require(roles, ANY_ROLE, "listing sessions")
        return await list_sessions(self.gateway, include_ended=include_ended, limit=limit)

    async def _sessions_watch(self, identity: Identity, roles: frozenset[str], params: Params) -> Watch:
        interval = params.number("interval", 2.0, low=0.2, high=300.0)
        params.done()
        require(roles, ANY_ROLE, "watching sessions")
        return await watch_sessions(self.gateway, interval)

    async def _session_events(self, identity: Identity, roles: frozenset[str], params: Params) -> Watch:
        session_id = params.text("session", max_length=64)
        follow = params.flag("follow", True)
        params.done()
        require(roles, frozenset({AUDITOR, ADMIN}), "reading a session's events")
        watch = await open_session_events(self.gateway, session_id, follow=follow)
        masker = EventMasker.for_entities(self.render_mask(roles))
        return watch if masker is None else masked_watch(watch, masker)

    async def _sessions_kill(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        session_id = params.text("session", max_length=64)
        reason = params.text("reason", max_length=500)
        params.done()
        require(roles, frozenset({ADMIN}), "killing a session")
        return await kill_session(self.gateway, identity, session_id, reason)

    async def _approvals_list(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        states = params.text_list("states", ["pending"])
        limit = params.integer("limit", 200, low=1, high=5000)
        params.done()
        require(roles, ANY_ROLE, "listing approval requests")
        unknown = sorted(set(states) - APPROVAL_STATES)
        if unknown:
            raise ControlError(
                f"unknown state(s) {', '.join(unknown)}; use {', '.join(sorted(APPROVAL_STATES))}"
            )
        try:
            records = await self.gateway.store.list_approvals(states=states, limit=limit)
        except StoreError as error:
            raise ControlError(f"cannot read approval requests: {error}") from None
        return [approval_view(record) for record in records]

    async def _approvals_watch(self, identity: Identity, roles: frozenset[str], params: Params) -> Watch:
        params.done()
        require(roles, ANY_ROLE, "watching approval requests")
        return await watch_approvals(self.gateway)

    async def _approvals_decide(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        request_id = params.text("request", max_length=200)
        approve = params.flag("approve")
        reason = params.text("reason", None, max_length=1000)
        params.done()
        # Whether this caller may decide this request (approver of its policy, not its requester) is the
        # approvals service's rule, the same for every way in.
        try:
            record = await self.gateway.approvals.decide(
                request_id, identity, approve=approve, justification=reason
            )
        except ApprovalRefused as refused:
            raise ControlError(str(refused)) from None
        except StoreError as error:
            raise ControlError(f"cannot record the decision: {error}") from None
        return approval_view(record)

    async def _grants_add(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        group = params.text("group", max_length=200)
        connection = params.text("connection", max_length=200)
        allow = params.text_list("allow")
        duration = params.number("duration", low=0.0, high=float("inf"))
        params.done()
        require(roles, frozenset({APPROVER, ADMIN}), "granting access")
        return await add_grant(
            self.gateway,
            identity,
            roles,
            group=group,
            connection=connection,
            allow=allow,
            duration_seconds=duration,
        )

    async def _grants_list(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        params.done()
        require(roles, ANY_ROLE, "listing grants")
        return await list_grants(self.gateway)

    async def _grants_revoke(self, identity: Identity, roles: frozenset[str], params: Params) -> Any:
        grant_id = params.text("grant", max_length=200)
        params.done()
        require(roles, frozenset({APPROVER, ADMIN}), "revoking a grant")
        return await revoke_grant(self.gateway, identity, grant_id)
