"""Catalogue of PostgreSQL built-in functions and settings that make a statement more than a read.

Function names are matched lowercased and without regard to their schema: a user function that happens to be
called ``public.pg_read_file`` is treated like the built-in, which can only make a statement stricter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from proxy.policy import kinds

# name -> (kind, why). "why" completes the sentence "calls <name> (<why>)".
_BY_NAME: dict[str, tuple[str, str]] = {}


def _register(kind: str, why: str, names: str) -> None:
    for name in names.split():
        _BY_NAME[name] = (kind, why)


_register(
    kinds.DANGEROUS_FUNCTION,
    "reads or lists server files",
    "pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_ls_logdir pg_ls_waldir pg_ls_tmpdir"
    " pg_ls_archive_statusdir pg_ls_logicalsnapdir pg_ls_logicalmapdir pg_ls_replslotdir pg_ls_summariesdir"
    " pg_logdir_ls pg_show_all_file_settings",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "reads or writes server files",
    "lo_import lo_export pg_file_write pg_file_rename pg_file_unlink pg_file_sync",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "signals other server processes",
    "pg_terminate_backend pg_cancel_backend pg_log_backend_memory_contexts pg_signal_backend",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "changes server configuration or state",
    "pg_reload_conf pg_rotate_logfile pg_rotate_logfile_old pg_promote pg_switch_wal pg_switch_xlog"
    " pg_create_restore_point pg_backup_start pg_backup_stop pg_start_backup pg_stop_backup"
    " pg_wal_replay_pause pg_wal_replay_resume pg_xlog_replay_pause pg_xlog_replay_resume"
    " pg_log_standby_snapshot pg_stop_making_pinned_objects pg_nextoid",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "manages replication or decodes every change in the database",
    "pg_create_physical_replication_slot pg_create_logical_replication_slot pg_drop_replication_slot"
    " pg_copy_physical_replication_slot pg_copy_logical_replication_slot pg_replication_slot_advance"
    " pg_sync_replication_slots pg_logical_emit_message pg_logical_slot_get_changes"
    " pg_logical_slot_peek_changes pg_logical_slot_get_binary_changes pg_logical_slot_peek_binary_changes",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "connects to another server",
    "dblink dblink_exec dblink_connect dblink_connect_u dblink_disconnect dblink_open dblink_fetch"
    " dblink_close dblink_send_query dblink_get_result dblink_get_connections dblink_get_notify"
    " dblink_is_busy dblink_cancel_query dblink_error_message",
)
_register(
    kinds.DANGEROUS_FUNCTION,
    "erases activity statistics",
    "pg_stat_reset pg_stat_reset_shared pg_stat_reset_single_table_counters"
    " pg_stat_reset_single_function_counters pg_stat_reset_slru pg_stat_reset_replication_slot"
    " pg_stat_reset_subscription_stats pg_stat_reset_backend_stats pg_stat_statements_reset",
)
_register(
    kinds.WRITE,
    "changes data",
    "nextval setval pg_restore_relation_stats pg_restore_attribute_stats pg_clear_relation_stats"
    " pg_clear_attribute_stats pg_set_relation_stats pg_set_attribute_stats brin_summarize_new_values"
    " brin_summarize_range brin_desummarize_range gin_clean_pending_list pg_extension_config_dump"
    " pg_import_system_collations",
)
# The large-object API is write-capable as a whole: descriptors can be opened for writing.
_register(
    kinds.WRITE,
    "uses the large-object API",
    "lo_close lo_creat lo_create lo_from_bytea lo_get lo_lseek lo_lseek64 lo_open lo_put lo_tell lo_tell64"
    " lo_truncate lo_truncate64 lo_unlink loread lowrite",
)
_register(
    kinds.OPAQUE,
    "runs SQL text the classifier cannot see",
    "query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml cursor_to_xmlschema"
    " table_to_xml table_to_xmlschema table_to_xml_and_xmlschema schema_to_xml schema_to_xmlschema"
    " schema_to_xml_and_xmlschema database_to_xml database_to_xmlschema database_to_xml_and_xmlschema"
    " ts_stat ts_rewrite pg_background_launch",
)
_register(
    kinds.UTILITY,
    "takes or releases an advisory lock",
    "pg_advisory_lock pg_advisory_lock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared"
    " pg_try_advisory_lock pg_try_advisory_lock_shared pg_try_advisory_xact_lock"
    " pg_try_advisory_xact_lock_shared pg_advisory_unlock pg_advisory_unlock_shared pg_advisory_unlock_all",
)
_register(kinds.UTILITY, "sends a notification", "pg_notify")

# Families matched by prefix, so functions added by a later server or extension version are still caught.
# The flag says whether the prefix is distinctive enough to match a bare field name too (attribute notation,
# ``x.pg_read_file``): ``lo_`` and ``dblink`` are not, a column may well be called ``lo_bound``.
_PREFIXES: tuple[tuple[str, str, str, bool], ...] = (
    ("dblink", kinds.DANGEROUS_FUNCTION, "connects to another server", False),
    ("pg_ls_", kinds.DANGEROUS_FUNCTION, "lists server directories", True),
    ("pg_read_", kinds.DANGEROUS_FUNCTION, "reads server files", True),
    ("pg_file_", kinds.DANGEROUS_FUNCTION, "writes server files", True),
    ("pg_stat_reset", kinds.DANGEROUS_FUNCTION, "erases activity statistics", True),
    ("pg_replication_origin_", kinds.DANGEROUS_FUNCTION, "manages replication", True),
    ("binary_upgrade_", kinds.DANGEROUS_FUNCTION, "rewrites catalog state", True),
    ("pg_advisory_", kinds.UTILITY, "takes or releases an advisory lock", True),
    ("pg_try_advisory_", kinds.UTILITY, "takes an advisory lock", True),
    ("lo_", kinds.WRITE, "uses the large-object API", False),
)

# Extension functions that are only recognisable with their schema (bare names are too common).
_QUALIFIED: dict[str, tuple[str, str]] = {
    "cron.schedule": (kinds.OPAQUE, "schedules SQL text to run later"),
    "cron.schedule_in_database": (kinds.OPAQUE, "schedules SQL text to run later"),
    "cron.alter_job": (kinds.OPAQUE, "changes SQL text scheduled to run later"),
}

SET_CONFIG = "set_config"


@lru_cache(maxsize=8192)
def builtin_function_kind(
    name: str, schema: str | None = None, attribute: bool = False
) -> tuple[str, str] | None:
    """Kind and reason for a call to ``name`` (lowercased), or None when the built-in only reads.

    ``attribute`` is True when the name was written as a field (``(expr).name``), which PostgreSQL also
    resolves as a one-argument function call.
    """
    if schema is not None and schema != "pg_catalog":
        found = _QUALIFIED.get(f"{schema}.{name}")
        if found is not None:
            return found[0], _reason(name, found[1], attribute)
    found = _BY_NAME.get(name)
    if found is not None:
        return found[0], _reason(name, found[1], attribute)
    for prefix, kind, why, matches_fields in _PREFIXES:
        if name.startswith(prefix) and (matches_fields or not attribute):
            return kind, _reason(name, why, attribute)
    return None


def _reason(name: str, why: str, attribute: bool) -> str:
    if attribute:
        return f"may call {name} through attribute notation ({why})"
    return f"calls {name} ({why})"


# --- settings -------------------------------------------------------------------------------------------

READ_ONLY_SETTINGS: frozenset[str] = frozenset({"default_transaction_read_only", "transaction_read_only"})

# Settings that change who the session is, bypass checks, hide activity or load code into the server.
SECURITY_SETTINGS: frozenset[str] = frozenset(
    {
        "role",
        "session_authorization",
        "session_replication_role",  # "replica" disables triggers, foreign keys included
        "lo_compat_privileges",
        "allow_system_table_mods",
        "allow_in_place_tablespaces",
        "ignore_system_indexes",
        "ignore_checksum_failure",
        "ignore_invalid_pages",
        "zero_damaged_pages",
        "dynamic_library_path",
        "local_preload_libraries",
        "session_preload_libraries",
        "shared_preload_libraries",
        "event_triggers",
        "restrict_nonsystem_relation_kind",
        "jit_provider",
    }
)
SECURITY_SETTING_PREFIXES: tuple[str, ...] = ("log_", "ssl", "syslog_", "track_", "pgaudit.")

SEARCH_PATH = "search_path"
CLIENT_ENCODING = "client_encoding"
_UTF8_NAMES = frozenset({"utf8", "unicode"})


@dataclass(frozen=True, slots=True)
class SettingRisk:
    """What changing one setting means for policy."""

    sensitive: bool  # True: dcl as a SET statement, dangerous_function through set_config
    flags: frozenset[str]
    why: str


_ORDINARY = SettingRisk(False, frozenset(), "")


def setting_risk(name: str, values: Sequence[str] | None) -> SettingRisk:
    """Risk of setting ``name`` (lowercased) to ``values``.

    ``values`` is ``()`` for RESET / SET ... TO DEFAULT, the literal values when they are known, and None when
    they are not (an expression, a parameter): unknown values are judged as the worst they could be.
    """
    if name in READ_ONLY_SETTINGS:
        return SettingRisk(True, frozenset({kinds.CHANGES_READ_ONLY}), "changes read-only mode")
    if name in SECURITY_SETTINGS or name.startswith(SECURITY_SETTING_PREFIXES):
        return SettingRisk(True, frozenset(), "security-sensitive setting")
    if name == SEARCH_PATH:
        flags = frozenset({kinds.SEARCH_PATH})
        if values is None or search_path_shadows_catalog(values):
            return SettingRisk(True, flags, "puts schemas before pg_catalog, which can shadow built-ins")
        return SettingRisk(False, flags, "")
    if name == CLIENT_ENCODING:
        flags = frozenset({kinds.CLIENT_ENCODING})
        if values is None or any(_normalise_encoding(value) not in _UTF8_NAMES for value in values):
            return SettingRisk(True, flags, "the server would decode later statements differently")
        return SettingRisk(False, flags, "")
    return _ORDINARY


def split_search_path(value: str) -> list[str]:
    """The schema names in a search_path string as set_config receives it: ``'a, "B", pg_catalog'``."""
    return [part.strip() for part in value.split(",") if part.strip()]


def search_path_shadows_catalog(values: Iterable[str]) -> bool:
    """True when pg_catalog is named explicitly after another schema (which then wins over built-ins)."""
    schemas: list[str] = []
    for value in values:
        schemas.extend(split_search_path(value))
    for position, schema in enumerate(schemas):
        if schema.strip('"').lower() == "pg_catalog":
            return position > 0
    return False


def _normalise_encoding(value: str) -> str:
    return value.strip().strip("'\"").lower().replace("-", "").replace("_", "")
