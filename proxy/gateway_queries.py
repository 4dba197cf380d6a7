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
