"""`hoop-tui grants` end to end: a held kind runs without review while a grant lasts, in the same live
session, and review is back the instant it expires or is revoked."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg

from tests.conftest import RunningGateway
from tests.control.conftest import cli, cli_json, control_address, pending_via_cli
from tests.pg_fixture import UpstreamPostgres


def insert_in_background(agent: psycopg.Connection, row_id: int) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(agent.execute(f"INSERT INTO victims VALUES ({row_id}, 'held')").rowcount)
        except psycopg.Error as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    return worker, outcome


def deny_pending(address: str, token: str) -> dict[str, Any]:
    (request,) = pending_via_cli(address, token)
    denied = cli(
        "approvals", "deny", request["id"], "--reason", "test over", "--control", address, token=token
    )
    assert denied.returncode == 0, denied.stderr
    return request


def test_grant_lets_held_kind_run_until_expiry(controlled: RunningGateway, seeded: UpstreamPostgres) -> None:
    address = control_address(controlled)
    oncall = controlled.token(subject="alice", groups=("oncall",))
    with psycopg.connect(controlled.dsn(), autocommit=True) as agent:
        added = cli(
            "grants", "add", "ci-agents", "appdb", "--allow", "write", "--for", "2s", "--json",
            "--control", address, token=oncall,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        granted_until = json.loads(added.stdout)["expires_at"]
        started = time.monotonic()
        assert agent.execute("INSERT INTO victims VALUES (40, 'granted')").rowcount == 1
        assert time.monotonic() - started < 1.5, "no hold while the grant lasts"
        assert cli_json("approvals", "list", "--control", address, token=oncall) == []
        (listed,) = cli_json("grants", "list", "--control", address, token=oncall)
        assert (listed["group"], listed["connection"], listed["allow"]) == ("ci-agents", "appdb", ["write"])
        assert listed["created_by"] == "alice"

        time.sleep(max(0.0, granted_until - time.time()) + 0.1)
        worker, outcome = insert_in_background(agent, 41)
        deny_pending(address, oncall)
        worker.join(30)
        assert isinstance(outcome[0], psycopg.errors.InsufficientPrivilege), "review is back after expiry"
    assert seeded.execute("SELECT id FROM victims WHERE id >= 40") == [(40,)]
    assert cli_json("grants", "list", "--control", address, token=oncall) == []
    audit = "".join(path.read_text() for path in (controlled.state_dir / "audit").glob("*.jsonl"))
    assert '"action":"grant.add"' in audit and '"action":"grant.expired"' in audit


def test_revoked_grant_restores_review_at_once(controlled: RunningGateway, seeded: UpstreamPostgres) -> None:
    address = control_address(controlled)
    admin = controlled.token(subject="root", groups=("admins",))
    oncall = controlled.token(subject="alice", groups=("oncall",))
    with psycopg.connect(controlled.dsn(), autocommit=True) as agent:
        grant = cli_json(
            "grants", "add", "ci-agents", "appdb", "--allow", "write,read", "--for", "1h",
            "--control", address, token=admin,
        )  # fmt: skip
        assert grant["allow"] == ["write", "read"]
        assert agent.execute("UPDATE victims SET name = 'g' WHERE id = 3").rowcount == 1
        revoked = cli("grants", "revoke", grant["id"], "--control", address, token=oncall)
        assert revoked.returncode == 0 and revoked.stdout.strip() == f"{grant['id']} revoked"
        worker, outcome = insert_in_background(agent, 50)
        deny_pending(address, oncall)
        worker.join(30)
        assert isinstance(outcome[0], psycopg.errors.InsufficientPrivilege)
    assert seeded.execute("SELECT name FROM victims WHERE id = 3") == [("g",)]
    unknown = cli("grants", "revoke", "g0000000000", "--control", address, token=admin)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "hoop-tui: no grant g0000000000"


def test_grants_that_are_not_allowed_are_refused(controlled: RunningGateway) -> None:
    address = control_address(controlled)
    oncall = controlled.token(subject="alice", groups=("oncall",))
    refusals = [
        (
            ("auditors",),
            ["ci-agents", "appdb", "--allow", "write"],
            "granting access needs the admin or approver role",
        ),
        (("oncall",), ["ci-agents", "appdb", "--allow", "drop"], "policy denies drop for ci-agents on appdb"),
        (("oncall",), ["ci-agents", "appdb", "--allow", "exec"], "'exec' is not a postgres kind"),
        (("oncall",), ["ci-agents", "nodb", "--allow", "write"], "no connection named 'nodb'"),
        (("oncall",), ["developers", "appdb", "--allow", "write"], "no policy admits developers on appdb"),
        (("oncall", "ci-agents"), ["ci-agents", "appdb", "--allow", "write"], "a group you belong to"),
        (("admins",), ["*", "appdb", "--allow", "write"], "a grant names one group"),
    ]
    for groups, args, message in refusals:
        token = controlled.token(subject="someone", groups=groups)
        result = cli("grants", "add", *args, "--for", "5m", "--control", address, token=token)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr, (message, result.stderr)
    grant_write = ("grants", "add", "ci-agents", "appdb", "--allow", "write", "--control", address)
    too_long = cli(*grant_write, "--for", "2d", token=oncall)
    assert too_long.returncode == 1 and "a grant lasts from 1s to 1d" in too_long.stderr
    bad_duration = cli(*grant_write, "--for", "soon", token=oncall)
    assert bad_duration.returncode == 2 and "--for" in bad_duration.stderr
    assert cli_json("grants", "list", "--control", address, token=oncall) == []
