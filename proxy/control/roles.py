"""Control API roles from token groups: approver (a policy names the group), auditor and admin (config)."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.config import Config
from proxy.control.errors import ControlError

APPROVER = "approver"  # decides held statements; adds and revokes grants where it may approve
AUDITOR = "auditor"  # reads sessions and their recorded events
ADMIN = "admin"  # everything an auditor may, plus killing sessions and any grant

ANY_ROLE = frozenset({APPROVER, AUDITOR, ADMIN})


def approver_groups(config: Config) -> frozenset[str]:
    return frozenset(group for policy in config.policies for group in policy.approvers)


def roles_for(groups: Iterable[str], config: Config) -> frozenset[str]:
    """The roles a token with `groups` holds under `config` (empty: it may not use the control API)."""
    member_of = frozenset(groups)
    roles: set[str] = set()
    if member_of & approver_groups(config):
        roles.add(APPROVER)
    admin = member_of & frozenset(config.gateway.admin_groups)
    if admin:
        roles.add(ADMIN)
    if admin or member_of & frozenset(config.gateway.auditor_groups):
        roles.add(AUDITOR)
    return frozenset(roles)


def require(roles: frozenset[str], allowed: frozenset[str], action: str) -> None:
    """Refuse `action` unless the caller holds one of the `allowed` roles."""
    if roles.isdisjoint(allowed):
        needed = " or ".join(sorted(allowed))
        raise ControlError(f"{action} needs the {needed} role")
