"""Operators adding, listing and revoking just-in-time grants: who may grant what, and the audit trail.

Rules (see grant_policy for what a grant does to decisions):
- a grant names one group and one configured connection, kinds valid for that connection's protocol, and
  lasts from 1 second to MAX_GRANT_SECONDS;
- some policy must already admit the group on the connection (a grant widens, it never opens access), and
  no such policy may deny a granted entry (a grant never overrides a deny);
- nobody grants to a group they belong to (it would be approving their own statements in advance);
- an admin may grant anywhere; an approver only where a policy covering that group and connection names
  one of the approver's groups in `approvers`. Either may revoke any grant.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from proxy.config import SQL_KINDS, SSH_KINDS, Config, PolicySettings
from proxy.control.errors import ControlError
from proxy.control.roles import ADMIN
from proxy.control.views import grant_view
from proxy.durations import format_duration
from proxy.identity.model import Identity
from proxy.store.base import GrantRecord, RecordNotFound, StoreError

if TYPE_CHECKING:
    from proxy.gateway import Gateway

MIN_GRANT_SECONDS = 1.0
MAX_GRANT_SECONDS = 86400.0
_ENTRY = re.compile(r"([a-z_]+)(?::([a-z_]+))?")


def new_grant_id() -> str:
    return "g" + secrets.token_hex(5)


def _policies_for(config: Config, group: str, connection: str) -> list[PolicySettings]:
    return [
        policy
        for policy in config.policies
        if ("*" in policy.connections or connection in policy.connections)
        and ("*" in policy.groups or group in policy.groups)
    ]


def check_grant(
    config: Config, caller: Identity, roles: frozenset[str], group: str, connection: str, allow: Sequence[str]
) -> None:
    """Refuse (ControlError, one line) a grant the rules above do not permit."""
    if group == "*":
        raise ControlError("a grant names one group, not '*'")
    settings = config.connections.get(connection)
    if settings is None:
        raise ControlError(f"no connection named {connection!r} is configured")
    valid = SQL_KINDS if settings.type == "postgres" else SSH_KINDS
    for entry in allow:
        match = _ENTRY.fullmatch(entry)
        if match is None or match.group(1) not in valid:
            raise ControlError(
                f"{entry!r} is not a {settings.type} kind; use one of {', '.join(sorted(valid))} "
                "(optionally kind:flag)"
            )
    if group in caller.groups:
        raise ControlError(f"you cannot grant to {group}, a group you belong to")
    policies = _policies_for(config, group, connection)
    if not policies:
        raise ControlError(
            f"no policy admits {group} on {connection}; a grant only widens an existing policy"
        )
    denied = sorted({entry for entry in allow for policy in policies if entry in policy.deny})
    if denied:
        raise ControlError(
            f"policy denies {', '.join(denied)} for {group} on {connection}; a grant never overrides a deny"
        )
    if ADMIN not in roles and not any(set(policy.approvers) & set(caller.groups) for policy in policies):
        raise ControlError(
            f"only an admin, or an approver of a policy covering {group} on {connection}, may grant there"
        )


async def add_grant(
    gateway: Gateway,
    caller: Identity,
    roles: frozenset[str],
    *,
    group: str,
    connection: str,
    allow: Sequence[str],
    duration_seconds: float,
) -> dict[str, Any]:
    if not MIN_GRANT_SECONDS <= duration_seconds <= MAX_GRANT_SECONDS:
        raise ControlError(
            f"a grant lasts from {format_duration(MIN_GRANT_SECONDS)} to {format_duration(MAX_GRANT_SECONDS)}"
        )
    check_grant(gateway.config, caller, roles, group, connection, allow)
    now = time.time()
    record = GrantRecord(
        id=new_grant_id(),
        group=group,
        connection=connection,
        allow=tuple(allow),
        created_by=caller.subject,
        created_at=now,
        expires_at=now + duration_seconds,
    )
    try:
        await gateway.store.add_grant(record)
    except StoreError as error:
        raise ControlError(f"cannot store the grant: {error}") from None
    gateway.audit(
        None,
        {
            "action": "grant.add",
            "grant": record.id,
            "group": group,
            "connection": connection,
            "allow": list(record.allow),
            "by": caller.subject,
            "expires_at": record.expires_at,
        },
    )
    await gateway.grants.refresh()  # in force here at once; other instances within their refresh interval
    return grant_view(record)


async def list_grants(gateway: Gateway) -> list[dict[str, Any]]:
    try:
        records = await gateway.store.active_grants(time.time())
    except StoreError as error:
        raise ControlError(f"cannot read grants: {error}") from None
    return [grant_view(record) for record in records]


async def revoke_grant(gateway: Gateway, caller: Identity, grant_id: str) -> dict[str, Any]:
    now = time.time()
    try:
        record = await gateway.store.revoke_grant(grant_id, now)
    except RecordNotFound:
        raise ControlError(f"no grant {grant_id}") from None
    except (StoreError, ValueError) as error:
        raise ControlError(f"cannot revoke grant {grant_id}: {error}") from None
    if record.revoked_at == now:  # not an earlier revocation returned again
        gateway.audit(
            None,
            {
                "action": "grant.revoke",
                "grant": record.id,
                "group": record.group,
                "connection": record.connection,
                "by": caller.subject,
            },
        )
    await gateway.grants.refresh()
    return grant_view(record)
