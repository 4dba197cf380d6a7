"""The PostgreSQL schema (in its own schema, `hoop`), version by version. Never edit a released version."""

from __future__ import annotations

from proxy.store.migrations import Migration

SCHEMA = "hoop"
NOTIFY_CHANNEL = "hoop_approvals"
# Any 64-bit key unique to this purpose: every gateway migrating the same database serialises on it.
MIGRATION_LOCK_KEY = 0x686F6F7053746F72  # "hoopStor"

SCHEMA_VERSION_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
    " version integer PRIMARY KEY, description text NOT NULL,"
    " applied_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp()))"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "approvals with a change log and NOTIFY, sessions index, grants, append-only audit log",
        (
            f"""CREATE TABLE {SCHEMA}.approvals (
                id text PRIMARY KEY,
                session_id text NOT NULL,
                requester text NOT NULL,
                requester_groups text[] NOT NULL,
                connection text NOT NULL,
                protocol text NOT NULL,
                statement text NOT NULL,
                kind text NOT NULL,
                reason text NOT NULL,
                rule text NOT NULL,
                approvers text[] NOT NULL,
                created_at double precision NOT NULL,
                expires_at double precision NOT NULL,
                state text NOT NULL
                    CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
                decider text,
                decided_at double precision,
                justification text,
                gateway_id text NOT NULL DEFAULT ''
            )""",
            f"CREATE INDEX approvals_by_created ON {SCHEMA}.approvals (created_at)",
            f"CREATE INDEX approvals_pending_by_expiry ON {SCHEMA}.approvals (expires_at)"
            " WHERE state = 'pending'",
            f"CREATE INDEX approvals_pending_by_gateway ON {SCHEMA}.approvals (gateway_id)"
            " WHERE state = 'pending'",
            f"""CREATE TABLE {SCHEMA}.approval_changes (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                approval_id text NOT NULL,
                state text NOT NULL,
                at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
            )""",
            f"CREATE INDEX approval_changes_by_time ON {SCHEMA}.approval_changes (at)",
            # NOTIFY is transactional: listeners hear about a change only once it is committed.
            f"""CREATE FUNCTION {SCHEMA}.log_approval_change() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP = 'UPDATE' AND OLD.state IS NOT DISTINCT FROM NEW.state THEN
                        RETURN NULL;
                    END IF;
                    INSERT INTO {SCHEMA}.approval_changes (approval_id, state) VALUES (NEW.id, NEW.state);
                    PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.id);
                    RETURN NULL;
                END
                $$""",
            f"""CREATE TRIGGER approvals_log_change AFTER INSERT OR UPDATE OF state ON {SCHEMA}.approvals
                FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.log_approval_change()""",
            f"""CREATE TABLE {SCHEMA}.sessions (
                id text PRIMARY KEY,
                gateway_id text NOT NULL,
                protocol text NOT NULL,
                connection text NOT NULL,
                identity text NOT NULL,
                groups text[] NOT NULL,
                client_address text NOT NULL,
                started_at double precision NOT NULL,
                ended_at double precision,
                end_reason text,
                recording_path text
            )""",
            f"CREATE INDEX sessions_by_start ON {SCHEMA}.sessions (started_at)",
            f"CREATE INDEX sessions_active_by_start ON {SCHEMA}.sessions (started_at) WHERE ended_at IS NULL",
            f"""CREATE TABLE {SCHEMA}.grants (
                id text PRIMARY KEY,
                group_name text NOT NULL,
                connection text NOT NULL,
                allow text[] NOT NULL,
                created_by text NOT NULL,
                created_at double precision NOT NULL,
                expires_at double precision NOT NULL,
                revoked_at double precision
            )""",
            f"CREATE INDEX grants_live_by_expiry ON {SCHEMA}.grants (expires_at) WHERE revoked_at IS NULL",
            f"""CREATE TABLE {SCHEMA}.audit (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at double precision NOT NULL,
                actor text NOT NULL,
                action text NOT NULL,
                session_id text,
                connection text,
                detail jsonb NOT NULL
            )""",
            f"CREATE INDEX audit_by_time ON {SCHEMA}.audit (at)",
            f"""CREATE FUNCTION {SCHEMA}.refuse_audit_change() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'the audit log is append-only';
                END
                $$""",
            f"""CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.audit
                FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_audit_change()""",
        ),
    ),
)
