"""SQL classifier: one StatementClass per statement of a query string, read off PostgreSQL's own parse tree.

How it works. pglast (libpg_query, the server's real grammar) parses the query string; the tree is taken in
pglast's JSON form because building it that way is several times cheaper than building pglast's Python node
objects, and it is the same tree. One iterative walk over each statement then does everything: the
statement node and every nested statement, call and relation add their findings, and the strictest kind
wins (``kinds.KIND_SEVERITY``). Any node type that is not known here makes the statement ``opaque``, so a
parser upgrade that adds syntax fails closed instead of reading as harmless.

Caches. ``classify`` first looks the exact query string up (identical text, identical answer). On a miss
it looks up the string's literal-free shape (pg_query's normalised text: constants replaced by ``$n``), so
``... WHERE aid = 1`` and ``... WHERE aid = 2`` share one parse. The shape cache only holds ``read`` and
``write`` results whose classification consulted no literal value (never ``set_config``, EXPLAIN, COPY,
SET, BEGIN ...). It is keyed by the normalised text rather than by ``pglast.parser.fingerprint`` because
the fingerprint also drops schema names (``DELETE FROM audit.log`` and ``DELETE FROM log`` share one) and
type casts, and a cache hit would then report the wrong tables.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pglast import parser as pg_parser

from proxy.policy import kinds
from proxy.policy.sql_functions import SET_CONFIG, builtin_function_kind, setting_risk


@dataclass(frozen=True, slots=True)
class StatementClass:
    """What one SQL statement is, for policy."""

    kind: str  # one of kinds.KINDS
    flags: frozenset[str]  # kinds.FLAGS, e.g. {"no_where"}
    tables: tuple[str, ...]  # relations named, schema-qualified when written so ("public.users" or "users")
    functions: tuple[str, ...]  # every function called, lowercased, schema-qualified when written so
    text: str  # the statement's own SQL text, sliced from the query string
    reason: str  # why this kind, for people: "UPDATE without WHERE", "calls pg_read_file (...)"
    transaction_effect: str | None  # kinds.TRANSACTION_EFFECTS member for transaction statements, else None


Json = Any  # a value of pglast's JSON parse tree: dict, list, str, int, bool
Node = dict[str, Any]

# Walk modes, carried with every node waiting on the stack.
ACTIVE = 1  # the subtree executes: its calls and nested statements count towards the kind
IN_CTE = 2  # the subtree is a WITH query

_SEVERITY = kinds.KIND_SEVERITY
_SHAPE_CACHEABLE_KINDS = frozenset({kinds.READ, kinds.WRITE})

# The hot path's first cache key. For text with no quotes, dollar signs, backslashes, comments or inner
# semicolons, tokens are easy to see: replacing each numeric literal by "?" gives a key under which two
# texts differ only in the numbers they carry. Numbers never change a read/write verdict that did not look
# at literals (only such verdicts are stored), so this skips even the C normaliser (~10 µs) for the
# typical agent workload of one query shape with different ids.
_FAST_KEY_UNSAFE = re.compile(r"['\"$\\]|--|/\*|;\s*\S")
# A number not glued to a word or a dot. Its look-behind comes after the first digit (the same condition), so
# the regex engine skips to digits in C instead of trying every position of the text.
_NUMBER = re.compile(r"\d(?<![\w.]\d)\d*(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")


def _fast_key(sql: str) -> str | None:
    if len(sql) > 2048 or _FAST_KEY_UNSAFE.search(sql) is not None:
        return None
    return _NUMBER.sub("?", sql)


class _Walk:
    """One statement's walk: the nodes still to visit and everything found so far."""

    __slots__ = (
        "cte_names",
        "flags",
        "functions",
        "kind",
        "literal_dependent",
        "rank",
        "reason",
        "stack",
        "tables",
        "transaction_effect",
    )

    def __init__(self, root: Node) -> None:
        self.stack: list[tuple[Json, int]] = [(root, ACTIVE)]
        self.kind: str | None = None
        self.rank = -1
        self.reason = ""
        self.flags: set[str] = set()
        self.functions: list[tuple[int, str]] = []  # (location, name): reported in source order
        self.tables: list[tuple[int, str, bool]] = []  # (location, name, schema-qualified)
        self.cte_names: set[str] = set()
        self.literal_dependent = False  # the result depends on a literal value: never cache it by shape
        self.transaction_effect: str | None = None

    def add(self, kind: str, reason: str) -> None:
        """A finding; the most severe one decides the kind (the first of equals gives the reason)."""
        rank = _SEVERITY[kind]
        if rank > self.rank:
            self.kind, self.rank, self.reason = kind, rank, reason

    def descend(self, value: Json, mode: int) -> None:
        self.stack.append((value, mode))


Action = Callable[[_Walk, Node, Json, int], None]  # (walk, parent dict, value under the key, mode)


# --- readers for pglast's JSON tree -----------------------------------------------------------------------


def _identifiers(items: Json) -> list[str] | None:
    """A list of String nodes as lowercased names; None when anything else is in it."""
    if not isinstance(items, list) or not items:
        return None
    names: list[str] = []
    for item in items:
        string = item.get("String") if isinstance(item, dict) else None
        if not isinstance(string, dict):
            return None
        names.append(str(string.get("sval", "")).lower())
    return names


def _literal_text(node: Json) -> str | None:
    """The value of a constant (looking through casts) as text; None when the node is not a constant."""
    while isinstance(node, dict) and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    const = node.get("A_Const") if isinstance(node, dict) else None
    if not isinstance(const, dict) or const.get("isnull"):
        return None
    if "sval" in const:
        return str(const["sval"].get("sval", ""))
    if "boolval" in const:
        return "on" if const["boolval"].get("boolval") else "off"
    for field in ("ival", "fval"):
        if field in const:
            return str(const[field].get(field, 0))
    return None


def _options(options: Json) -> Iterable[Node]:
    """The DefElem bodies of an options list."""
    for option in options or ():
        definition = option.get("DefElem") if isinstance(option, dict) else None
        if isinstance(definition, dict):
            yield definition


def _object_words(object_type: Json) -> str:
    return str(object_type or "OBJECT").removeprefix("OBJECT_").replace("_", " ")


def _ordered_unique(located: Iterable[tuple[int, str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _, name in sorted(located, key=lambda pair: pair[0]):
        seen.setdefault(name, None)
    return tuple(seen)


# --- which rows a data change touches ---------------------------------------------------------------------


def _target_names(relation: Json) -> frozenset[str]:
    """Names a column reference may use to point at the target table: its relation name and alias."""
    if not isinstance(relation, dict):
        return frozenset()
    names = {str(relation.get("relname", ""))}
    alias = relation.get("alias")
    if isinstance(alias, dict) and alias.get("aliasname"):
        names.add(str(alias["aliasname"]))
    return frozenset(names)


def _refers_to_target(fields: Json, targets: frozenset[str]) -> bool:
    if not isinstance(fields, list) or not fields:
        return False
    if len(fields) == 1:
        return True  # unqualified: may well be a column of the target
    qualifier = fields[-2].get("String") if isinstance(fields[-2], dict) else None
    return isinstance(qualifier, dict) and str(qualifier.get("sval", "")) in targets


def _restricts_rows(condition: Json, relation: Json) -> bool:
    """Whether a WHERE (or MERGE ... ON) condition can tell the target's rows apart.

    It must reference a column of the target (unqualified, or qualified by the target's name or alias) or be
    WHERE CURRENT OF: ``WHERE true``, ``WHERE 1 = 1`` or ``USING u WHERE u.flag`` leave every row in play.
    """
    if condition is None:
        return False
    targets = _target_names(relation)
    stack = [condition]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "CurrentOfExpr" in value:
                return True
            reference = value.get("ColumnRef")
            if isinstance(reference, dict) and _refers_to_target(reference.get("fields"), targets):
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _merge_touches_every_row(body: Node) -> bool:
    if not _restricts_rows(body.get("joinCondition"), body.get("relation")):
        return True
    for clause in body.get("mergeWhenClauses") or ():
        when = clause.get("MergeWhenClause", {}) if isinstance(clause, dict) else {}
        if (
            when.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE"
            and when.get("commandType") in ("CMD_DELETE", "CMD_UPDATE")
            and when.get("condition") is None
        ):
            return True
    return False


def _targets_pg_settings(relation: Json) -> bool:
    if not isinstance(relation, dict):
        return False
    schema = str(relation.get("schemaname", "pg_catalog")).lower()
    return str(relation.get("relname", "")).lower() == "pg_settings" and schema == "pg_catalog"


# --- statement actions --------------------------------------------------------------------------------------


def _descend(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    walk.descend(body, mode)


def _fixed(kind: str, reason: str, flag: str | None) -> Action:
    """Action for a statement whose kind never depends on its contents (its subtree is still walked)."""

    def action(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        if mode & ACTIVE:
            walk.add(kind, reason)
            if flag is not None:
                walk.flags.add(flag)
        walk.descend(body, mode)

    return action


def _data_change(verb: str) -> Action:
    """INSERT / UPDATE / DELETE / MERGE, at the top or nested in a WITH clause."""

    def action(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        if mode & ACTIVE:
            reason = verb
            if verb in ("UPDATE", "DELETE"):
                where = body.get("whereClause")
                if where is None:
                    walk.flags.add(kinds.NO_WHERE)
                    reason = f"{verb} without WHERE"
                elif not _restricts_rows(where, body.get("relation")):
                    walk.flags.add(kinds.NO_WHERE)
                    reason = f"{verb} with a WHERE that does not restrict the target's rows"
            elif verb == "MERGE" and _merge_touches_every_row(body):
                walk.flags.add(kinds.NO_WHERE)
                reason = "MERGE that can change every target row"
            if mode & IN_CTE:
                walk.flags.add(kinds.WRITES_IN_CTE)
                reason += " inside WITH"
            walk.add(kinds.WRITE, reason)
            if _targets_pg_settings(body.get("relation")):
                # A rule on the pg_settings view turns UPDATE into set_config(name, setting): as good as SET.
                walk.flags.add(kinds.CHANGES_READ_ONLY)
                walk.add(kinds.DANGEROUS_FUNCTION, f"{verb} pg_settings changes settings like SET")
        walk.descend(body, mode)

    return action


def _on_select(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        walk.add(kinds.READ, "VALUES" if "valuesLists" in body else "SELECT")
    walk.descend(body, mode)


def _on_into_clause(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    # Only SelectStmt (the arms of a UNION included) has an "intoClause" field: SELECT ... INTO.
    if mode & ACTIVE:
        walk.flags.add(kinds.SELECT_INTO)
        walk.add(kinds.DDL, "SELECT INTO creates a table")
    walk.descend(body, mode)


def _on_locking_clause(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        walk.flags.add(kinds.LOCKING)
    walk.descend(body, mode)


def _on_relname(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    # "relname" is a field of RangeVar, which typed fields hold inline, without its node wrapper.
    parts = [parent.get("catalogname"), parent.get("schemaname"), body]
    name = ".".join(str(part) for part in parts if part)
    walk.tables.append((int(parent.get("location", 0)), name, len(name) > len(str(body))))


def _on_cte(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    name = body.get("ctename")
    if name:
        walk.cte_names.add(str(name))
    walk.descend(body, mode | IN_CTE)


def _explain_analyzes(options: Json) -> bool:
    """EXPLAIN executes when any ANALYZE option is not explicitly false (PostgreSQL's defGetBoolean)."""
    for option in _options(options):
        if str(option.get("defname", "")).lower() != "analyze":
            continue
        arg = option.get("arg")
        if arg is None or not isinstance(arg, dict):
            return True
        if "Integer" in arg:
            if arg["Integer"].get("ival", 0) != 0:
                return True
        elif "String" in arg:
            if str(arg["String"].get("sval", "")).lower() not in ("false", "off"):
                return True
        else:
            return True
    return False


def _on_explain(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    walk.literal_dependent = True  # EXPLAIN (ANALYZE 0) and (ANALYZE 1) share a shape
    if _explain_analyzes(body.get("options")):
        if mode & ACTIVE:
            walk.flags.add(kinds.EXPLAIN_ANALYZE)
            walk.add(kinds.READ, "EXPLAIN ANALYZE")
        walk.descend(body, mode)
        return
    if mode & ACTIVE:
        walk.flags.add(kinds.EXPLAIN)
        walk.add(kinds.READ, "EXPLAIN without ANALYZE does not execute the statement")
    walk.descend(body, mode & ~ACTIVE)
    query = body.get("query")
    if isinstance(query, dict) and "ExecuteStmt" in query:
        # EXPLAIN EXECUTE evaluates the EXECUTE parameters even without ANALYZE.
        walk.descend(query["ExecuteStmt"].get("params"), mode)


def _on_prepare(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        walk.flags.add(kinds.PREPARED)
        walk.add(kinds.READ, "PREPARE")
    walk.descend(body, mode)


def _on_copy(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    walk.literal_dependent = True
    if mode & ACTIVE:
        direction = "FROM" if body.get("is_from") else "TO"
        if body.get("is_program"):
            walk.add(kinds.COPY_PROGRAM, f"COPY {direction} PROGRAM runs a shell command on the server")
        elif body.get("filename") is not None:
            walk.add(kinds.DANGEROUS_FUNCTION, f"COPY {direction} a server file")
        elif body.get("is_from"):
            walk.add(kinds.COPY_IN, "COPY FROM STDIN")
        else:
            walk.add(kinds.COPY_OUT, "COPY TO STDOUT")
    walk.descend(body, mode)


_TRANSACTION_STATEMENTS: dict[str, tuple[str | None, str]] = {
    "TRANS_STMT_BEGIN": (kinds.BEGIN, "BEGIN"),
    "TRANS_STMT_START": (kinds.BEGIN, "START TRANSACTION"),
    "TRANS_STMT_COMMIT": (kinds.COMMIT, "COMMIT"),
    "TRANS_STMT_ROLLBACK": (kinds.ROLLBACK, "ROLLBACK"),
    "TRANS_STMT_SAVEPOINT": (kinds.SAVEPOINT, "SAVEPOINT"),
    "TRANS_STMT_RELEASE": (kinds.RELEASE, "RELEASE SAVEPOINT"),
    "TRANS_STMT_ROLLBACK_TO": (kinds.ROLLBACK_TO, "ROLLBACK TO SAVEPOINT"),
    "TRANS_STMT_PREPARE": (kinds.PREPARE, "PREPARE TRANSACTION"),
    # These finish a *prepared* transaction; the session's own transaction state does not change.
    "TRANS_STMT_COMMIT_PREPARED": (None, "COMMIT PREPARED"),
    "TRANS_STMT_ROLLBACK_PREPARED": (None, "ROLLBACK PREPARED"),
}
_TWO_PHASE = frozenset({"TRANS_STMT_PREPARE", "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED"})


def _asks_read_write(options: Json) -> bool:
    """Whether BEGIN / SET TRANSACTION options ask for READ WRITE (an unknown value counts as yes)."""
    for option in _options(options):
        if option.get("defname") == "transaction_read_only":
            value = _literal_text(option.get("arg"))
            if value is None or value in ("0", "off", "false"):
                return True
    return False


def _on_transaction(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    walk.literal_dependent = True
    statement = body.get("kind", "TRANS_STMT_BEGIN")
    known = _TRANSACTION_STATEMENTS.get(statement)
    if known is None:
        walk.add(kinds.OPAQUE, f"unrecognised transaction statement ({statement})")
    elif mode & ACTIVE:
        effect, reason = known
        walk.transaction_effect = effect
        if statement in _TWO_PHASE:
            walk.flags.add(kinds.TWO_PHASE)
        if body.get("chain"):
            walk.flags.add(kinds.CHAIN)
        if _asks_read_write(body.get("options")):
            walk.flags.update((kinds.READ_WRITE, kinds.CHANGES_READ_ONLY))
            reason += " READ WRITE"
        walk.add(kinds.TRANSACTION, reason)
    walk.descend(body, mode)


def _setting_values(body: Node) -> tuple[str, ...] | None:
    """Literal values of a SET: () for DEFAULT/RESET, None when they are not all constants."""
    set_kind = body.get("kind")
    if set_kind in ("VAR_SET_DEFAULT", "VAR_RESET"):
        return ()
    if set_kind != "VAR_SET_VALUE":
        return None
    values = [_literal_text(arg) for arg in body.get("args") or ()]
    return None if None in values else tuple(str(value) for value in values)


def _set_multi(walk: _Walk, name: str, args: Json) -> None:
    """SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ... / SET TRANSACTION SNAPSHOT."""
    if name == "transaction":
        reason = "SET TRANSACTION"
        if _asks_read_write(args):
            walk.flags.update((kinds.READ_WRITE, kinds.CHANGES_READ_ONLY))
            reason += " READ WRITE"
        walk.add(kinds.TRANSACTION, reason)
    elif name == "transaction snapshot":
        walk.add(kinds.TRANSACTION, "SET TRANSACTION SNAPSHOT")
    elif name == "session characteristics":
        if any(option.get("defname") == "transaction_read_only" for option in _options(args)):
            walk.flags.add(kinds.CHANGES_READ_ONLY)
            if _asks_read_write(args):
                walk.flags.add(kinds.READ_WRITE)
            walk.add(kinds.DCL, "SET SESSION CHARACTERISTICS changes read-only mode")
        else:
            walk.add(kinds.SESSION, "SET SESSION CHARACTERISTICS")
    else:
        walk.add(kinds.OPAQUE, f"unrecognised SET form ({name})")


def _on_variable_set(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    walk.literal_dependent = True
    walk.descend(body, mode)
    if not mode & ACTIVE:
        return
    set_kind = body.get("kind", "VAR_SET_VALUE")
    name = str(body.get("name", "")).lower()
    if set_kind == "VAR_SET_MULTI":
        _set_multi(walk, name, body.get("args"))
    elif set_kind == "VAR_RESET_ALL":
        walk.flags.add(kinds.CHANGES_READ_ONLY)
        walk.add(kinds.DCL, "RESET ALL also resets read-only mode")
    elif set_kind in ("VAR_SET_VALUE", "VAR_SET_DEFAULT", "VAR_SET_CURRENT", "VAR_RESET"):
        verb = "RESET" if set_kind == "VAR_RESET" else "SET"
        risk = setting_risk(name, _setting_values(body))
        walk.flags.update(risk.flags)
        if risk.sensitive:
            walk.add(kinds.DCL, f"{verb} {name} ({risk.why})")
        else:
            walk.add(kinds.SESSION, f"{verb} {name}")
    else:
        walk.add(kinds.OPAQUE, f"unrecognised SET form ({set_kind})")


def _on_discard(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        target = str(body.get("target", "DISCARD_ALL"))
        if target == "DISCARD_ALL":
            # DISCARD ALL runs RESET ALL and SET SESSION AUTHORIZATION DEFAULT: read-only mode and any role
            # the gateway set are undone.
            walk.flags.add(kinds.CHANGES_READ_ONLY)
            walk.add(kinds.DCL, "DISCARD ALL resets read-only mode and the session's role")
        else:
            walk.add(kinds.SESSION, f"DISCARD {target.removeprefix('DISCARD_')}")
    walk.descend(body, mode)


_TABLE_LIKE_OBJECTS = frozenset(
    {
        "OBJECT_TABLE",
        "OBJECT_VIEW",
        "OBJECT_MATVIEW",
        "OBJECT_FOREIGN_TABLE",
        "OBJECT_SEQUENCE",
        "OBJECT_INDEX",
    }
)


def _on_drop(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    remove_type = body.get("removeType")
    if mode & ACTIVE:
        walk.add(kinds.DROP, f"DROP {_object_words(remove_type)}")
    if remove_type in _TABLE_LIKE_OBJECTS:
        for dropped in body.get("objects") or ():
            names = _identifiers(dropped.get("List", {}).get("items")) if isinstance(dropped, dict) else None
            if names:
                walk.tables.append((0, ".".join(names), len(names) > 1))
    walk.descend(body, mode)


_ROW_SECURITY_COMMANDS = frozenset(
    {"AT_EnableRowSecurity", "AT_DisableRowSecurity", "AT_ForceRowSecurity", "AT_NoForceRowSecurity"}
)


def _on_alter_table(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        walk.add(kinds.DDL, f"ALTER {_object_words(body.get('objtype', 'OBJECT_TABLE'))}")
    walk.descend(body, mode)


def _on_alter_table_command(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        subtype = body.get("subtype")
        if subtype == "AT_DropColumn":
            walk.add(kinds.DROP, "ALTER ... DROP COLUMN destroys data")
        elif subtype == "AT_ChangeOwner":
            walk.add(kinds.DCL, "ALTER ... OWNER TO changes privileges")
        elif subtype in _ROW_SECURITY_COMMANDS:
            walk.add(kinds.DCL, "ALTER TABLE changes row-level security")
    walk.descend(body, mode)


def _on_rename(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        rename_type = body.get("renameType")
        if rename_type == "OBJECT_ROLE":
            walk.add(kinds.DCL, "ALTER ROLE ... RENAME")
        else:
            walk.add(kinds.DDL, f"ALTER {_object_words(rename_type)} ... RENAME")
    walk.descend(body, mode)


def _on_grant(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        walk.add(kinds.DCL, "GRANT" if body.get("is_grant") else "REVOKE")
    walk.descend(body, mode)


def _on_create_table_as(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        materialized = body.get("objtype") == "OBJECT_MATVIEW"
        walk.add(kinds.DDL, "CREATE MATERIALIZED VIEW" if materialized else "CREATE TABLE AS")
    walk.descend(body, mode)


def _function_language(options: Json) -> str | None:
    for option in _options(options):
        if option.get("defname") == "language":
            arg = option.get("arg")
            string = arg.get("String") if isinstance(arg, dict) else None
            return str(string.get("sval", "")).lower() if isinstance(string, dict) else "?"
    return None


def _runs_outside_the_sandbox(language: str) -> bool:
    # C and internal load server code; untrusted procedural languages end in "u" (plpython3u, plperlu).
    return language in ("c", "internal", "plsh", "plr", "?") or language.endswith("u")


def _on_create_function(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    if mode & ACTIVE:
        what = "CREATE PROCEDURE" if body.get("is_procedure") else "CREATE FUNCTION"
        walk.add(kinds.DDL, what)
        language = _function_language(body.get("options"))
        if language is not None and _runs_outside_the_sandbox(language):
            walk.add(kinds.DANGEROUS_FUNCTION, f"{what} ... LANGUAGE {language} runs code on the server")
    walk.descend(body, mode)


def _on_option(walk: _Walk, parent: Node, body: Json, mode: int) -> None:
    # file_fdw reads the server file, or runs the shell command, named in a foreign table's options.
    if mode & ACTIVE:
        name = str(body.get("defname", "")).lower()
        if name == "program":
            walk.add(kinds.COPY_PROGRAM, "a 'program' option runs a shell command on the server")
        elif name == "filename":
            walk.add(kinds.DANGEROUS_FUNCTION, "a 'filename' option reads a server file")
    walk.descend(body, mode)


def _on_set_config(walk: _Walk, args: list[Json]) -> None:
    # set_config('role', ...) and set_config('application_name', ...) differ only in a literal.
    walk.literal_dependent = True
    setting = _literal_text(args[0]) if args else None
    if setting is None:
        walk.add(kinds.DANGEROUS_FUNCTION, "calls set_config with a non-constant setting name")
        return
    value = _literal_text(args[1]) if len(args) > 1 else None
    name = setting.lower()
    risk = setting_risk(name, None if value is None else (value,))
    walk.flags.update(risk.flags)
    if risk.sensitive:
        walk.add(kinds.DANGEROUS_FUNCTION, f"calls set_config on {name} ({risk.why})")
    else:
        walk.add(kinds.SESSION, f"calls set_config on {name}")


# Parse-tree nodes that mean nothing for policy on their own; the walk just descends into them. All that
# the raw (unanalysed) parser emits are listed: a node type missing here makes the statement opaque.
_INERT_NODE_NAMES = """
A_ArrayExpr A_Const A_Expr A_Indices A_Star ATAlterConstraint AccessPriv Alias BitString BoolExpr
Boolean BooleanTest CTECycleClause CTESearchClause CaseExpr CaseWhen CoalesceExpr CollateClause
ColumnDef Constraint CreateOpClassItem CurrentOfExpr Float FunctionParameter GroupingFunc
GroupingSet IndexElem InferClause Integer IntoClause JoinExpr JsonAggConstructor JsonArgument
JsonArrayAgg JsonArrayConstructor JsonArrayQueryConstructor JsonBehavior JsonFormat JsonFuncExpr
JsonIsPredicate JsonKeyValue JsonObjectAgg JsonObjectConstructor JsonOutput JsonParseExpr JsonReturning
JsonScalarExpr JsonSerializeExpr JsonTable JsonTableColumn JsonTablePathSpec JsonValueExpr List
LockingClause MergeSupportFunc MergeWhenClause MinMaxExpr MultiAssignRef NamedArgExpr NullTest
ObjectWithArgs OnConflictClause ParamRef PartitionBoundSpec PartitionCmd PartitionElem
PartitionRangeDatum PartitionSpec PublicationObjSpec PublicationTable RangeFunction RangeSubselect
RangeTableFunc RangeTableFuncCol RangeTableSample RangeVar ReplicaIdentityStmt ResTarget ReturnStmt
ReturningClause ReturningOption RoleSpec RowExpr SQLValueFunction SetToDefault SortBy StatsElem String
SubLink TableLikeClause TriggerTransition TypeCast TypeName VacuumRelation WindowDef WithClause XmlExpr
XmlSerialize
"""


def _static_actions() -> dict[str, Action]:
    actions: dict[str, Action] = dict.fromkeys(_INERT_NODE_NAMES.split(), _descend)
    for node_type, (kind, reason) in kinds.STATEMENT_KINDS.items():
        actions[node_type] = _fixed(kind, reason, kinds.STATEMENT_FLAGS.get(node_type))
    actions.update(
        {
            "SelectStmt": _on_select,
            "InsertStmt": _data_change("INSERT"),
            "UpdateStmt": _data_change("UPDATE"),
            "DeleteStmt": _data_change("DELETE"),
            "MergeStmt": _data_change("MERGE"),
            "ExplainStmt": _on_explain,
            "PrepareStmt": _on_prepare,
            "CopyStmt": _on_copy,
            "TransactionStmt": _on_transaction,
            "VariableSetStmt": _on_variable_set,
            "DiscardStmt": _on_discard,
            "DropStmt": _on_drop,
            "AlterTableStmt": _on_alter_table,
            "AlterTableCmd": _on_alter_table_command,
            "RenameStmt": _on_rename,
            "GrantStmt": _on_grant,
            "CreateTableAsStmt": _on_create_table_as,
            "CreateFunctionStmt": _on_create_function,
            "DefElem": _on_option,
            "CommonTableExpr": _on_cte,
            # Fields rather than node types: typed fields hold RangeVar and SELECT's clauses inline.
            "relname": _on_relname,
            "intoClause": _on_into_clause,
            "lockingClause": _on_locking_clause,
        }
    )
    return actions


_STATIC_ACTIONS = _static_actions()


class _StatementWalker:
    """Walks statements' parse trees; knows the configured user-defined write functions."""

    def __init__(self, write_functions: Iterable[str]) -> None:
        self._write_bare: set[str] = set()  # configured without a schema: any schema matches
        self._write_qualified: set[str] = set()  # "schema.name"
        self._write_names: set[str] = set()  # the base name of every entry
        for entry in write_functions:
            schema, _, name = entry.strip().lower().rpartition(".")
            if not name:
                continue
            self._write_names.add(name)
            if schema:
                self._write_qualified.add(f"{schema.rpartition('.')[2]}.{name}")
            else:
                self._write_bare.add(name)
        self._actions: dict[str, Action] = {
            **_STATIC_ACTIONS,
            "FuncCall": self._on_func_call,
            "CallStmt": self._on_call,
            "ColumnRef": self._on_column_ref,
            "A_Indirection": self._on_indirection,
        }

    def walk(self, root: Json) -> _Walk:
        walk = _Walk(root if isinstance(root, dict) else {})
        actions = self._actions
        stack = walk.stack
        push, pop = stack.append, stack.pop
        while stack:
            value, mode = pop()
            # Children are pushed last-first so they are visited in tree order: the reason of the first
            # finding at the winning severity is then the one nearest the start of the statement.
            if type(value) is list:
                for item in reversed(value):
                    if type(item) is dict or type(item) is list:
                        push((item, mode))
                continue
            if type(value) is not dict:
                continue
            for key, child in reversed(value.items()):
                action = actions.get(key)
                if action is None:
                    child_type = type(child)
                    if child_type is dict:
                        if "A" <= key[0] <= "Z":  # a node wrapper of a type nobody reviewed
                            walk.add(kinds.OPAQUE, f"unrecognised syntax ({key})")
                        push((child, mode))
                    elif child_type is list:
                        push((child, mode))
                elif action is _descend:
                    push((child, mode))
                else:
                    action(walk, value, child, mode)
        if walk.kind is None:
            walk.add(kinds.OPAQUE, "no statement in the parse tree")
        return walk

    def _on_func_call(self, walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        parts = _identifiers(body.get("funcname"))
        if parts is None:
            walk.add(kinds.OPAQUE, "function call with an unrecognised name")
        else:
            written = ".".join(parts)
            if body.get("funcformat") == "COERCE_SQL_SYNTAX" and parts[0] == "pg_catalog":
                written = parts[-1]  # EXTRACT(...) is pg_catalog.extract(...) to the parser
            walk.functions.append((int(body.get("location", 0)), written))
            if mode & ACTIVE:
                self._judge_call(walk, parts, written, body.get("args") or [])
        walk.descend(body, mode)

    def _judge_call(self, walk: _Walk, parts: list[str], written: str, args: list[Json]) -> None:
        name = parts[-1]
        schema = parts[-2] if len(parts) > 1 else None
        if name == SET_CONFIG:
            _on_set_config(walk, args)
        builtin = builtin_function_kind(name, schema)
        if builtin is not None:
            walk.add(*builtin)
        if self._is_write_function(name, schema):
            walk.add(kinds.WRITE, f"calls {written} (user-defined volatile function)")

    def _is_write_function(self, name: str, schema: str | None) -> bool:
        if schema is None:
            # An unqualified call resolves through search_path, so a function of that name in any schema.
            return name in self._write_names
        return name in self._write_bare or f"{schema}.{name}" in self._write_qualified

    def _on_call(self, walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        if mode & ACTIVE:
            walk.add(kinds.OPAQUE, "CALL runs a procedure")
        call = body.get("funccall")
        if isinstance(call, dict):
            self._on_func_call(walk, body, call, mode)

    def _on_column_ref(self, walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        # PostgreSQL reads x.f as the call f(x) when x has no column f (attribute notation), so every field
        # after the first may name a function: ('/etc/passwd'::text).pg_read_file reads a file.
        fields = body.get("fields") or ()
        if mode & ACTIVE and len(fields) > 1:
            self._judge_fields(walk, fields[1:], int(body.get("location", 0)))
        walk.descend(body, mode)

    def _on_indirection(self, walk: _Walk, parent: Node, body: Json, mode: int) -> None:
        if mode & ACTIVE:
            self._judge_fields(walk, body.get("indirection") or (), 0)
        walk.descend(body, mode)

    def _judge_fields(self, walk: _Walk, fields: Iterable[Json], location: int) -> None:
        for field in fields:
            string = field.get("String") if isinstance(field, dict) else None
            if not isinstance(string, dict):
                continue
            name = str(string.get("sval", "")).lower()
            builtin = builtin_function_kind(name, None, attribute=True)
            if builtin is not None:
                walk.functions.append((location, name))
                walk.add(*builtin)
            if name in self._write_names:
                walk.functions.append((location, name))
                walk.add(kinds.WRITE, f"may call {name} through attribute notation (user-defined)")


# --- from query string to classes -----------------------------------------------------------------------


def _statement_text(sql: str, encoded: bytes | None, location: int, length: int) -> str:
    """The statement's own text: libpg_query reports byte offsets, length 0 meaning 'to the end'."""
    if encoded is None:
        return sql[location : location + length if length else len(sql)].strip()
    end = location + length if length else len(encoded)
    return encoded[location:end].decode("utf-8", errors="replace").strip()


def _parse_error_reason(error: Exception) -> str:
    # Parser messages quote the text near the error ('... at or near "s3cret"'); keep SQL out of reasons.
    message = str(error.args[0]).split(" at or near ", 1)[0] if error.args else "syntax error"
    location = error.args[1] if len(error.args) > 1 else None
    where = f" at character {location + 1}" if isinstance(location, int) else ""
    return f"unparseable SQL: {message}{where}"


def _to_statement_class(walk: _Walk, text: str) -> StatementClass:
    assert walk.kind is not None
    # An unqualified name that a WITH clause defines is that CTE, not a table.
    tables = ((at, name) for at, name, qualified in walk.tables if qualified or name not in walk.cte_names)
    return StatementClass(
        kind=walk.kind,
        flags=frozenset(walk.flags),
        tables=_ordered_unique(tables),
        functions=_ordered_unique(walk.functions),
        text=text,
        reason=walk.reason,
        transaction_effect=walk.transaction_effect if walk.kind == kinds.TRANSACTION else None,
    )


def _opaque(text: str, reason: str) -> StatementClass:
    return StatementClass(kinds.OPAQUE, frozenset(), (), (), text.strip(), reason, None)


Classes = tuple[StatementClass, ...]

# Longer query strings (bulk INSERTs, generated SQL) are classified afresh each time: caching them would let
# a client pin cache_size times their size in memory, and they are rarely repeated.
MAX_CACHED_QUERY_CHARS = 16_384


class SqlClassifier:
    """Classifies the SQL of a simple Query (or of one Parse message) into StatementClass values.

    Meant to be used from one thread (the gateway's event loop); the caches are bounded LRUs.
    """

    def __init__(self, write_functions: Iterable[str] = (), cache_size: int = 10_000) -> None:
        self._cache_size = max(0, int(cache_size))
        self._by_text: OrderedDict[str, Classes] = OrderedDict()
        self._by_shape: OrderedDict[str, Classes] = OrderedDict()
        self._by_fast_key: OrderedDict[str, Classes] = OrderedDict()
        self._shape_templates: Classes | None = (
            None  # set by _classify_uncached when its result is shape-safe
        )
        self._walker = _StatementWalker(write_functions)
        self.text_hits = 0
        self.shape_hits = 0
        self.misses = 0

    def set_write_functions(self, names: Iterable[str]) -> None:
        """Replace the user-defined write-capable functions (from the upstream's pg_proc); clears caches."""
        self._walker = _StatementWalker(names)
        self._by_text.clear()
        self._by_shape.clear()
        self._by_fast_key.clear()

    def cache_stats(self) -> dict[str, int]:
        return {
            "text_hits": self.text_hits,
            "shape_hits": self.shape_hits,
            "misses": self.misses,
            "text_entries": len(self._by_text),
            "shape_entries": len(self._by_shape),
            "fast_key_entries": len(self._by_fast_key),
        }

    def classify(self, sql: str) -> Classes:
        """One StatementClass per statement in ``sql``; ``()`` when it holds none. Never raises."""
        cached = self._by_text.get(sql)
        if cached is not None:
            self.text_hits += 1
            self._by_text.move_to_end(sql)
            return cached
        if not isinstance(sql, str):
            return (_opaque("", f"not SQL text ({type(sql).__name__})"),)
        fast_key = _fast_key(sql)
        if fast_key is not None:
            templates = self._by_fast_key.get(fast_key)
            if templates is not None and len(templates) == 1:
                self.shape_hits += 1
                self._by_fast_key.move_to_end(fast_key)
                t = templates[0]
                text = sql.strip()
                if text.endswith(";"):
                    text = text[:-1].rstrip()
                # Not added to the text cache: unique texts of one shape would only evict useful entries.
                return (
                    StatementClass(
                        t.kind, t.flags, t.tables, t.functions, text, t.reason, t.transaction_effect
                    ),
                )
        self._shape_templates = None
        result = self._classify_uncached(sql)
        if fast_key is not None and self._shape_templates is not None and len(self._shape_templates) == 1:
            self._remember(self._by_fast_key, fast_key, self._shape_templates)
        if len(sql) <= MAX_CACHED_QUERY_CHARS:
            self._remember(self._by_text, sql, result)
        return result

    def _classify_uncached(self, sql: str) -> Classes:
        if "\x00" in sql:
            # The server stops reading a query string at NUL; what follows would not be what was classified.
            return (_opaque(sql, "contains a NUL character"),)
        shape: str | None = None
        if len(sql) <= MAX_CACHED_QUERY_CHARS:
            try:
                shape = pg_parser.normalize(sql)
            except Exception:
                shape = None  # unparseable: the full parse below says why
        if shape is not None:
            found = self._from_shape(sql, shape)
            if found is not None:
                self.shape_hits += 1
                return found
        self.misses += 1
        result, shape_cacheable = self._parse_and_classify(sql)
        if shape is not None and shape_cacheable and result:
            # Templates: the text is replaced on every hit, so do not keep the first one alive.
            templates = tuple(
                StatementClass(r.kind, r.flags, r.tables, r.functions, "", r.reason, r.transaction_effect)
                for r in result
            )
            self._remember(self._by_shape, shape, templates)
            self._shape_templates = templates
        return result

    def _from_shape(self, sql: str, shape: str) -> Classes | None:
        templates = self._by_shape.get(shape)
        if templates is None:
            return None
        if len(templates) == 1 and ";" not in sql and "--" not in sql and "/*" not in sql:
            texts: tuple[str, ...] = (sql.strip(),)  # what split() gives, without a second parse
        else:
            try:
                texts = pg_parser.split(sql)
            except Exception:
                return None
        if len(texts) != len(templates):
            return None
        self._by_shape.move_to_end(shape)
        self._shape_templates = templates
        return tuple(
            StatementClass(t.kind, t.flags, t.tables, t.functions, text, t.reason, t.transaction_effect)
            for t, text in zip(templates, texts, strict=True)
        )

    def _parse_and_classify(self, sql: str) -> tuple[Classes, bool]:
        """The classes of every statement, and whether they may be cached by shape."""
        try:
            tree = json.loads(pg_parser.parse_sql_json(sql))
        except pg_parser.ParseError as error:
            return (_opaque(sql, _parse_error_reason(error)),), False
        except Exception as error:  # unencodable text, nesting deeper than the JSON decoder goes
            return (_opaque(sql, f"unparseable SQL ({type(error).__name__})"),), False
        encoded = None if sql.isascii() else sql.encode("utf-8")
        classes: list[StatementClass] = []
        cacheable = True
        for raw in tree.get("stmts") or ():
            location, length = int(raw.get("stmt_location", 0)), int(raw.get("stmt_len", 0))
            text = _statement_text(sql, encoded, location, length)
            try:
                walk = self._walker.walk(raw.get("stmt"))
            except Exception as error:  # a tree shape this module did not expect: a bug, so fail closed
                classes.append(_opaque(text, f"classifier error ({type(error).__name__})"))
                cacheable = False
                continue
            classes.append(_to_statement_class(walk, text))
            cacheable = cacheable and walk.kind in _SHAPE_CACHEABLE_KINDS and not walk.literal_dependent
        return tuple(classes), cacheable

    def _remember(self, cache: OrderedDict[str, Classes], key: str, value: Classes) -> None:
        if self._cache_size:
            cache[key] = value
            if len(cache) > self._cache_size:
                cache.popitem(last=False)
