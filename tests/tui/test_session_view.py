"""The live session view against a real gateway: statements with decisions and rows, a held write turning
approved, kill from the view; and the feed's bounds and the SSH terminal on fed events."""

from __future__ import annotations

import asyncio

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot

from hoop_tui.app import HoopApp
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.screens.session_view import EventInbox, SessionViewScreen
from hoop_tui.screens.sessions import SessionsScreen
from hoop_tui.widgets.feed_entries import MAX_ROWS, FeedEntry, FeedModel
from hoop_tui.widgets.feed_lines import entry_height, plain_lines
from hoop_tui.widgets.session_feed import SessionFeed
from hoop_tui.widgets.session_table import SessionTable
from hoop_tui.widgets.terminal_view import TerminalView
from recordings.pgwire import encode_datarow
from tests.conftest import RunningGateway
from tests.tui.conftest import SIZE
from tests.tui.fake_control import FakeControl, fake_console
from tests.tui.test_approvals_screen import until
from tests.tui.test_sessions_screen import sessions_console


def feed(app: HoopApp) -> SessionFeed:
    return app.screen.query_one(SessionFeed)


def entry_for(app: HoopApp, fragment: str) -> FeedEntry | None:
    if not isinstance(app.screen, SessionViewScreen):
        return None
    return next((entry for entry in feed(app).entries if fragment in entry.text), None)


def has(app: HoopApp, fragment: str, **fields: object) -> bool:
    entry = entry_for(app, fragment)
    return entry is not None and all(getattr(entry, name) == value for name, value in fields.items())


async def open_first_session(pilot: Pilot, app: HoopApp) -> None:
    await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
    table = app.screen.query_one(SessionTable)
    await until(pilot, lambda: len(table.shown) == 1)
    table.focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, SessionViewScreen))


async def test_statements_show_with_decisions_rows_and_a_held_write_turns_approved(
    reviewing: RunningGateway,
) -> None:
    app = sessions_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        agent = await asyncpg.connect(reviewing.url(reviewing.token()))
        try:
            await agent.execute("SELECT name FROM victims WHERE id = 1")  # before the view opens: caught up
            await open_first_session(pilot, app)
            await until(pilot, lambda: has(app, "WHERE id = 1", decision="allow", outcome="SELECT 1"))
            await agent.fetch(
                "SELECT 12.50::numeric AS n, '2027-01-15 08:00+00'::timestamptz AS at, true AS b"
            )
            await until(pilot, lambda: has(app, "12.50::numeric", outcome="SELECT 1"))
            binary = entry_for(app, "12.50::numeric")
            assert binary is not None and binary.rows == [["12.50", "2027-01-15 08:00:00+00:00", "true"]], (
                "asyncpg's binary results read as PostgreSQL prints them"
            )
            rows = await agent.fetch("SELECT id, name FROM victims ORDER BY id")
            assert len(rows) == 3
            await until(pilot, lambda: has(app, "ORDER BY id", decision="allow", total_rows=3))
            listed = entry_for(app, "ORDER BY id")
            assert listed is not None and listed.columns == ["id", "name"]
            assert listed.rows == [["1", "alice"], ["2", "bob"], ["3", "carol"]]
            assert listed.rule, "the rule that matched is shown"

            held = asyncio.create_task(agent.execute("UPDATE victims SET name = 'held' WHERE id = 3"))
            await until(
                pilot, lambda: has(app, "SET name = 'held'", decision="review", approval_state="pending")
            )
            text = "\n".join(feed(app).text_lines())
            assert "REVIEW" in text and "held for review" in text
            assert not held.done()
            entry = entry_for(app, "SET name = 'held'")
            assert entry is not None and entry.approval_id is not None
            assert app.control is not None
            await app.control.approve(entry.approval_id)
            assert await asyncio.wait_for(held, 15) == "UPDATE 1"
            await until(
                pilot, lambda: has(app, "SET name = 'held'", approval_state="approved", outcome="UPDATE 1")
            )
            assert "approved" in "\n".join(feed(app).text_lines()) and entry.approval_by == "alice"

            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, JustificationModal))
            await pilot.press(*"looked enough", "enter")
            await until(pilot, lambda: isinstance(app.screen, SessionViewScreen) and feed(app).model.ended)
            assert "looked enough" in str(feed(app).model.ended)
            summary = str(app.screen.query_one("#session-summary").render())
            assert "ended" in summary
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
            assert len(app.screen_stack) == 2, (
                "the view replaced the sessions screen and went away with escape"
            )
        finally:
            await agent.close()


async def test_a_denied_statement_shows_deny_and_the_error(reviewing: RunningGateway) -> None:
    app = sessions_console(reviewing)
    async with app.run_test(size=SIZE) as pilot:
        agent = await asyncpg.connect(reviewing.url(reviewing.token()))
        try:
            await open_first_session(pilot, app)
            try:
                await agent.execute("DROP TABLE victims")
            except asyncpg.PostgresError as error:
                assert error.sqlstate == "42501"
            else:
                raise AssertionError("the DROP ran")
            await until(pilot, lambda: has(app, "DROP TABLE victims", decision="deny", failed=True))
            entry = entry_for(app, "DROP TABLE victims")
            assert entry is not None and entry.outcome is not None and "42501" in entry.outcome
        finally:
            await agent.close()


# -- the feed's model, on events made up here ---------------------------------------------------------------


def test_the_feed_keeps_the_newest_entries_and_caps_rows_per_statement() -> None:
    model = FeedModel(max_entries=100)
    many_rows = b"".join(encode_datarow([str(n).encode()]) for n in range(500))
    for n in range(1_000):
        model.apply([n, "pg.query", f"SELECT {n}"])
        model.apply([n, "policy.decision", {"decision": "allow", "kind": "read", "rule": "allow read"}])
        model.apply([n, "pg.rowdesc", ["n"], [23]])
        model.apply([n, "pg.rows", 500, many_rows])
        model.apply([n, "pg.complete", "SELECT 500"])
    assert len(model.entries) == 100 and model.dropped == 900
    newest = model.entries[-1]
    assert newest.text == "SELECT 999" and len(newest.rows) == MAX_ROWS and newest.total_rows == 500
    assert any("first 50 of 500 rows" in line for line in plain_lines(newest))


def test_an_approval_decided_after_its_statement_scrolled_past_is_matched_by_id() -> None:
    model = FeedModel()
    model.apply([0, "pg.query", "DELETE FROM t WHERE id = 1"])
    model.apply([1, "policy.decision", {"decision": "review", "kind": "write", "rule": "review write"}])
    model.apply([2, "approval.requested", {"id": "r1", "statement": "DELETE …", "expires_at": 100.0}])
    model.apply([3, "pg.notice", {"M": "hoop: statement held for review (request r1)"}])
    model.apply([4, "approval.decided", {"id": "r1", "state": "denied", "decider": "bob", "reason": "no"}])
    model.apply([5, "pg.error", {"S": "ERROR", "C": "42501", "M": "hoop: statement denied by bob"}])
    (entry,) = model.entries
    assert (entry.approval_state, entry.approval_by, entry.approval_reason) == ("denied", "bob", "no")
    assert entry.failed and entry.outcome == "ERROR 42501: hoop: statement denied by bob"
    lines = plain_lines(entry)
    assert "REVIEW" in lines[0] and any("✘ denied" in line and "by bob: no" in line for line in lines)


events = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 10**9), st.sampled_from(["pg.query", "ssh.exec", "pg.complete"]), st.text()),
        st.tuples(
            st.integers(0, 10**9),
            st.sampled_from(["policy.decision", "approval.requested", "approval.decided", "session.end"]),
            st.dictionaries(st.sampled_from(["id", "decision", "state", "kind", "reason"]), st.text()),
        ),
        st.tuples(st.integers(0, 10**9), st.just("pg.rows"), st.integers(-5, 5), st.binary(max_size=40)),
        st.tuples(
            st.integers(0, 10**9),
            st.just("pg.rows"),
            st.integers(0, 80),
            st.lists(st.lists(st.one_of(st.none(), st.binary(max_size=9)), max_size=3), max_size=80).map(
                lambda rows: b"".join(encode_datarow(row) for row in rows)
            ),
        ),
        st.tuples(
            st.integers(0, 10**9),
            st.just("pg.rowdesc"),
            st.lists(st.text(max_size=5), max_size=3),
            st.lists(st.sampled_from([16, 20, 21, 23, 25, 700, 701, 1082, 1184, 1700, 2950]), max_size=3),
        ),
        st.tuples(st.integers(0, 10**9), st.text(max_size=12), st.none()),
        st.lists(st.integers(), max_size=3),
    ),
    max_size=60,
).map(lambda items: [list(item) for item in items])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_the_feed_never_fails_on_events_of_unknown_or_broken_shapes(made_up: list[list]) -> None:
    model = FeedModel(max_entries=10)
    for event in made_up:
        model.apply(event)
    assert len(model.entries) <= 10
    for entry in model.entries:
        assert len(entry.rows) <= MAX_ROWS
        assert entry_height(entry) == len(plain_lines(entry)), "the feed places entries by this height"


# -- SSH: the terminal follows the output --------------------------------------------------------------


SSH_SESSION = {"id": "5e55", "identity": "ci-bot", "connection": "web1", "protocol": "ssh", "started_at": 0}


async def test_an_ssh_session_shows_its_terminal_and_commands() -> None:
    control = FakeControl(
        sessions=[SSH_SESSION],
        session_events={
            "5e55": [
                [0, "ssh.resize", 40, 6],
                [10, "ssh.exec", "systemctl status nginx"],
                [
                    20,
                    "policy.decision",
                    {"decision": "allow", "kind": "exec", "rule": "allow systemctl status *"},
                ],
                [30, "ssh.output", "stdout", b"\x1b[32m\xe2\x97\x8f nginx.service\x1b[0m - active\r\n"],
                [40, "ssh.output", "stdout", b"line two\r\n$ "],
                [50, "ssh.exit", 0],
            ]
        },
    )
    app = fake_console(control, start_on="sessions")
    async with app.run_test(size=SIZE) as pilot:
        await open_first_session(pilot, app)
        terminal = app.screen.query_one(TerminalView)
        await until(pilot, lambda: any("line two" in line for line in terminal.screen_text))
        assert terminal.display
        assert terminal.screen_text[0].startswith("● nginx.service - active")
        await until(pilot, lambda: has(app, "systemctl status nginx", decision="allow", outcome="exit 0"))


async def test_the_palette_opens_the_selected_session_and_kills_the_one_shown() -> None:
    control = FakeControl(sessions=[SSH_SESSION], session_events={"5e55": [[0, "ssh.exec", "uptime"]]})
    app = fake_console(control, start_on="sessions")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))
        await until(pilot, lambda: len(app.screen.query_one(SessionTable).shown) == 1)
        await pilot.press("ctrl+p", *"open session")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionViewScreen))
        await until(pilot, lambda: has(app, "uptime"))
        await pilot.press("ctrl+p", *"kill session")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JustificationModal))
        await pilot.press(*"done here", "enter")
        await until(
            pilot, lambda: ("sessions.kill", {"session": "5e55", "reason": "done here"}) in control.calls
        )


async def test_an_approver_without_the_auditor_role_is_told_why_the_view_stays_empty(
    reviewing: RunningGateway,
) -> None:
    app = sessions_console(reviewing, groups=("oncall",))
    async with app.run_test(size=SIZE) as pilot:
        agent = await asyncpg.connect(reviewing.url(reviewing.token()))
        try:
            await open_first_session(pilot, app)
            view = app.screen
            assert isinstance(view, SessionViewScreen)
            await until(pilot, lambda: view.state.startswith("not followed"))
            assert "auditor" in view.state and not feed(app).entries
        finally:
            await agent.close()


async def test_a_full_inbox_holds_the_watch_until_the_screen_takes_the_events() -> None:
    inbox = EventInbox(capacity=3)
    assert inbox.put([0, "pg.query", "SELECT 1"]), "the first event wakes the screen"
    assert not inbox.put([1, "pg.complete", "SELECT 1"]), "later ones ride on the same wake-up"
    await asyncio.wait_for(inbox.room(), 1)
    inbox.put([2, "pg.query", "SELECT 2"])
    waiting = asyncio.create_task(inbox.room())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "at capacity the watch waits"
    assert len(inbox.take()) == 3
    await asyncio.wait_for(waiting, 1)
