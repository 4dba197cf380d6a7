"""SQL the gateway itself runs on upstream connections (never on behalf of a client)."""

# How long a connection's list of user-defined volatile functions (which make a SELECT a write) is trusted.
WRITE_FUNCTIONS_TTL = 300.0
WRITE_FUNCTIONS_SQL = (
    "SELECT n.nspname, p.proname FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE p.provolatile = 'v' AND p.prokind IN ('f', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype"
)

# The upstream's catalog for column rules (proxy/masking/table_names.py), as rows of five text columns:
# ("t", oid, schema, name, relkind) per relation that can appear in results, ("c", oid, column number, name,
# NULL) per live column of one, ("a", oid, parent oid, NULL, NULL) per direct parent of a partition or
# inheritance child.
_RELATION_KINDS = "('r', 'p', 'v', 'm', 'f')"
CATALOG_SQL = (
    "SELECT 't', c.oid::text, n.nspname::text, c.relname::text, c.relkind::text FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN {_RELATION_KINDS} "
    "UNION ALL SELECT 'c', a.attrelid::text, a.attnum::text, a.attname::text, NULL "
    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    f"WHERE c.relkind IN {_RELATION_KINDS} AND a.attnum > 0 AND NOT a.attisdropped "
    "UNION ALL SELECT 'a', inhrelid::text, inhparent::text, NULL, NULL FROM pg_catalog.pg_inherits"
)
# One row: a digest of everything CATALOG_SQL reads. Run at every session start of a policy with column rules,
# so a table renamed over another (a nightly rebuild) is known by its new name from the next session on.
# SHA-256, not md5: md5() fails on a server in FIPS mode.
CATALOG_FINGERPRINT_SQL = (
    "SELECT encode(pg_catalog.sha256(convert_to(coalesce((SELECT string_agg(c.oid::text || '.' "
    "|| n.nspname::text || '.' || c.relname::text || '.' || c.relkind::text, ',' ORDER BY c.oid) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN {_RELATION_KINDS}), '') || '|' || "
    "coalesce((SELECT string_agg(a.attrelid::text || '.' || a.attnum::text || '.' || a.attname::text, ',' "
    "ORDER BY a.attrelid, a.attnum) FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    f"WHERE c.relkind IN {_RELATION_KINDS} AND a.attnum > 0 AND NOT a.attisdropped), '') || '|' || "
    "coalesce((SELECT string_agg(inhrelid::text || '.' || inhparent::text, ',' ORDER BY inhrelid, inhparent) "
    "FROM pg_catalog.pg_inherits), ''), 'UTF8')), 'hex')"
)
