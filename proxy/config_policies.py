"""Reading [[policies]]: kind and command lists, masking entities, strategies and rules."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from proxy.config_errors import (
    KeyPath,
)
from proxy.config_model import POLICY_KINDS, ConnectionSettings, PolicySettings
from proxy.config_reader import ConfigReader, suggestion, toml_type

_KIND_ENTRY = re.compile(r"([a-z_]+)(?::([a-z_]+))?")
_ENTITY_NAME = re.compile(r"[a-z][a-z0-9_]*|custom:[a-z][a-z0-9_]*")
_PARTIAL_STRATEGY = re.compile(r"partial(?::([0-9]{1,2}))?")
_T = TypeVar("_T")

_DECISION_LISTS = ("allow", "review", "deny")
_COMMAND_LISTS = ("allow_commands", "review_commands", "deny_commands")
_POLICY_KEYS = (
    "groups", "connections", *_DECISION_LISTS, "mask", "mask_columns", "mask_strategies", "mask_rules",
    "review_timeout", "approvers", *_COMMAND_LISTS,
)  # fmt: skip


def read_policy(
    reader: ConfigReader, table: dict[str, Any], index: int, connections: Mapping[str, ConnectionSettings]
) -> PolicySettings:
    where: KeyPath = ("policies", index)
    reader.check_keys(table, where, _POLICY_KEYS)
    groups = reader.string_list(table, where, "groups")
    if not groups:
        raise reader.error((*where, "groups"), 'name at least one group, or "*" for every identity')
    names = reader.string_list(table, where, "connections")
    if not names:
        raise reader.error((*where, "connections"), 'name at least one connection, or "*" for all')
    for position, name in enumerate(names):
        if name != "*" and name not in connections:
            hint = suggestion(name, connections) if connections else "no [[connections]] are defined"
            raise reader.error((*where, "connections", position), f"unknown connection '{name}'; {hint}")
    approvers = reader.string_list(table, where, "approvers", ())
    if "*" in approvers:
        raise reader.error(
            (*where, "approvers", approvers.index("*")),
            "'*' would let anyone approve; name the approver groups",
        )
    decision_lists = {name: _read_kind_list(reader, table, where, name) for name in _DECISION_LISTS}
    _reject_overlaps(reader, table, where, decision_lists)
    command_lists = {name: _read_command_list(reader, table, where, name) for name in _COMMAND_LISTS}
    _reject_overlaps(reader, table, where, command_lists)
    mask_rules = _read_mask_rules(reader, table, where)
    mask = reader.string_list(table, where, "mask", ())
    for position, entity in enumerate(mask):
        if not _ENTITY_NAME.fullmatch(entity):
            raise reader.error((*where, "mask", position), f"'{entity}' is not an entity name like 'email'")
        if entity.startswith("custom:") and entity.removeprefix("custom:") not in mask_rules:
            raise reader.error((*where, "mask", position), f"define the rule {entity} in mask_rules")
    mask = tuple(dict.fromkeys((*mask, *(f"custom:{name}" for name in mask_rules))))
    timeout = reader.duration(table, where, "review_timeout", 300.0)
    if timeout <= 0:
        raise reader.error((*where, "review_timeout"), 'must be longer than zero, e.g. "5m"')
    return PolicySettings(
        groups=groups,
        connections=names,
        allow=decision_lists["allow"],
        review=decision_lists["review"],
        deny=decision_lists["deny"],
        mask=mask,
        mask_columns=_read_mask_columns(reader, table, where),
        mask_strategies=_read_mask_strategies(reader, table, where, mask),
        review_timeout_seconds=timeout,
        approvers=approvers,
        allow_commands=command_lists["allow_commands"],
        review_commands=command_lists["review_commands"],
        deny_commands=command_lists["deny_commands"],
        line=reader.line(where) or 0,
        mask_rules=MappingProxyType(mask_rules),
    )


def _read_kind_list(reader: ConfigReader, table: dict[str, Any], where: KeyPath, name: str) -> frozenset[str]:
    entries = reader.string_list(table, where, name, ())
    for position, entry in enumerate(entries):
        match = _KIND_ENTRY.fullmatch(entry)
        kind = match.group(1) if match else entry.partition(":")[0]
        if kind not in POLICY_KINDS:
            raise reader.error(
                (*where, name, position), f"unknown kind '{kind}'; {suggestion(kind, POLICY_KINDS)}"
            )
        if match is None:
            raise reader.error(
                (*where, name, position),
                f"'{entry}' is not 'kind' or 'kind:flag' (flags are lower_case words)",
            )
    return frozenset(entries)


def _read_command_list(
    reader: ConfigReader, table: dict[str, Any], where: KeyPath, name: str
) -> tuple[str, ...]:
    patterns = reader.string_list(table, where, name, ())
    normalised: list[str] = []
    for position, pattern in enumerate(patterns):
        program = pattern.split()[0]
        if "/" in program:
            basename = program.rstrip("/").rsplit("/", 1)[-1]
            raise reader.error(
                (*where, name, position),
                f"commands match by program basename; write '{basename}' instead of '{program}'",
            )
        normalised.append(" ".join(pattern.split()))
    return tuple(normalised)


def _reject_overlaps(
    reader: ConfigReader, table: dict[str, Any], where: KeyPath, lists: Mapping[str, Collection[str]]
) -> None:
    """An entry in two of allow/review/deny is a contradiction the admin must resolve, not a silent pick."""
    seen: dict[str, str] = {}
    for list_name, entries in lists.items():
        for entry in entries:
            if entry in seen:
                raw = table[list_name]
                position = next(
                    (
                        i
                        for i, item in enumerate(raw)
                        if isinstance(item, str) and " ".join(item.split()) == entry
                    ),
                    0,
                )
                raise reader.error(
                    (*where, list_name, position),
                    f"'{entry}' is in both {seen[entry]} and {list_name}; keep it in one list",
                )
            seen[entry] = list_name


def _read_mask_columns(reader: ConfigReader, table: dict[str, Any], where: KeyPath) -> tuple[str, ...]:
    columns = reader.string_list(table, where, "mask_columns", ())
    for position, pattern in enumerate(columns):
        if any(char.isspace() for char in pattern):
            raise reader.error(
                (*where, "mask_columns", position), 'write column globs like "*.email", no spaces'
            )
    return columns


def _read_mask_strategies(
    reader: ConfigReader, table: dict[str, Any], where: KeyPath, mask: tuple[str, ...]
) -> Mapping[str, str]:
    raw = table.get("mask_strategies", {})
    key: KeyPath = (*where, "mask_strategies")
    if not isinstance(raw, dict):
        raise reader.error(key, f'expected a table like {{ email = "hash" }}, got {toml_type(raw)}')
    strategies: dict[str, str] = {}
    for entity, strategy in raw.items():
        entity_key = (*key, entity)
        if entity not in mask:
            raise reader.error(entity_key, f"'{entity}' is not in mask; add it there or remove this strategy")
        if not isinstance(strategy, str) or not _is_strategy(strategy):
            raise reader.error(entity_key, 'use "redact", "hash", "partial" or "partial:N" (keep the last N)')
        strategies[entity] = strategy
    return MappingProxyType(strategies)


def _is_strategy(text: str) -> bool:
    return text in ("redact", "hash") or _PARTIAL_STRATEGY.fullmatch(text) is not None


def _read_mask_rules(reader: ConfigReader, table: dict[str, Any], where: KeyPath) -> dict[str, str]:
    raw = table.get("mask_rules", {})
    key: KeyPath = (*where, "mask_rules")
    if not isinstance(raw, dict):
        raise reader.error(
            key, f'expected a table like {{ order_ref = "ORD-[0-9]{{8}}" }}, got {toml_type(raw)}'
        )
    rules: dict[str, str] = {}
    for name, pattern in raw.items():
        rule_key = (*key, name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise reader.error(rule_key, "name custom rules with lower_case words")
        if not isinstance(pattern, str) or not pattern:
            raise reader.error(rule_key, "expected a regular expression string")
        try:
            re.compile(pattern)
        except re.error as error:
            raise reader.error(rule_key, f"invalid regular expression: {error}") from None
        rules[name] = pattern
    return rules
