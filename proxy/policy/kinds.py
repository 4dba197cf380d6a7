"""Statement kinds, classification flags and transaction effects: the vocabulary policies are written in.

Every SQL statement the gateway sees is classified into exactly one *kind*. Policies (``allow``, ``review``,
``deny`` lists) name kinds, so these strings are a contract: extend, never rename.

Kinds, from least to most severe (``KIND_SEVERITY``; inside one statement the most severe finding wins):

``read``               SELECT / VALUES / TABLE / plain EXPLAIN, with nothing in the tree that changes state.
                       ``SELECT ... FOR UPDATE/SHARE`` stays ``read`` with the ``locking`` flag: locking
                       rows changes no data, but it blocks other sessions and is refused in a read-only
                       transaction.
``transaction``        BEGIN / COMMIT / ROLLBACK / SAVEPOINT / RELEASE / PREPARE TRANSACTION /
                       SET TRANSACTION.
``session``            SET / RESET / SHOW / DISCARD of ordinary settings, ``set_config`` on ordinary settings.
``utility``            LISTEN / NOTIFY / VACUUM / ANALYZE / CLUSTER / REINDEX / CHECKPOINT / LOCK / cursors /
                       DEALLOCATE, advisory locks and ``pg_notify``.
``copy_out``           ``COPY ... TO STDOUT`` (bulk read to the client).
``write``              INSERT / UPDATE / DELETE / MERGE / REFRESH MATERIALIZED VIEW, data-modifying CTEs,
                       and any call to a write-capable built-in (``nextval``, ``lo_*``, ...) or to a
                       configured user-defined volatile function.
``copy_in``            ``COPY ... FROM STDIN`` (bulk write from the client).
``ddl``                CREATE / ALTER / COMMENT / SECURITY LABEL of schema objects, ``CREATE TABLE AS`` and
                       ``SELECT INTO`` (they create a table).
``truncate``           TRUNCATE.
``drop``               DROP of any object, and ``ALTER TABLE ... DROP COLUMN`` (it destroys data too).
``dcl``                Privileges and identity: GRANT / REVOKE, roles, ownership, row-level security policies,
                       default privileges, user mappings, ``SET ROLE`` / ``SET SESSION AUTHORIZATION`` and the
                       other security-sensitive settings, ``ALTER SYSTEM`` (it rewrites the server's
                       configuration, which is an administrator's privilege rather than a schema change),
                       ``ALTER DATABASE/ROLE ... SET``, ``RESET ALL`` and ``DISCARD ALL`` (they reset
                       read-only mode). ``search_path`` is an ordinary setting (flag ``search_path``)
                       unless it names pg_catalog after another schema, which lets that schema shadow
                       built-in functions; ``client_encoding`` likewise (flag ``client_encoding``) unless
                       it leaves UTF-8, after which the server would decode statements differently from
                       the gateway.
``opaque``             What the classifier cannot see into or does not recognise: DO, CALL, EXECUTE,
                       unparseable SQL, unknown parse-tree nodes, functions that run SQL text
                       (``query_to_xml``, ``ts_stat``, ...). Policies must never silently allow it.
``copy_program``       ``COPY ... TO/FROM PROGRAM``: runs a shell command on the database server.
``dangerous_function`` Server files, other backends, replication, server configuration, loading libraries:
                       ``pg_read_file``, ``pg_ls_dir``, ``lo_import``, ``dblink*``, ``pg_terminate_backend``,
                       ``set_config`` on a security-sensitive setting, ``UPDATE pg_settings``, ``COPY``
                       to/from a server file, ``LOAD``, functions in C or an untrusted language
                       (``plpython3u``), a foreign table's ``filename`` option (file_fdw; its
                       ``program`` option is ``copy_program``).

The classifier reads syntax only. It cannot see side effects hidden behind names it does not know: views that
call volatile functions, triggers, rules, user-defined operators, casts or type input functions. Where a
session may not write, the gateway therefore also makes the upstream session read-only; the
``changes_read_only`` flag marks statements that would undo that. It cannot know the session's transaction
state either: flags describe the statement, never its context.
"""

from __future__ import annotations

from collections.abc import Iterable

READ = "read"
TRANSACTION = "transaction"
SESSION = "session"
UTILITY = "utility"
COPY_OUT = "copy_out"
WRITE = "write"
COPY_IN = "copy_in"
DDL = "ddl"
TRUNCATE = "truncate"
DROP = "drop"
DCL = "dcl"
OPAQUE = "opaque"
COPY_PROGRAM = "copy_program"
DANGEROUS_FUNCTION = "dangerous_function"

KINDS: tuple[str, ...] = (
    READ,
    TRANSACTION,
    SESSION,
    UTILITY,
    COPY_OUT,
    WRITE,
    COPY_IN,
    DDL,
    TRUNCATE,
    DROP,
    DCL,
    OPAQUE,
    COPY_PROGRAM,
    DANGEROUS_FUNCTION,
)

# Higher is stricter. The order is the tuple above: opaque sits just under the two kinds that are known to
# reach outside the database, because an unseen statement may be anything except provably worse.
KIND_SEVERITY: dict[str, int] = {kind: rank for rank, kind in enumerate(KINDS)}

# --- flags -------------------------------------------------------------------------------------------------
NO_WHERE = "no_where"  # UPDATE/DELETE without a WHERE, or with one that references no column (WHERE true)
SELECT_INTO = "select_into"  # SELECT ... INTO creates a table
EXPLAIN = "explain"  # plain EXPLAIN: planned, not executed
EXPLAIN_ANALYZE = "explain_analyze"  # EXPLAIN ANALYZE executes the statement it explains
WRITES_IN_CTE = "writes_in_cte"  # INSERT/UPDATE/DELETE/MERGE inside a WITH clause
PREPARED = "prepared"  # PREPARE: classified by its body, which runs later through EXECUTE
LOCKING = "locking"  # SELECT ... FOR UPDATE / FOR SHARE
CURSOR = "cursor"  # DECLARE CURSOR
LISTEN = "listen"
UNLISTEN = "unlisten"
NOTIFY = "notify"
READ_WRITE = "read_write"  # BEGIN / SET TRANSACTION / SET SESSION CHARACTERISTICS ... READ WRITE
CHANGES_READ_ONLY = "changes_read_only"  # touches default_transaction_read_only / transaction_read_only
SEARCH_PATH = "search_path"  # changes search_path (function and table resolution)
CLIENT_ENCODING = "client_encoding"  # changes how the server decodes the bytes of later statements
TWO_PHASE = "two_phase"  # PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED
CHAIN = "chain"  # COMMIT/ROLLBACK AND CHAIN: a new transaction starts at once

FLAGS: frozenset[str] = frozenset(
    {
        NO_WHERE,
        SELECT_INTO,
        EXPLAIN,
        EXPLAIN_ANALYZE,
        WRITES_IN_CTE,
        PREPARED,
        LOCKING,
        CURSOR,
        LISTEN,
        UNLISTEN,
        NOTIFY,
        READ_WRITE,
        CHANGES_READ_ONLY,
        SEARCH_PATH,
        CLIENT_ENCODING,
        TWO_PHASE,
        CHAIN,
    }
)

# --- transaction effects (what a transaction statement does to the session's transaction state) ----------
BEGIN = "begin"
COMMIT = "commit"
ROLLBACK = "rollback"
SAVEPOINT = "savepoint"
RELEASE = "release"
ROLLBACK_TO = "rollback_to"
PREPARE = "prepare"  # PREPARE TRANSACTION: ends the current transaction, keeps it for a later COMMIT PREPARED

TRANSACTION_EFFECTS: frozenset[str] = frozenset(
    {BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ROLLBACK_TO, PREPARE}
)


def severity(kind: str) -> int:
    """Rank of a kind; unknown strings rank as opaque so a typo can never make something look harmless."""
    return KIND_SEVERITY.get(kind, KIND_SEVERITY[OPAQUE])


def strictest_kind(kinds: Iterable[str]) -> str | None:
    """The most severe of ``kinds`` (None for an empty iterable)."""
    strictest: str | None = None
    for kind in kinds:
        if strictest is None or severity(kind) > severity(strictest):
            strictest = kind
    return strictest


# --- statements whose kind is fixed by their parse-tree node type (libpg_query / pglast names) ----------
# The classifier still walks their subtrees, so a dangerous call inside one of them wins. Statements whose
# kind depends on their contents (SELECT, INSERT..., COPY, SET, EXPLAIN, DROP, ALTER TABLE ...) are decided
# in classify.py.
STATEMENT_KINDS: dict[str, tuple[str, str]] = {
    # ddl
    "AlterCollationStmt": (DDL, "ALTER COLLATION"),
    "AlterDatabaseRefreshCollStmt": (DDL, "ALTER DATABASE REFRESH COLLATION VERSION"),
    "AlterDatabaseStmt": (DDL, "ALTER DATABASE"),
    "AlterDomainStmt": (DDL, "ALTER DOMAIN"),
    "AlterEnumStmt": (DDL, "ALTER TYPE (enum)"),
    "AlterEventTrigStmt": (DDL, "ALTER EVENT TRIGGER"),
    "AlterExtensionContentsStmt": (DDL, "ALTER EXTENSION"),
    "AlterExtensionStmt": (DDL, "ALTER EXTENSION"),
    "AlterFdwStmt": (DDL, "ALTER FOREIGN DATA WRAPPER"),
    "AlterForeignServerStmt": (DDL, "ALTER SERVER"),
    "AlterFunctionStmt": (DDL, "ALTER FUNCTION"),
    "AlterObjectDependsStmt": (DDL, "ALTER ... DEPENDS ON EXTENSION"),
    "AlterObjectSchemaStmt": (DDL, "ALTER ... SET SCHEMA"),
    "AlterOpFamilyStmt": (DDL, "ALTER OPERATOR FAMILY"),
    "AlterOperatorStmt": (DDL, "ALTER OPERATOR"),
    "AlterPublicationStmt": (DDL, "ALTER PUBLICATION"),
    "AlterSeqStmt": (DDL, "ALTER SEQUENCE"),
    "AlterStatsStmt": (DDL, "ALTER STATISTICS"),
    "AlterSubscriptionStmt": (DDL, "ALTER SUBSCRIPTION"),
    "AlterTSConfigurationStmt": (DDL, "ALTER TEXT SEARCH CONFIGURATION"),
    "AlterTSDictionaryStmt": (DDL, "ALTER TEXT SEARCH DICTIONARY"),
    "AlterTableMoveAllStmt": (DDL, "ALTER ... ALL IN TABLESPACE"),
    "AlterTableSpaceOptionsStmt": (DDL, "ALTER TABLESPACE"),
    "AlterTypeStmt": (DDL, "ALTER TYPE"),
    "CommentStmt": (DDL, "COMMENT"),
    "CompositeTypeStmt": (DDL, "CREATE TYPE"),
    "CreateAmStmt": (DDL, "CREATE ACCESS METHOD"),
    "CreateCastStmt": (DDL, "CREATE CAST"),
    "CreateConversionStmt": (DDL, "CREATE CONVERSION"),
    "CreateDomainStmt": (DDL, "CREATE DOMAIN"),
    "CreateEnumStmt": (DDL, "CREATE TYPE (enum)"),
    "CreateEventTrigStmt": (DDL, "CREATE EVENT TRIGGER"),
    "CreateExtensionStmt": (DDL, "CREATE EXTENSION"),
    "CreateFdwStmt": (DDL, "CREATE FOREIGN DATA WRAPPER"),
    "CreateForeignServerStmt": (DDL, "CREATE SERVER"),
    "CreateForeignTableStmt": (DDL, "CREATE FOREIGN TABLE"),
    "CreateOpClassStmt": (DDL, "CREATE OPERATOR CLASS"),
    "CreateOpFamilyStmt": (DDL, "CREATE OPERATOR FAMILY"),
    "CreatePLangStmt": (DDL, "CREATE LANGUAGE"),
    "CreatePublicationStmt": (DDL, "CREATE PUBLICATION"),
    "CreateRangeStmt": (DDL, "CREATE TYPE (range)"),
    "CreateSchemaStmt": (DDL, "CREATE SCHEMA"),
    "CreateSeqStmt": (DDL, "CREATE SEQUENCE"),
    "CreateStatsStmt": (DDL, "CREATE STATISTICS"),
    "CreateStmt": (DDL, "CREATE TABLE"),
    "CreateSubscriptionStmt": (DDL, "CREATE SUBSCRIPTION"),
    "CreateTableSpaceStmt": (DDL, "CREATE TABLESPACE"),
    "CreateTransformStmt": (DDL, "CREATE TRANSFORM"),
    "CreateTrigStmt": (DDL, "CREATE TRIGGER"),
    "CreatedbStmt": (DDL, "CREATE DATABASE"),
    "DefineStmt": (DDL, "CREATE (aggregate, operator, type, collation or text search object)"),
    "ImportForeignSchemaStmt": (DDL, "IMPORT FOREIGN SCHEMA"),
    "IndexStmt": (DDL, "CREATE INDEX"),
    "RuleStmt": (DDL, "CREATE RULE"),
    "SecLabelStmt": (DDL, "SECURITY LABEL"),
    "ViewStmt": (DDL, "CREATE VIEW"),
    # dcl
    "AlterDatabaseSetStmt": (DCL, "ALTER DATABASE ... SET changes settings for every session"),
    "AlterDefaultPrivilegesStmt": (DCL, "ALTER DEFAULT PRIVILEGES"),
    "AlterOwnerStmt": (DCL, "ALTER ... OWNER TO changes privileges"),
    "AlterPolicyStmt": (DCL, "ALTER POLICY (row-level security)"),
    "AlterRoleSetStmt": (DCL, "ALTER ROLE ... SET"),
    "AlterRoleStmt": (DCL, "ALTER ROLE"),
    "AlterSystemStmt": (DCL, "ALTER SYSTEM rewrites the server configuration"),
    "AlterUserMappingStmt": (DCL, "ALTER USER MAPPING (foreign-server credentials)"),
    "CreatePolicyStmt": (DCL, "CREATE POLICY (row-level security)"),
    "CreateRoleStmt": (DCL, "CREATE ROLE"),
    "CreateUserMappingStmt": (DCL, "CREATE USER MAPPING (foreign-server credentials)"),
    "DropOwnedStmt": (DCL, "DROP OWNED drops every object a role owns and revokes its privileges"),
    "DropRoleStmt": (DCL, "DROP ROLE"),
    "DropUserMappingStmt": (DCL, "DROP USER MAPPING"),
    "GrantRoleStmt": (DCL, "GRANT or REVOKE role membership"),
    "ReassignOwnedStmt": (DCL, "REASSIGN OWNED"),
    # drop, truncate
    "DropSubscriptionStmt": (DROP, "DROP SUBSCRIPTION"),
    "DropTableSpaceStmt": (DROP, "DROP TABLESPACE"),
    "DropdbStmt": (DROP, "DROP DATABASE"),
    "TruncateStmt": (TRUNCATE, "TRUNCATE"),
    # write
    "RefreshMatViewStmt": (WRITE, "REFRESH MATERIALIZED VIEW"),
    # utility
    "CheckPointStmt": (UTILITY, "CHECKPOINT"),
    "ClosePortalStmt": (UTILITY, "CLOSE"),
    "ClusterStmt": (UTILITY, "CLUSTER"),
    "DeallocateStmt": (UTILITY, "DEALLOCATE"),
    "DeclareCursorStmt": (UTILITY, "DECLARE CURSOR"),
    "FetchStmt": (UTILITY, "FETCH or MOVE"),
    "ListenStmt": (UTILITY, "LISTEN"),
    "LockStmt": (UTILITY, "LOCK"),
    "NotifyStmt": (UTILITY, "NOTIFY"),
    "ReindexStmt": (UTILITY, "REINDEX"),
    "UnlistenStmt": (UTILITY, "UNLISTEN"),
    "VacuumStmt": (UTILITY, "VACUUM or ANALYZE"),
    # session
    "ConstraintsSetStmt": (SESSION, "SET CONSTRAINTS"),
    "VariableShowStmt": (SESSION, "SHOW"),
    # opaque: the classifier cannot see what runs
    "DoStmt": (OPAQUE, "DO runs an anonymous code block"),
    "ExecuteStmt": (OPAQUE, "EXECUTE runs a prepared statement"),
    # dangerous
    "LoadStmt": (DANGEROUS_FUNCTION, "LOAD loads a shared library into the server"),
}

# Flags that come with some of the statements above.
STATEMENT_FLAGS: dict[str, str] = {
    "DeclareCursorStmt": CURSOR,
    "ListenStmt": LISTEN,
    "NotifyStmt": NOTIFY,
    "UnlistenStmt": UNLISTEN,
}
