"""SVG snapshots of the console's main screens at 80x24 and 160x48, fed from an in-memory control API.

Everything in the picture is fixed: the clock is frozen, ids and times are made up here, and the player's
recording is signed with a fixed key. Regenerate after a deliberate change with `--snapshot-update`, and
look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual.pilot import Pilot

from hoop_tui.app import HoopApp, make_replay_app
from hoop_tui.screens.session_view import SessionViewScreen
from hoop_tui.widgets.approval_queue import ApprovalQueue
from hoop_tui.widgets.session_feed import SessionFeed
from hoop_tui.widgets.session_table import SessionTable
from recordings.pgwire import encode_datarow
from recordings.writer import RecordingWriter
from tests.tui.conftest import FrozenClock
from tests.tui.fake_control import FakeControl, fake_console
from tests.tui.test_approvals_screen import until

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
SECOND = 1_000_000
ALLOW_READ = "policies[0] (groups ci-agents) allow: read"
REVIEW_WRITE = "policies[0] (groups ci-agents) review: write"
DENY_DROP = "policies[0] (groups ci-agents) deny: drop"

SESSIONS = [
    {
        "id": "a1b2c3d4e5f60718",
        "identity": "ci-bot",
        "groups": ["ci-agents"],
        "connection": "appdb",
        "protocol": "postgres",
        "client_address": "10.0.0.7:51234",
        "started_at": NOW - 300,
        "statements": 42,
        "rows": 1234,
        "bytes": 56_789,
        "held": 1,
        "live": True,
    },
    {
        "id": "0f1e2d3c4b5a6978",
        "identity": "deploy-agent",
        "groups": ["ci-agents", "deployers"],
        "connection": "web1",
        "protocol": "ssh",
        "client_address": "10.0.0.9:40022",
        "started_at": NOW - 60,
        "statements": 3,
        "rows": 0,
        "bytes": 2_048,
        "held": 0,
        "live": True,
    },
]

APPROVALS = [
    {
        "id": "req-0001",
        "state": "pending",
        "requester": "ci-bot",
        "connection": "appdb",
        "protocol": "postgres",
        "statement": "UPDATE customers SET balance = balance + 10 WHERE id = 1",
        "kind": "write",
        "reason": "",
        "rule": REVIEW_WRITE,
        "created_at": NOW - 25,
        "expires_at": NOW + 95,
        "session": "a1b2c3d4e5f60718",
    },
    {
        "id": "req-0002",
        "state": "pending",
        "requester": "deploy-agent",
        "connection": "web1",
        "protocol": "ssh",
        "statement": "systemctl restart nginx",
        "kind": "exec",
        "reason": "",
        "rule": "policies[1] (groups ci-agents) review_commands: systemctl restart *",
        "created_at": NOW - 5,
        "expires_at": NOW + 295,
        "session": "0f1e2d3c4b5a6978",
    },
]


def customer_rows() -> bytes:
    return b"".join(
        encode_datarow([str(n).encode(), name.encode(), b"<email>"])
        for n, name in ((1, "Ada Lovelace"), (2, "Grace Hopper"), (3, "Alan Turing"))
    )


PG_EVENTS = [
    [0, "pg.query", "SELECT id, name, email FROM customers ORDER BY id LIMIT 3"],
    [150, "policy.decision", {"decision": "allow", "kind": "read", "rule": ALLOW_READ, "flags": []}],
    [900, "pg.rowdesc", ["id", "name", "email"], [23, 25, 25]],
    [1_000, "pg.rows", 3, customer_rows()],
    [1_100, "pg.complete", "SELECT 3"],
    [1_200, "mask.summary", {"email": 3}],
    [2 * SECOND, "pg.query", "UPDATE customers SET balance = balance + 10 WHERE id = 1"],
    [2 * SECOND + 100, "policy.decision", {"decision": "review", "kind": "write", "rule": REVIEW_WRITE}],
    [2 * SECOND + 200, "approval.requested", {"id": "req-0001", "kind": "write", "expires_at": NOW + 95}],
    [
        9 * SECOND,
        "approval.decided",
        {"id": "req-0001", "state": "approved", "decider": "you", "reason": None},
    ],
    [9 * SECOND + 800, "pg.complete", "UPDATE 1"],
    [12 * SECOND, "pg.query", "DROP TABLE orders"],
    [12 * SECOND + 100, "policy.decision", {"decision": "deny", "kind": "drop", "rule": DENY_DROP}],
    [
        12 * SECOND + 200,
        "pg.error",
        {"S": "ERROR", "C": "42501", "M": "hoop: statement denied by policy (drop)"},
    ],
]


SSH_EVENTS = [
    [0, "ssh.resize", 60, 8],
    [100, "ssh.exec", "systemctl status nginx"],
    [200, "policy.decision", {"decision": "allow", "kind": "exec", "rule": "policies[1] allow_commands"}],
    [
        300,
        "ssh.output",
        "stdout",
        b"\x1b[1;32m\xe2\x97\x8f\x1b[0m nginx.service - A high performance web server\r\n",
    ],
    [400, "ssh.output", "stdout", b"     Active: \x1b[32mactive (running)\x1b[0m since Fri 2027-01-15\r\n"],
    [500, "ssh.exit", 0],
    [2 * SECOND, "ssh.exec", "systemctl restart nginx"],
    [2 * SECOND + 100, "policy.decision", {"decision": "review", "kind": "exec", "rule": "review_commands"}],
    [2 * SECOND + 200, "approval.requested", {"id": "req-0002", "expires_at": NOW + 295}],
]


def console(start_on: str) -> HoopApp:
    control = FakeControl(
        sessions=SESSIONS,
        approvals=APPROVALS,
        session_events={SESSIONS[0]["id"]: PG_EVENTS, SESSIONS[1]["id"]: SSH_EVENTS},
    )
    return fake_console(control, start_on=start_on, clock=FrozenClock(NOW))


def pending_requests(app: HoopApp) -> int:
    queues = app.screen.query(ApprovalQueue)
    return len(queues.first().requests) if queues else 0


def loaded_sessions(app: HoopApp) -> int:
    tables = app.screen.query(SessionTable)
    return len(tables.first().shown) if tables else 0


async def settle(pilot: Pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_approvals_with_pending_requests(snap_compare, size: tuple[int, int]) -> None:
    app = console("approvals")

    async def loaded(pilot: Pilot) -> None:
        await until(pilot, lambda: pending_requests(app) == 2)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_sessions(snap_compare, size: tuple[int, int]) -> None:
    app = console("sessions")

    async def loaded(pilot: Pilot) -> None:
        await until(pilot, lambda: loaded_sessions(app) == 2)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_session_view(snap_compare, size: tuple[int, int]) -> None:
    app = console("sessions")

    async def opened(pilot: Pilot) -> None:
        await until(pilot, lambda: loaded_sessions(app) == 2)
        app.screen.query_one(SessionTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionViewScreen))
        await until(pilot, lambda: len(app.screen.query_one(SessionFeed).entries) == 3)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=opened)


@pytest.mark.parametrize("size", SIZES)
def test_ssh_session_view(snap_compare, size: tuple[int, int]) -> None:
    app = console("sessions")

    async def opened(pilot: Pilot) -> None:
        await until(pilot, lambda: loaded_sessions(app) == 2)
        table = app.screen.query_one(SessionTable)
        table.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, SessionViewScreen))
        await until(pilot, lambda: len(app.screen.query_one(SessionFeed).entries) == 2)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=opened)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size: tuple[int, int]) -> None:
    app = console("sessions")

    async def shown(pilot: Pilot) -> None:
        await until(pilot, lambda: loaded_sessions(app) == 2)
        await pilot.press("question_mark")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=shown)


FIXED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def small_recording(path: Path) -> Path:
    header = {
        "session_id": "a1b2c3d4e5f60718",
        "protocol": "postgres",
        "connection": "appdb",
        "identity": "ci-bot",
        "started_at": "2027-01-15T07:55:00.000000Z",
    }
    writer = RecordingWriter(path, header, FIXED_KEY, durability="none")
    writer.start()
    for event in PG_EVENTS:
        writer.append(event)
    writer.close()
    assert writer.error is None, writer.error
    return path


@pytest.mark.parametrize("size", SIZES)
def test_player(snap_compare, size: tuple[int, int], tmp_path: Path) -> None:
    app = make_replay_app(small_recording(tmp_path / "a1b2c3d4e5f60718.hrec"))

    async def ready(pilot: Pilot) -> None:
        from hoop_tui.screens.player import PlayerScreen
        from hoop_tui.widgets.verify_badge import VerifyBadge

        await until(pilot, lambda: isinstance(app.screen, PlayerScreen))
        await until(
            pilot, lambda: bool(app.screen.statements) and bool(app.screen.query_one(VerifyBadge).status)
        )
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)
