"""The approvals screen's detail of the selected request, against a real gateway: the statement, its
classification and rule, and a time left that counts down with the app's clock."""

from __future__ import annotations

from hoop_tui.widgets.approval_detail import ApprovalDetail
from tests.conftest import RunningGateway
from tests.tui.conftest import SIZE, FrozenClock
from tests.tui.test_approvals_screen import agent_write, on_approvals, oncall_console, queue, until


async def test_the_selected_request_shows_statement_classification_rule_and_time_left(
    reviewing: RunningGateway,
) -> None:
    clock = FrozenClock()
    app = oncall_console(reviewing, clock)
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "UPDATE victims SET name = 'z' WHERE id = 2")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            detail = app.screen.query_one(ApprovalDetail)
            await until(pilot, lambda: detail.request is not None)
            (request,) = queue(app).requests.values()
            assert detail.request is not None and detail.request["id"] == request["id"]
            clock.now = request["expires_at"] - 75
            app.screen.tick()  # what the screen's one-second timer does
            text = detail.plain_text
            assert "UPDATE victims SET name = 'z' WHERE id = 2" in text
            assert "write" in text and str(request["rule"]) in text and "1m15s" in text
            clock.now = request["expires_at"] + 1
            app.screen.tick()
            assert "Time left expired" in detail.plain_text
        finally:
            held.cancel()
            await connection.close()


async def test_markup_in_a_statement_or_a_reason_is_shown_as_text(reviewing: RunningGateway) -> None:
    from rich.text import Text

    from hoop_tui.widgets.approval_history import ApprovalHistory

    app = oncall_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        await on_approvals(pilot, app)
        connection, held = await agent_write(reviewing, "UPDATE victims SET name = '[/][bold]' WHERE id = 2")
        try:
            await until(pilot, lambda: len(queue(app).requests) == 1)
            detail = app.screen.query_one(ApprovalDetail)
            await until(pilot, lambda: "'[/][bold]'" in detail.plain_text)
            await pilot.press("d", *"[/] not now", "enter")
            history = app.screen.query_one(ApprovalHistory)
            await until(pilot, lambda: len(history.decided) == 1)
            await pilot.pause()  # drawn: a markup error would have ended the app here
            (request_id,) = history.decided
            shown = [Text.from_markup(str(cell)).plain for cell in history.get_row(request_id)]
            assert "[/] not now" in shown and any("'[/][bold]'" in cell for cell in shown)
            assert app.is_running
        finally:
            held.cancel()
            await connection.close()
