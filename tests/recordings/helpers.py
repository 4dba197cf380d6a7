"""Helpers shared by the recording tests: headers, writing a recording in one call, realistic sessions."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recordings.pgwire import encode_datarow
from recordings.writer import RecordingWriter


def sql_header(**extra: Any) -> dict[str, Any]:
    header = {
        "session_id": "sess-sql-1",
        "protocol": "postgres",
        "connection": "appdb",
        "identity": {"subject": "ci-bot", "issuer": "local"},
        "groups": ["ci-agents"],
        "gateway_id": "gw-test",
        "storage_masking": {"mask": ["email"]},
    }
    header.update(extra)
    return header


def ssh_header(**extra: Any) -> dict[str, Any]:
    header = {
        "session_id": "sess-ssh-1",
        "protocol": "ssh",
        "connection": "web1",
        "identity": "ci-bot",
        "groups": ["ci-agents"],
        "gateway_id": "gw-test",
    }
    header.update(extra)
    return header


def write_recording(
    path: Path,
    events: list[list],
    key: Ed25519PrivateKey,
    header: dict[str, Any] | None = None,
    *,
    end_event: list | None = None,
    **writer_options: Any,
) -> Path:
    """Write ``events`` to a sealed recording at ``path`` and return the path."""
    writer = RecordingWriter(path, header or sql_header(), key, durability="none", **writer_options)
    writer.start()
    for event in events:
        writer.append(list(event))
    writer.close(end_event)
    assert writer.error is None, writer.error
    return path


def sql_session(count: int, seed: int = 7) -> list[list]:
    """A plausible agent session: decisions, queries, result rows, completions, one held write."""
    rng = random.Random(seed)
    events: list[list] = []
    t_us = 0
    for number in range(count):
        t_us += rng.randint(100, 50_000)
        if number % 7 == 3:
            sql = f"UPDATE orders SET status = 'shipped' WHERE id = {rng.randint(1, 10**6)}"
            request = f"req-{number}"
            events.append(
                [
                    t_us,
                    "policy.decision",
                    {
                        "statement": sql,
                        "kind": "write",
                        "decision": "review",
                        "rule": "ci-agents/appdb",
                        "flags": [],
                    },
                ]
            )
            events.append([t_us, "pg.query", sql])
            events.append(
                [
                    t_us + 1,
                    "approval.requested",
                    {
                        "id": request,
                        "statement": sql,
                        "kind": "write",
                        "rule": "ci-agents/appdb",
                        "requester": "ci-bot",
                        "expires_at": "2030-01-01T00:00:00Z",
                    },
                ]
            )
            events.append(
                [
                    t_us + 900,
                    "approval.decided",
                    {
                        "id": request,
                        "state": "approved",
                        "decider": "alice",
                        "reason": "ticket 42",
                        "decided_at": "2030-01-01T00:00:01Z",
                    },
                ]
            )
            events.append([t_us + 950, "pg.complete", "UPDATE 1"])
            t_us += 950
            continue
        sql = f"SELECT id, email, name FROM customers WHERE account_id = {rng.randint(1, 500)}"
        events.append(
            [
                t_us,
                "policy.decision",
                {
                    "statement": sql,
                    "kind": "read",
                    "decision": "allow",
                    "rule": "ci-agents/appdb",
                    "flags": [],
                },
            ]
        )
        events.append([t_us, "pg.query", sql])
        events.append([t_us + 20, "pg.rowdesc", ["id", "email", "name"], [23, 25, 25]])
        rows = rng.randint(0, 6)
        raw = b"".join(
            encode_datarow(
                [str(rng.randint(1, 99999)).encode(), b"****@****.com", rng.choice([b"Ada", b"Linus", None])]
            )
            for _ in range(rows)
        )
        events.append([t_us + 40, "pg.rows", rows, raw])
        events.append([t_us + 50, "pg.complete", f"SELECT {rows}"])
        if rows:
            events.append([t_us + 50, "mask.summary", {"email": rows}])
        t_us += 50
    return events
