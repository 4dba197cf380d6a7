"""The SQLite schema, version by version. Never edit a released version: append a new one."""

from __future__ import annotations

from proxy.store.migrations import Migration

# Unix seconds with sub-second precision from SQLite's own clock (unixepoch('subsec') needs 3.42).
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "approvals with a change log, sessions index, grants, append-only audit log",
        (
            """CREATE TABLE approvals (
                id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                requester TEXT NOT NULL,
                requester_groups TEXT NOT NULL,
                connection TEXT NOT NULL,
                protocol TEXT NOT NULL,
                statement TEXT NOT NULL,
                kind TEXT NOT NULL,
                reason TEXT NOT NULL,
                rule TEXT NOT NULL,
                approvers TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                state TEXT NOT NULL
                    CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
                decider TEXT,
                decided_at REAL,
                justification TEXT,
                gateway_id TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX approvals_by_created ON approvals (created_at)",
            "CREATE INDEX approvals_pending_by_expiry ON approvals (expires_at) WHERE state = 'pending'",
            "CREATE INDEX approvals_pending_by_gateway ON approvals (gateway_id) WHERE state = 'pending'",
            # Every creation and state change, in commit order (SQLite has one writer at a time), so a
            # follower in any process can resume from the last number it saw.
            """CREATE TABLE approval_changes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                approval_id TEXT NOT NULL,
                state TEXT NOT NULL,
                at REAL NOT NULL
            )""",
            "CREATE INDEX approval_changes_by_time ON approval_changes (at)",
            f"""CREATE TRIGGER approvals_log_insert AFTER INSERT ON approvals BEGIN
                INSERT INTO approval_changes (approval_id, state, at) VALUES (NEW.id, NEW.state, {_NOW});
            END""",
            f"""CREATE TRIGGER approvals_log_state AFTER UPDATE OF state ON approvals
                WHEN OLD.state IS NOT NEW.state BEGIN
                INSERT INTO approval_changes (approval_id, state, at) VALUES (NEW.id, NEW.state, {_NOW});
            END""",
            """CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                gateway_id TEXT NOT NULL,
                protocol TEXT NOT NULL,
                connection TEXT NOT NULL,
                identity TEXT NOT NULL,
                groups TEXT NOT NULL,
                client_address TEXT NOT NULL,
                started_at REAL NOT NULL,
                ended_at REAL,
                end_reason TEXT,
                recording_path TEXT
            )""",
            "CREATE INDEX sessions_by_start ON sessions (started_at)",
            "CREATE INDEX sessions_active_by_start ON sessions (started_at) WHERE ended_at IS NULL",
            """CREATE TABLE grants (
                id TEXT PRIMARY KEY,
                group_name TEXT NOT NULL,
                connection TEXT NOT NULL,
                allow TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                revoked_at REAL
            )""",
            "CREATE INDEX grants_live_by_expiry ON grants (expires_at) WHERE revoked_at IS NULL",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                session_id TEXT,
                connection TEXT,
                detail TEXT NOT NULL
            )""",
            "CREATE INDEX audit_by_time ON audit (at)",
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
                SELECT RAISE(ABORT, 'the audit log is append-only');
            END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
                SELECT RAISE(ABORT, 'the audit log is append-only');
            END""",
        ),
    ),
)
