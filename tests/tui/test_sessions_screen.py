"""The sessions screen against a real gateway: rows keyed by session id, counters updated in place, kill."""

from __future__ import annotations

import asyncio

import asyncpg

from hoop_tui.app import HoopApp, make_app
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.screens.sessions import SessionsScreen
from hoop_tui.widgets.session_table import SessionTable
from proxy.control.local import LocalControl
from tests.conftest import RunningGateway
from tests.tui.conftest import SIZE, FrozenClock
from tests.tui.test_approvals_screen import until


def sessions_console(gateway: RunningGateway, groups: tuple[str, ...] = ("oncall", "sre")) -> HoopApp:
    token = gateway.token(subject="alice", groups=groups)
    return make_app(
        lambda: LocalControl.sign_in(gateway.gateway, token),
        clock=FrozenClock(),
        start_on="sessions",
        sessions_interval=0.2,
    )


def table(app: HoopApp) -> SessionTable:
    return app.screen.query_one(SessionTable)


async def test_live_session_counts_update_in_place_and_k_kills_it(reviewing: RunningGateway) -> None:
    app = sessions_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        agent = await asyncpg.connect(reviewing.url(reviewing.token()))
        try:
            await until(pilot, lambda: len(table(app).shown) == 1)
            (session_id,) = table(app).shown
            cell = lambda column: table(app).get_cell(session_id, column)  # noqa: E731
            assert (cell("identity"), cell("groups"), cell("connection")) == ("ci-bot", "ci-agents", "appdb")
            assert cell("state") == "active"
            statements_before = int(table(app).get_cell(session_id, "statements"))
            for _ in range(3):
                await agent.execute("SELECT 1")  # simple protocol: one Query each
            await until(
                pilot, lambda: int(table(app).get_cell(session_id, "statements")) >= statements_before + 3
            )
            assert table(app).row_count == 1, "counters update the row, they do not add one"
            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, JustificationModal))
            await pilot.press(*"runaway agent", "enter")
            await until(pilot, lambda: table(app).get_cell(session_id, "state") == "ended")
            try:
                await asyncio.wait_for(agent.fetchval("SELECT 1"), 10)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError) as killed:
                assert "runaway agent" in str(killed) or agent.is_closed()
            else:
                raise AssertionError("the killed session still answers")
        finally:
            await agent.close()


async def test_number_keys_switch_screens_and_help_opens(reviewing: RunningGateway) -> None:
    app = sessions_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        await pilot.press("1")
        assert app.screen.sub_title == "approvals"
        await pilot.press("2")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert isinstance(app.screen, SessionsScreen)


async def test_kill_refused_for_a_non_admin_is_reported_and_the_session_lives(
    reviewing: RunningGateway,
) -> None:
    app = sessions_console(reviewing, groups=("oncall",))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        agent = await asyncpg.connect(reviewing.url(reviewing.token()))
        try:
            await until(pilot, lambda: len(table(app).shown) == 1)
            await pilot.press("k", *"just because", "enter")
            await until(pilot, lambda: any("admin role" in str(n.message) for n in app._notifications))
            assert await agent.fetchval("SELECT 1") == 1
        finally:
            await agent.close()


async def test_the_command_palette_switches_screens(
    reviewing: RunningGateway,
) -> None:
    app = sessions_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        await pilot.press("ctrl+p", *"show approvals")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.sub_title == "approvals")
