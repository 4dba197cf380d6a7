"""What a grant does to decisions: review becomes allow, a deny stays a deny, and expiry undoes it at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import SQL_KINDS, PolicySettings, parse_config
from proxy.control.grant_cache import GrantCache
from proxy.control.grant_policy import GrantedPolicy, widen
from proxy.policy.engine import PolicyEngine, SessionPolicy
from proxy.store.base import GrantRecord
from proxy.store.sqlite import SqliteStore

CONFIG = """
[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgresql://app@127.0.0.1/app"

[[connections]]
name = "web1"
type = "ssh"
upstream = "deploy@10.0.0.5:22"
key_file = "./keys/web1"
known_hosts = "./keys/known_hosts"

[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read"]
review = ["write"]
deny = ["drop", "write:no_where"]
approvers = ["oncall"]

[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow_commands = ["ls"]
review_commands = ["systemctl restart *"]
deny_commands = ["rm"]
approvers = ["oncall"]
"""


def grant(
    grant_id: str,
    allow: tuple[str, ...],
    *,
    group: str = "ci-agents",
    connection: str = "appdb",
    ttl: float = 60,
) -> GrantRecord:
    now = time.time()
    return GrantRecord(grant_id, group, connection, allow, "alice", now, now + ttl)


async def cache_with(tmp_path: Path, *grants: GrantRecord) -> tuple[GrantCache, SqliteStore, list[dict]]:
    store = SqliteStore(tmp_path / "hoop.db", "gw/0")
    await store.open()
    for record in grants:
        await store.add_grant(record)
    audited: list[dict] = []
    cache = GrantCache(store, audited.append)
    await cache.refresh()
    return cache, store, audited


async def test_grant_turns_review_into_allow_and_never_lifts_a_deny(tmp_path: Path) -> None:
    engine = PolicyEngine(parse_config(CONFIG, tmp_path / "hoop.toml").policies)
    base = engine.for_session(["ci-agents"], "appdb")
    assert base is not None
    cache, store, _ = await cache_with(tmp_path, grant("g1", ("write", "drop", "ddl")))
    try:
        policy = GrantedPolicy(base, cache, ["ci-agents"], "appdb")
        write = policy.decide("write")
        assert write.action == "allow" and write.rule.startswith("grant g1 (ci-agents on appdb, until ")
        assert policy.decide("ddl").action == "allow", "a kind no list names was reviewed; granted, it runs"
        assert policy.decide("drop").action == "deny"
        assert policy.decide("write", frozenset({"no_where"})).action == "deny"
        assert policy.decide("read") == base.decide("read")
        assert policy.decide("truncate").action == "review"
        assert policy.decide_all([("read", frozenset()), ("write", frozenset())]).action == "allow"
        assert policy.mask_entities == base.mask_entities and policy.allows_writes
        other_group = GrantedPolicy(base, cache, ["someone-else"], "appdb")
        assert other_group.decide("write").action == "review"
        assert policy.grant_ids == ("g1",)
        await store.revoke_grant("g1", time.time())
        await cache.refresh()
        assert policy.decide("write").action == "review" and policy.grant_ids == ()
    finally:
        await store.close()


async def test_expiry_applies_at_once_and_is_audited(tmp_path: Path) -> None:
    engine = PolicyEngine(parse_config(CONFIG, tmp_path / "hoop.toml").policies)
    base = engine.for_session(["ci-agents"], "appdb")
    assert base is not None
    cache, store, audited = await cache_with(tmp_path, grant("g2", ("write",), ttl=0.3))
    try:
        policy = GrantedPolicy(base, cache, ["ci-agents"], "appdb")
        assert policy.decide("write").action == "allow"
        await asyncio.sleep(0.35)  # no refresh in between: the expiry timer alone ends the grant
        assert policy.decide("write").action == "review"
        assert [record["action"] for record in audited] == ["grant.expired"]
        assert audited[0]["grant"] == "g2"
        await cache.refresh()
        assert len(audited) == 1, "an expiry is recorded once"
    finally:
        await store.close()


async def test_exec_grant_allows_reviewed_and_unnamed_commands_but_not_denied_ones(tmp_path: Path) -> None:
    engine = PolicyEngine(parse_config(CONFIG, tmp_path / "hoop.toml").policies)
    base = engine.for_session(["ci-agents"], "web1")
    assert base is not None
    cache, store, _ = await cache_with(tmp_path, grant("g3", ("exec",), connection="web1"))
    try:
        policy = GrantedPolicy(base, cache, ["ci-agents"], "web1")
        assert base.decide_command([["systemctl", "restart", "nginx"]]).action == "review"
        assert policy.decide_command([["systemctl", "restart", "nginx"]]).action == "allow"
        assert policy.decide_command([["uptime"]]).action == "allow"
        assert policy.decide_command([["rm", "-rf", "/"]]).action == "deny"
        assert policy.decide_command([["ls"], ["rm", "x"]]).action == "deny"
    finally:
        await store.close()


ACTIONS = (None, "allow", "review", "deny")
KINDS = sorted(SQL_KINDS)


@st.composite
def policies(draw: st.DrawFn) -> list[PolicySettings]:
    result = []
    for _ in range(draw(st.integers(1, 3))):
        lists: dict[str, set[str]] = {"allow": set(), "review": set(), "deny": set()}
        for kind in KINDS:
            action = draw(st.sampled_from(ACTIONS))
            if action is not None:
                lists[action].add(kind)
        result.append(
            PolicySettings(
                groups=("g",),
                connections=("c",),
                allow=frozenset(lists["allow"]),
                review=frozenset(lists["review"]),
                deny=frozenset(lists["deny"]),
            )
        )
    return result


@settings(max_examples=200, deadline=None)
@given(policies(), st.frozensets(st.sampled_from(KINDS)))
def test_widening_only_ever_turns_review_into_allow(
    matched: list[PolicySettings], granted: frozenset
) -> None:
    base = SessionPolicy(list(enumerate(matched)))
    widened = widen(base, granted)
    for kind in KINDS:
        before, after = base.decide(kind).action, widened.decide(kind).action
        denied = any(kind in policy.deny for policy in matched)
        if kind in granted and not denied:
            assert after == "allow", (kind, before)
        else:
            assert after == before, (kind, before, after)
