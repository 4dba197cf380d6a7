"""Policy decisions: which policies apply to a session, and allow / review / deny per statement or command."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from types import MappingProxyType
from typing import Literal

from proxy.config import POLICY_KINDS, PolicySettings

__all__ = ["WRITE_KINDS", "Decision", "PolicyEngine", "SessionPolicy"]

Action = Literal["allow", "deny", "review"]

# Kinds that change data or the schema: when a session's policies neither allow nor review any of them, the
# gateway also makes the upstream session read-only (a second wall behind the classifier).
WRITE_KINDS: frozenset[str] = frozenset({"write", "ddl", "drop", "truncate", "dcl", "copy_in", "opaque"})

_SEVERITY: dict[str, int] = {"allow": 0, "review": 1, "deny": 2}
_LIST_ACTIONS: tuple[tuple[str, Action], ...] = (("allow", "allow"), ("review", "review"), ("deny", "deny"))
_COMMAND_LISTS: tuple[tuple[str, Action], ...] = (
    ("allow_commands", "allow"),
    ("review_commands", "review"),
    ("deny_commands", "deny"),
)
_GLOB_CHARS = frozenset("*?[")
# Distinct (kind, flags) pairs seen per session are few; the bound only guards against a pathological caller.
_MAX_CACHED_FLAG_SETS = 4096
# Keeps redacting strategies ahead of revealing ones when two policies choose differently for one entity.
_STRATEGY_STRICTNESS = {"redact": 3, "hash": 2}
_DEFAULT_PARTIAL_KEEP = 4


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    kind: str
    rule: str  # which policy and list decided, for people: "policies[0] (groups ci-agents) deny: drop"
    review_timeout_seconds: float  # how long a review waits; 0.0 when the action is not review
    approvers: tuple[str, ...]  # groups whose members may decide a review; () when the action is not review


def _policy_label(index: int, policy: PolicySettings) -> str:
    return f"policies[{index}] (groups {', '.join(policy.groups)})"


def _stricter(current: Decision | None, candidate: Decision) -> Decision:
    """The stricter of two decisions; two reviews merge (any reviewing policy's approvers, shortest wait)."""
    if current is None:
        return candidate
    current_severity = _SEVERITY[current.action]
    candidate_severity = _SEVERITY[candidate.action]
    if candidate_severity > current_severity:
        return candidate
    if candidate_severity == current_severity == _SEVERITY["review"]:
        approvers = tuple(dict.fromkeys((*current.approvers, *candidate.approvers)))
        timeout = min(current.review_timeout_seconds, candidate.review_timeout_seconds)
        if approvers != current.approvers or timeout != current.review_timeout_seconds:
            return Decision("review", current.kind, current.rule, timeout, approvers)
    return current


def _decision(action: Action, kind: str, rule: str, policy: PolicySettings) -> Decision:
    if action == "review":
        return Decision(action, kind, rule, policy.review_timeout_seconds, policy.approvers)
    return Decision(action, kind, rule, 0.0, ())


@dataclass(frozen=True, slots=True)
class _CommandRule:
    program: str  # exact basename, or a glob when is_glob
    program_pattern: re.Pattern[str] | None
    arguments: re.Pattern[str] | None  # None: any arguments
    decision: Decision


def _compile_command_rule(pattern: str, decision: Decision) -> _CommandRule:
    program, _, arguments = pattern.partition(" ")
    program = posixpath.basename(program) or program
    program_pattern = re.compile(translate(program)) if _GLOB_CHARS & set(program) else None
    arguments_pattern = re.compile(translate(arguments)) if arguments else None
    return _CommandRule(program, program_pattern, arguments_pattern, decision)


class SessionPolicy:
    """The merged view of every policy matching one (identity groups, connection); built once per session."""

    __slots__ = (
        "_by_kind",
        "_by_kind_and_flag",
        "_command_globs",
        "_commands_by_program",
        "_flag_cache",
        "_flagged_kinds",
        "_named_kinds",
        "_unnamed_approvers",
        "_unnamed_timeout",
        "allows_writes",
        "mask_columns",
        "mask_entities",
        "mask_rules",
        "mask_strategies",
        "policies",
        "policy_indexes",
    )

    def __init__(self, matched: Sequence[tuple[int, PolicySettings]]) -> None:
        """`matched`: (index in the config's policies, policy) per applicable policy, in config order."""
        if not matched:
            raise ValueError(
                "a SessionPolicy needs at least one matching policy (no match means default deny)"
            )
        self.policy_indexes: tuple[int, ...] = tuple(index for index, _ in matched)
        self.policies: tuple[PolicySettings, ...] = tuple(policy for _, policy in matched)
        self._unnamed_timeout = min(policy.review_timeout_seconds for policy in self.policies)
        self._unnamed_approvers = tuple(dict.fromkeys(group for p in self.policies for group in p.approvers))
        self._by_kind: dict[str, Decision] = {}
        self._by_kind_and_flag: dict[tuple[str, str], Decision] = {}
        self._flag_cache: dict[tuple[str, frozenset[str]], Decision] = {}
        self._commands_by_program: dict[str, list[_CommandRule]] = {}
        self._command_globs: list[_CommandRule] = []
        for index, policy in matched:
            self._add_kind_lists(index, policy)
            self._add_command_lists(index, policy)
        self._flagged_kinds = frozenset(kind for kind, _flag in self._by_kind_and_flag)
        self._named_kinds = frozenset(self._by_kind)
        for kind in POLICY_KINDS:
            # Precomputed so decide() on any known kind is one dict lookup.
            if kind not in self._by_kind:
                self._by_kind[kind] = self._unnamed(kind, f"no list names '{kind}' → review")
        self.allows_writes: bool = any(
            entry.partition(":")[0] in WRITE_KINDS
            for policy in self.policies
            for entry in (*policy.allow, *policy.review)
        )
        self.mask_entities: tuple[str, ...] = tuple(dict.fromkeys(e for p in self.policies for e in p.mask))
        self.mask_columns: tuple[str, ...] = tuple(
            dict.fromkeys(c for p in self.policies for c in p.mask_columns)
        )
        self.mask_strategies: Mapping[str, str] = MappingProxyType(self._merge_strategies())
        self.mask_rules: Mapping[str, str] = MappingProxyType(
            {name: regex for p in self.policies for name, regex in p.mask_rules.items()}
        )

    # -- construction ----------------------------------------------------------------------------------------

    def _add_kind_lists(self, index: int, policy: PolicySettings) -> None:
        label = _policy_label(index, policy)
        for list_name, action in _LIST_ACTIONS:
            for entry in getattr(policy, list_name):
                kind, _, flag = entry.partition(":")
                decision = _decision(action, kind, f"{label} {list_name}: {entry}", policy)
                if flag:
                    key = (kind, flag)
                    self._by_kind_and_flag[key] = _stricter(self._by_kind_and_flag.get(key), decision)
                else:
                    self._by_kind[kind] = _stricter(self._by_kind.get(kind), decision)

    def _add_command_lists(self, index: int, policy: PolicySettings) -> None:
        label = _policy_label(index, policy)
        for list_name, action in _COMMAND_LISTS:
            for pattern in getattr(policy, list_name):
                rule = _compile_command_rule(
                    pattern, _decision(action, "exec", f"{label} {list_name}: {pattern}", policy)
                )
                if rule.program_pattern is None:
                    self._commands_by_program.setdefault(rule.program, []).append(rule)
                else:
                    self._command_globs.append(rule)

    def _merge_strategies(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for policy in self.policies:
            for entity, strategy in policy.mask_strategies.items():
                current = merged.get(entity)
                if current is None or _strategy_rank(strategy) > _strategy_rank(current):
                    merged[entity] = strategy
        return merged

    def _unnamed(self, kind: str, subject: str) -> Decision:
        return Decision("review", kind, subject, self._unnamed_timeout, self._unnamed_approvers)

    # -- decisions -------------------------------------------------------------------------------------------

    def decide(self, kind: str, flags: frozenset[str] = frozenset()) -> Decision:
        """allow / review / deny for one statement: the strictest named entry wins; unnamed → review."""
        if not flags or kind not in self._flagged_kinds:
            decision = self._by_kind.get(kind)
            if (
                decision is None
            ):  # a kind this gateway does not know: reviewed, and not cached (unbounded input)
                decision = self._unnamed(kind, f"no list names '{kind}' → review")
            return decision
        cached = self._flag_cache.get((kind, flags))
        if cached is not None:
            return cached
        decision = self._by_kind.get(kind) if kind in self._named_kinds else None
        for flag in sorted(flags):
            flagged = self._by_kind_and_flag.get((kind, flag))
            if flagged is not None:
                decision = _stricter(decision, flagged)
        if decision is None:
            decision = self._unnamed(kind, f"no list names '{kind}' → review")
        if len(self._flag_cache) < _MAX_CACHED_FLAG_SETS:
            self._flag_cache[(kind, flags)] = decision
        return decision

    def decide_all(self, kinds_and_flags: Iterable[tuple[str, frozenset[str]]]) -> Decision:
        """The strictest decision over several statements (one simple Query may hold many).

        No statements at all (an empty query string) runs nothing, so it is allowed.
        """
        result: Decision | None = None
        for kind, flags in kinds_and_flags:
            result = _stricter(result, self.decide(kind, flags))
            if result.action == "deny":
                return result
        if result is None:
            return Decision("allow", "", "no statements to decide", 0.0, ())
        return result

    def decide_command(self, argv_list: Sequence[Sequence[str]]) -> Decision:
        """allow / review / deny for an SSH command line, given each simple command's argv.

        Each command matches by program basename, then its arguments joined by spaces against the rule's
        glob ("systemctl restart *"); the strictest across all commands wins; a command no list names is
        reviewed.
        """
        result: Decision | None = None
        for argv in argv_list:
            result = _stricter(result, self._decide_one_command(argv))
            if result.action == "deny":
                return result
        if result is None:
            return self._unnamed("exec", "no command to match → review")
        return result

    def _decide_one_command(self, argv: Sequence[str]) -> Decision:
        program = posixpath.basename(argv[0]) if argv else ""
        arguments = " ".join(argv[1:])
        result: Decision | None = None
        for rule in self._commands_by_program.get(program, ()):
            if rule.arguments is None or rule.arguments.fullmatch(arguments):
                result = _stricter(result, rule.decision)
        for rule in self._command_globs:
            program_matches = rule.program_pattern is not None and rule.program_pattern.fullmatch(program)
            if program_matches and (rule.arguments is None or rule.arguments.fullmatch(arguments)):
                result = _stricter(result, rule.decision)
        if result is None:
            return self._unnamed("exec", f"no command list names '{program}' → review")
        return result


def _strategy_rank(strategy: str) -> tuple[int, int]:
    """Higher is stricter: redact > hash > partial, and a partial keeping fewer characters is stricter."""
    if strategy in _STRATEGY_STRICTNESS:
        return (_STRATEGY_STRICTNESS[strategy], 0)
    _, _, keep = strategy.partition(":")
    kept = int(keep) if keep.isdigit() else _DEFAULT_PARTIAL_KEEP
    return (1, -kept)


class PolicyEngine:
    """All configured policies; hands each new session the merged SessionPolicy that applies to it."""

    __slots__ = ("_policies", "_sessions")

    def __init__(self, policies: Sequence[PolicySettings]) -> None:
        self._policies: tuple[PolicySettings, ...] = tuple(policies)
        # Sessions with the same matching policies share one precomputed SessionPolicy.
        self._sessions: dict[tuple[int, ...], SessionPolicy] = {}

    @property
    def policies(self) -> tuple[PolicySettings, ...]:
        return self._policies

    def for_session(self, groups: Iterable[str], connection: str) -> SessionPolicy | None:
        """The policy view for an identity in `groups` on `connection`; None means default deny (no match)."""
        group_set = frozenset(groups)
        matched = tuple(
            (index, policy)
            for index, policy in enumerate(self._policies)
            if ("*" in policy.connections or connection in policy.connections)
            and ("*" in policy.groups or not group_set.isdisjoint(policy.groups))
        )
        if not matched:
            return None
        key = tuple(index for index, _ in matched)
        session = self._sessions.get(key)
        if session is None:
            session = SessionPolicy(matched)
            self._sessions[key] = session
        return session
