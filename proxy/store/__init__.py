"""The shared state store: approvals, sessions index, grants and audit log, on SQLite or PostgreSQL."""
