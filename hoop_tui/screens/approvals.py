"""The approvals screen: the queue of held statements, approve/deny from the keyboard, and the history."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from hoop_tui.messages import ApprovalChanged, ApprovalsLoaded, ControlCallFailed, WatchEnded
from hoop_tui.screens.justification import JustificationModal
from hoop_tui.widgets.approval_detail import ApprovalDetail
from hoop_tui.widgets.approval_history import ApprovalHistory
from hoop_tui.widgets.approval_queue import ApprovalQueue

if TYPE_CHECKING:
    from proxy.control.api import ControlCalls


class ApprovalsScreen(Screen[None]):
    """Pending requests arrive from `watch_approvals`; decisions go through the control API."""

    BINDINGS = [
        Binding("a", "approve", "Approve", id="approvals.approve", tooltip="Approve the selected request"),
        Binding("d", "deny", "Deny", id="approvals.deny", tooltip="Deny the selected request, with a reason"),
    ]

    def __init__(self, control: ControlCalls, clock: Callable[[], float]) -> None:
        super().__init__()
        self.control = control
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Pending approvals (oldest first)", classes="section-title")
        yield ApprovalQueue(self.clock, id="approval-queue")
        yield ApprovalDetail(self.clock, id="approval-detail")
        yield Label("Decided", classes="section-title")
        yield ApprovalHistory(id="approval-history")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "approvals"
        self.watch_requests()
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        """Time left counts down with the app's clock (a frozen one in tests)."""
        self.query_one(ApprovalQueue).tick()
        self.query_one(ApprovalDetail).tick()

    @on(DataTable.RowHighlighted, "#approval-queue")
    def selection_moved(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        self.query_one(ApprovalDetail).show(self.query_one(ApprovalQueue).request_under_cursor())

    @work(exclusive=True, group="watch-approvals", exit_on_error=False)
    async def watch_requests(self) -> None:
        """Posts what the gateway says; never touches widgets (the handlers below own the state)."""
        from proxy.control.errors import ControlError

        try:
            stream = await self.control.watch_approvals()
        except ControlError as error:
            self.post_message(WatchEnded("approvals", str(error)))
            return
        async with stream:
            self.post_message(ApprovalsLoaded(list(stream.initial)))
            async for request in stream:
                self.post_message(ApprovalChanged(request))
        self.post_message(WatchEnded("approvals", stream.end_reason or "stream ended"))

    @on(ApprovalsLoaded)
    def loaded(self, message: ApprovalsLoaded) -> None:
        queue = self.query_one(ApprovalQueue)
        for request in sorted(message.requests, key=lambda item: item.get("created_at") or 0.0):
            queue.show(request)
        self._show_selected()

    @on(ApprovalChanged)
    def changed(self, message: ApprovalChanged) -> None:
        request = message.request
        queue = self.query_one(ApprovalQueue)
        if request.get("state") == "pending":
            if request["id"] not in queue.requests:
                queue.show(request)
                self._show_selected()
                self.app.bell()
                self.notify(
                    f"{request.get('requester')} on {request.get('connection')}: {request.get('kind')}",
                    title="Approval requested",
                    markup=False,  # names come from tokens, not from us
                )
            return
        queue.forget(request["id"])
        self._show_selected()
        self.query_one(ApprovalHistory).record(request)

    def action_approve(self) -> None:
        request = self.query_one(ApprovalQueue).request_under_cursor()
        if request is not None:
            self.send_decision(request["id"], approve=True, reason=None)

    def action_deny(self) -> None:
        request = self.query_one(ApprovalQueue).request_under_cursor()
        if request is None:
            return
        request_id = request["id"]

        def denied_with(reason: str | None) -> None:
            if reason:
                self.send_decision(request_id, approve=False, reason=reason)

        self.app.push_screen(
            JustificationModal(f"Deny request {request_id}", "Why? The agent will see this reason."),
            denied_with,
        )

    @work(group="decide", exit_on_error=False)
    async def send_decision(self, request_id: str, *, approve: bool, reason: str | None) -> None:
        from proxy.control.errors import ControlError

        action = "approve" if approve else "deny"
        try:
            answer: dict[str, Any] = await self.control.decide(request_id, approve=approve, reason=reason)
        except ControlError as error:
            self.post_message(ControlCallFailed(action, str(error)))
            return
        # The watch reports the decision too; posting it here makes the screen update without waiting.
        self.post_message(ApprovalChanged(answer))
