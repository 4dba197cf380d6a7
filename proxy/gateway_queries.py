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

# The columns of relations that can appear in results (tables, partitioned tables, views, materialized views,
# foreign tables), for column rules (proxy/masking/table_names.py): a rule must match a column by its own
# name even when a query renames it (`SELECT ssn AS s FROM users`). A relation without columns still gets a
# row, so that its OID is known.
TABLE_NAMES_SQL = (
    "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
)
