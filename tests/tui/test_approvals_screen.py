"""The approvals screen against a real gateway: a held write shows up, a key press approves or denies it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from textual.pilot import Pilot

from hoop_tui.app import HoopApp, make_app
from hoop_tui.screens.approvals import ApprovalsScreen
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.widgets.approval_history import ApprovalHistory
from hoop_tui.widgets.approval_queue import ApprovalQueue
from proxy.control.local import LocalControl
from tests.conftest import RunningGateway
from tests.pg_fixture import UpstreamPostgres
from tests.tui.conftest import SIZE, FrozenClock


def oncall_console(gateway: RunningGateway, clock: FrozenClock | None = None) -> HoopApp:
    token = gateway.token(subject="alice", groups=("oncall",))
    return make_app(lambda: LocalControl.sign_in(gateway.gateway, token), clock=clock or FrozenClock())


async def until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 15) -> None:
    """Let the app run until `condition` holds (the gateway works on its own thread meanwhile)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the console never reached the expected state")
        await pilot.pause(0.05)


def queue(app: HoopApp) -> ApprovalQueue:
    return app.screen.query_one(ApprovalQueue)


async def agent_write(gateway: RunningGateway, sql: str) -> tuple[asyncpg.Connection, asyncio.Task[str]]:
    connection = await asyncpg.connect(gateway.url(gateway.token()))
    return connection, asyncio.create_task(connection.execute(sql))


async def on_approvals(pilot: Pilot, app: HoopApp) -> None:
    await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen))


async def test_held_write_is_shown_and_approved_with_a_key(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    app = oncall_console(reviewing)
    bells: list[None] = []
    app.bell = lambda: bells.append(None)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "INSERT INTO victims VALUES (20, 'via tui')")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            (request,) = queue(app).requests.values()
            assert request["requester"] == "ci-bot" and request["kind"] == "write"
            assert bells, "a new request rings the bell"
            assert any(note.title == "Approval requested" for note in app._notifications)
            assert not held.done(), "the agent waits while the statement is held"
            await pilot.press("a")
            assert await asyncio.wait_for(held, 15) == "INSERT 0 1"
            history = app.screen.query_one(ApprovalHistory)
            await until(pilot, lambda: request["id"] in history.decided)
            assert history.decided[request["id"]]["decider"] == "alice"
            assert history.decided[request["id"]]["state"] == "approved"
            assert not queue(app).requests
        finally:
            await connection.close()
    assert seeded.execute("SELECT name FROM victims WHERE id = 20") == [("via tui",)]


async def test_deny_needs_a_typed_justification_that_the_agent_sees(
    reviewing: RunningGateway, seeded: UpstreamPostgres
) -> None:
    app = oncall_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "UPDATE victims SET name = 'x' WHERE id = 1")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, JustificationModal))
            await pilot.press("enter")  # empty: refused, the modal stays
            assert isinstance(app.screen, JustificationModal)
            assert not held.done()
            await pilot.press(*"freeze week", "enter")
            with pytest.raises(asyncpg.PostgresError) as denied:
                await asyncio.wait_for(held, 15)
            assert denied.value.sqlstate == "42501"
            assert "denied by alice" in str(denied.value) and "freeze week" in str(denied.value)
            history = app.screen.query_one(ApprovalHistory)
            await until(pilot, lambda: len(history.decided) == 1)
            (decided,) = history.decided.values()
            assert decided["state"] == "denied" and decided["justification"] == "freeze week"
        finally:
            await connection.close()
    assert seeded.execute("SELECT name FROM victims WHERE id = 1") == [("alice",)]


async def test_time_left_follows_the_injected_clock(reviewing: RunningGateway) -> None:
    clock = FrozenClock()
    app = oncall_console(reviewing, clock)
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "DELETE FROM victims WHERE id = 2")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            (request,) = queue(app).requests.values()
            clock.now = request["expires_at"] - 75
            queue(app).tick()
            assert queue(app).get_cell(request["id"], "left") == "1m15s"
            clock.now = request["expires_at"] + 1
            queue(app).tick()
            assert queue(app).get_cell(request["id"], "left") == "expired"
        finally:
            held.cancel()
            await connection.close()


async def test_a_refused_token_ends_the_console_with_one_clear_line(reviewing: RunningGateway) -> None:
    agent_token = reviewing.token()  # ci-agents hold no control role
    app = make_app(lambda: LocalControl.sign_in(reviewing.gateway, agent_token), clock=FrozenClock())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.failure is not None)
    assert app.return_code == 1
    assert app.failure is not None and "\n" not in app.failure
    assert agent_token not in app.failure, "the token never appears in an error"


async def test_attached_over_the_control_socket_the_console_approves_the_same_way(
    reviewing: RunningGateway,
) -> None:
    from proxy.control.client import ControlClient

    address = reviewing.gateway.control.address
    token = reviewing.token(subject="bob", groups=("oncall",))
    app = make_app(lambda: ControlClient.connect(address, token), clock=FrozenClock())
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "INSERT INTO victims VALUES (21, 'remote')")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            await pilot.press("a")
            assert await asyncio.wait_for(held, 15) == "INSERT 0 1"
            history = app.screen.query_one(ApprovalHistory)
            await until(pilot, lambda: len(history.decided) == 1)
            assert next(iter(history.decided.values()))["decider"] == "bob"
        finally:
            await connection.close()
