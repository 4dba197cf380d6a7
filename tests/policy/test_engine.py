"""Policy engine: default deny, strictest wins, unnamed → review, kind:flag entries, command globs, writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import PolicySettings, parse_config
from proxy.policy.engine import Decision, PolicyEngine, SessionPolicy

# DESIGN.md §6's policies, loaded through the real config parser.
DESIGN_POLICIES = """\
[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgresql://app@127.0.0.1:5432/app?sslmode=prefer"
password_env = "APPDB_PASSWORD"

[[connections]]
name = "web1"
type = "ssh"
upstream = "deploy@10.0.0.5:22"
key_file = "./keys/web1"
known_hosts = "./keys/known_hosts"

[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session"]
review = ["write", "ddl"]
deny = ["drop", "truncate", "copy_program", "dangerous_function", "opaque"]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret"]
review_timeout = "5m"
approvers = ["oncall"]

[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]
allow_commands = ["ls", "cat", "grep", "systemctl status *"]
review_commands = ["systemctl restart *", "kill"]
deny_commands = ["rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget"]
mask = ["email", "secret"]
approvers = ["oncall"]
"""


@pytest.fixture(scope="module")
def design_engine() -> PolicyEngine:
    config = parse_config(DESIGN_POLICIES, Path("hoop.toml"))
    return PolicyEngine(config.policies)


def session(engine: PolicyEngine, groups: list[str], connection: str) -> SessionPolicy:
    found = engine.for_session(groups, connection)
    assert found is not None
    return found


def policy(**fields: object) -> PolicySettings:
    defaults: dict[str, object] = {"groups": ("agents",), "connections": ("db",)}
    defaults.update(fields)
    return PolicySettings(**defaults)  # type: ignore[arg-type]


class TestScope:
    def test_no_matching_policy_is_default_deny(self, design_engine: PolicyEngine) -> None:
        assert design_engine.for_session(["other-team"], "appdb") is None
        assert design_engine.for_session(["ci-agents"], "unknown-db") is None
        assert design_engine.for_session([], "appdb") is None

    def test_groups_and_connection_select_policies(self, design_engine: PolicyEngine) -> None:
        appdb = session(design_engine, ["ci-agents", "other"], "appdb")
        assert appdb.policy_indexes == (0,)
        web1 = session(design_engine, ["ci-agents"], "web1")
        assert web1.policy_indexes == (1,)

    def test_star_matches_every_group_and_connection(self) -> None:
        engine = PolicyEngine([policy(groups=("*",), connections=("*",), allow=frozenset({"read"}))])
        view = session(engine, [], "anything")
        assert view.decide("read").action == "allow"

    def test_sessions_with_the_same_policies_share_one_view(self) -> None:
        engine = PolicyEngine([policy(groups=("a", "b"), allow=frozenset({"read"}))])
        assert engine.for_session(["a"], "db") is engine.for_session(["b", "x"], "db")

    def test_a_session_policy_needs_a_policy(self) -> None:
        with pytest.raises(ValueError, match="default deny"):
            SessionPolicy([])


class TestDecide:
    def test_lists_decide_their_kinds(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        assert view.decide("read") == Decision(
            "allow", "read", "policies[0] (groups ci-agents) allow: read", 0.0, ()
        )
        assert view.decide("write") == Decision(
            "review", "write", "policies[0] (groups ci-agents) review: write", 300.0, ("oncall",)
        )
        assert view.decide("drop") == Decision(
            "deny", "drop", "policies[0] (groups ci-agents) deny: drop", 0.0, ()
        )

    def test_a_kind_no_list_names_is_reviewed(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        decision = view.decide("utility")
        assert decision == Decision(
            "review", "utility", "no list names 'utility' → review", 300.0, ("oncall",)
        )
        # A kind this gateway has never heard of fails closed the same way.
        assert view.decide("brand_new_kind").action == "review"

    def test_strictest_wins_across_policies(self) -> None:
        engine = PolicyEngine(
            [
                policy(groups=("agents",), allow=frozenset({"read", "write", "ddl"})),
                policy(groups=("ci",), review=frozenset({"ddl"}), deny=frozenset({"write"})),
            ]
        )
        view = session(engine, ["agents", "ci"], "db")
        assert view.decide("read").action == "allow"
        assert view.decide("ddl").action == "review"
        write = view.decide("write")
        assert write.action == "deny"
        assert write.rule == "policies[1] (groups ci) deny: write"
        # The same identity without the stricter group only sees the first policy.
        assert session(engine, ["agents"], "db").decide("write").action == "allow"

    def test_reviews_from_several_policies_merge_approvers_and_shortest_wait(self) -> None:
        engine = PolicyEngine(
            [
                policy(review=frozenset({"write"}), approvers=("oncall",), review_timeout_seconds=600.0),
                policy(review=frozenset({"write"}), approvers=("dba", "oncall"), review_timeout_seconds=60.0),
            ]
        )
        decision = session(engine, ["agents"], "db").decide("write")
        assert decision.action == "review"
        assert decision.approvers == ("oncall", "dba")
        assert decision.review_timeout_seconds == 60.0
        assert decision.rule.startswith("policies[0]")

    def test_decide_is_a_precomputed_lookup(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        assert view.decide("read") is view.decide("read")
        assert view.decide("utility") is view.decide("utility")


class TestFlags:
    def test_flag_entry_makes_a_kind_stricter(self) -> None:
        engine = PolicyEngine([policy(allow=frozenset({"write"}), deny=frozenset({"write:no_where"}))])
        view = session(engine, ["agents"], "db")
        assert view.decide("write").action == "allow"
        assert view.decide("write", frozenset({"other_flag"})).action == "allow"
        denied = view.decide("write", frozenset({"no_where", "other_flag"}))
        assert denied.action == "deny"
        assert denied.rule == "policies[0] (groups agents) deny: write:no_where"
        assert view.decide("write", frozenset({"no_where"})) is denied  # cached per (kind, flags)

    def test_a_flag_entry_cannot_loosen_its_kind(self) -> None:
        engine = PolicyEngine([policy(deny=frozenset({"write"}), allow=frozenset({"write:no_where"}))])
        view = session(engine, ["agents"], "db")
        assert view.decide("write", frozenset({"no_where"})).action == "deny"

    def test_a_flag_entry_names_its_statements_when_the_kind_is_unnamed(self) -> None:
        engine = PolicyEngine([policy(review=frozenset({"write:no_where"}), approvers=("dba",))])
        view = session(engine, ["agents"], "db")
        flagged = view.decide("write", frozenset({"no_where"}))
        assert (flagged.action, flagged.rule) == (
            "review",
            "policies[0] (groups agents) review: write:no_where",
        )
        assert view.decide("write").rule == "no list names 'write' → review"

    def test_flags_on_another_kind_do_not_apply(self) -> None:
        engine = PolicyEngine([policy(allow=frozenset({"read"}), deny=frozenset({"write:no_where"}))])
        assert session(engine, ["agents"], "db").decide("read", frozenset({"no_where"})).action == "allow"

    def test_flag_rules_from_another_policy_combine(self) -> None:
        engine = PolicyEngine(
            [
                policy(allow=frozenset({"read"}), review=frozenset({"read:locking"}), approvers=("a",)),
                policy(groups=("ops",), review=frozenset({"read:locking"}), approvers=("b",)),
            ]
        )
        decision = session(engine, ["agents", "ops"], "db").decide("read", frozenset({"locking"}))
        assert (decision.action, decision.approvers) == ("review", ("a", "b"))


class TestDecideAll:
    def test_strictest_statement_wins(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        empty: frozenset[str] = frozenset()
        assert view.decide_all([("read", empty), ("session", empty)]).action == "allow"
        assert view.decide_all([("read", empty), ("write", empty), ("read", empty)]).kind == "write"
        denied = view.decide_all([("write", empty), ("drop", empty), ("read", empty)])
        assert (denied.action, denied.kind) == ("deny", "drop")

    def test_no_statements_runs_nothing(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        assert view.decide_all([]).action == "allow"

    def test_accepts_a_generator(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "appdb")
        kinds = (kind for kind in ("read", "ddl"))
        assert view.decide_all((kind, frozenset()) for kind in kinds).action == "review"


class TestCommands:
    @pytest.mark.parametrize(
        ("argv", "action"),
        [
            (["ls", "-la", "/var/log"], "allow"),
            (["ls"], "allow"),
            (["/bin/ls"], "allow"),
            (["rm", "-rf", "/tmp/x"], "deny"),
            (["/usr/bin/rm", "x"], "deny"),
            (["./rm"], "deny"),
            (["systemctl", "status", "nginx"], "allow"),
            (["systemctl", "restart", "nginx"], "review"),
            (["systemctl", "stop", "nginx"], "review"),  # unnamed
            (["systemctl", "status"], "review"),  # "status *" needs an argument after it
            (["mkfs.ext4", "/dev/sda1"], "deny"),
            (["kill", "-9", "1"], "review"),
            (["curl", "https://example.com"], "deny"),
            (["python3", "-c", "print(1)"], "review"),
            ([], "review"),
        ],
    )
    def test_single_commands(self, design_engine: PolicyEngine, argv: list[str], action: str) -> None:
        view = session(design_engine, ["ci-agents"], "web1")
        assert view.decide_command([argv]).action == action

    def test_strictest_command_wins(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "web1")
        assert view.decide_command([["ls"], ["grep", "x"]]).action == "allow"
        assert view.decide_command([["ls"], ["systemctl", "restart", "app"]]).action == "review"
        denied = view.decide_command([["cat", "f"], ["/usr/bin/rm", "-rf", "/"], ["kill", "1"]])
        assert denied.action == "deny"
        assert denied.rule == "policies[1] (groups ci-agents) deny_commands: rm"

    def test_unnamed_command_names_its_program_in_the_rule(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "web1")
        decision = view.decide_command([["vim", "/etc/passwd"]])
        assert decision == Decision(
            "review", "exec", "no command list names 'vim' → review", 300.0, ("oncall",)
        )

    def test_no_commands_is_reviewed(self, design_engine: PolicyEngine) -> None:
        view = session(design_engine, ["ci-agents"], "web1")
        assert view.decide_command([]).action == "review"

    def test_strictest_pattern_wins_for_one_command(self) -> None:
        engine = PolicyEngine(
            [policy(allow_commands=("systemctl status *",), deny_commands=("systemctl",), connections=("*",))]
        )
        assert (
            session(engine, ["agents"], "x").decide_command([["systemctl", "status", "a"]]).action == "deny"
        )

    def test_argument_globs_are_case_sensitive_and_whole(self) -> None:
        engine = PolicyEngine([policy(allow_commands=("git log *", "Make"))])
        view = session(engine, ["agents"], "db")
        assert view.decide_command([["git", "log", "--oneline"]]).action == "allow"
        assert view.decide_command([["git", "push", "log", "x"]]).action == "review"
        assert view.decide_command([["make"]]).action == "review"


class TestWritesAndMasking:
    def test_allows_writes_when_any_write_kind_is_allowed_or_reviewed(
        self, design_engine: PolicyEngine
    ) -> None:
        assert session(design_engine, ["ci-agents"], "appdb").allows_writes is True

    def test_read_only_session(self) -> None:
        engine = PolicyEngine(
            [policy(allow=frozenset({"read", "session"}), deny=frozenset({"write", "ddl", "drop"}))]
        )
        view = session(engine, ["agents"], "db")
        assert view.allows_writes is False
        # Unnamed write kinds are still reviewed statement by statement; the upstream session stays read-only.
        assert view.decide("truncate").action == "review"

    def test_a_flagged_write_entry_allows_writes(self) -> None:
        engine = PolicyEngine([policy(allow=frozenset({"read"}), review=frozenset({"copy_in:big"}))])
        assert session(engine, ["agents"], "db").allows_writes is True

    def test_writes_allowed_by_any_matching_policy(self) -> None:
        engine = PolicyEngine(
            [policy(allow=frozenset({"read"})), policy(groups=("dba",), allow=frozenset({"ddl"}))]
        )
        assert session(engine, ["agents"], "db").allows_writes is False
        assert session(engine, ["agents", "dba"], "db").allows_writes is True

    def test_masking_merges_as_a_union_with_the_strictest_strategy(self) -> None:
        engine = PolicyEngine(
            [
                policy(
                    mask=("email", "credit_card", "phone"),
                    mask_columns=("*.email",),
                    mask_strategies={"email": "partial:4", "credit_card": "partial", "phone": "hash"},
                ),
                policy(
                    groups=("ops",),
                    mask=("secret", "email", "credit_card", "phone"),
                    mask_columns=("users.ssn", "*.email"),
                    mask_strategies={"email": "hash", "credit_card": "partial:2", "phone": "partial:1"},
                    mask_rules={"order": "ORD-[0-9]+"},
                ),
            ]
        )
        view = session(engine, ["agents", "ops"], "db")
        assert view.mask_entities == ("email", "credit_card", "phone", "secret")
        assert view.mask_columns == ("*.email", "users.ssn")
        assert dict(view.mask_strategies) == {"email": "hash", "credit_card": "partial:2", "phone": "hash"}
        assert dict(view.mask_rules) == {"order": "ORD-[0-9]+"}
