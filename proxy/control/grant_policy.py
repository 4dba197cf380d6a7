"""Session policies widened by just-in-time grants: a grant turns review into allow, and never lifts a deny.

A grant names kinds ("write", "ddl", "write:no_where", "exec", ...). For a session of a member of the granted
group on the granted connection, each of those entries leaves every `review` list and joins every `allow`
list of the policies that apply, except a policy that denies it: deny stays deny (and the strictest
decision still wins across policies). A granted kind no list names, which would be reviewed by default, is
allowed. Granting "exec" (SSH) allows reviewed and unnamed commands; `deny_commands` still deny.

A grant never gives access on its own: a session that no policy admits is refused whatever the grants.
The policy object is live: the grant cache updates it when grants change, so a grant added, revoked or
expired applies to sessions already running from their next statement. Masking never changes with grants.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from proxy.control.grant_cache import GrantCache
from proxy.policy.engine import Decision, SessionPolicy
from proxy.store.base import GrantRecord

_NO_FLAGS: frozenset[str] = frozenset()
_MAX_RELABELLED = 4096


def widen(base: SessionPolicy, entries: frozenset[str]) -> SessionPolicy:
    """`base` with `entries` moved from review to allow in each of its policies that does not deny them."""
    matched = []
    for index, policy in zip(base.policy_indexes, base.policies, strict=True):
        granted = frozenset(entry for entry in entries if entry not in policy.deny)
        changes: dict[str, Any] = {"allow": policy.allow | granted, "review": policy.review - entries}
        if "exec" in granted:
            changes["allow_commands"] = (*policy.allow_commands, *policy.review_commands, "*")
            changes["review_commands"] = ()
        matched.append((index, replace(policy, **changes)))
    return SessionPolicy(matched)


def _until(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def grant_label(grants: Sequence[GrantRecord]) -> str:
    return "; ".join(
        f"grant {g.id} ({g.group} on {g.connection}, until {_until(g.expires_at)})" for g in grants
    )


class GrantedPolicy:
    """Stands in for a SessionPolicy: the session's base policy, widened by whatever grants are in force now.

    The grant cache tells it when grants change; until then `decide` is the base policy's own method (no
    cost per statement) or, while a grant applies, one that consults the widened policy. Decisions a grant
    changed carry a rule naming the grant, so the audit trail shows why they passed. Everything else
    (masking, the policies themselves) comes from the base policy.
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_cache",
        "_connection",
        "_current",
        "_grant_ids",
        "_groups",
        "_label",
        "_relabelled",
        "decide",
    )

    def __init__(
        self, base: SessionPolicy, cache: GrantCache, groups: Iterable[str], connection: str
    ) -> None:
        self._base = base
        self._cache = cache
        self._groups = tuple(groups)
        self._connection = connection
        self._current = base
        self._grant_ids: tuple[str, ...] = ()
        self._label = ""
        self._relabelled: dict[tuple[str, frozenset[str]], Decision] = {}
        self.decide: Callable[..., Decision] = base.decide
        cache.attach(self)
        self.grants_changed()

    @property
    def base(self) -> SessionPolicy:
        return self._base

    @property
    def grant_ids(self) -> tuple[str, ...]:
        """The grants widening this session right now."""
        return self._grant_ids

    def grants_changed(self) -> None:
        grants = self._cache.matching(self._groups, self._connection)
        grant_ids = tuple(grant.id for grant in grants)
        if grant_ids == self._grant_ids:
            return
        self._grant_ids = grant_ids
        self._relabelled = {}
        if not grants:
            self._current, self._label, self.decide = self._base, "", self._base.decide
            return
        entries = frozenset(entry for grant in grants for entry in grant.allow)
        self._current = widen(self._base, entries)
        self._label = grant_label(grants)
        self.decide = self._decide_granted

    def _relabel(self, granted: Decision, base: Decision) -> Decision:
        if granted.action == base.action:
            return base
        rule = f"{self._label}: {granted.action} {granted.kind}"
        return Decision(granted.action, granted.kind, rule, 0.0, ())

    # -- the SessionPolicy interface -------------------------------------------------------------------------

    def _decide_granted(self, kind: str, flags: frozenset[str] = _NO_FLAGS) -> Decision:
        key = (kind, flags)
        decision = self._relabelled.get(key)
        if decision is None:
            decision = self._relabel(self._current.decide(kind, flags), self._base.decide(kind, flags))
            if len(self._relabelled) < _MAX_RELABELLED:
                self._relabelled[key] = decision
        return decision

    def decide_all(self, kinds_and_flags: Iterable[tuple[str, frozenset[str]]]) -> Decision:
        if self._current is self._base:
            return self._base.decide_all(kinds_and_flags)
        items = tuple(kinds_and_flags)
        return self._relabel(self._current.decide_all(items), self._base.decide_all(items))

    def decide_command(self, argv_list: Sequence[Sequence[str]]) -> Decision:
        if self._current is self._base:
            return self._base.decide_command(argv_list)
        return self._relabel(self._current.decide_command(argv_list), self._base.decide_command(argv_list))

    @property
    def allows_writes(self) -> bool:
        return self._current.allows_writes

    def __getattr__(self, name: str) -> Any:
        # Masking settings and the matched policies: grants never change them.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._base, name)
