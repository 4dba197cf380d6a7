"""What the server owes each run of client messages, and the verdicts of the prepared statements."""

# The relay adds to the newest batch as client messages pass and consumes the oldest as the server answers,
# which keeps the bookkeeping right under pipelining. It needs it for two things: the ParseComplete and
# BindComplete of messages the gateway injected (a denied Parse or Bind is replaced by a raising
# Parse/Bind/Execute) are kept from the client, who never sent them; and a prepared statement's verdict
# exists only once its ParseComplete arrives (a Parse the server refused or skipped must not count).
#
# Prepared statements run once per Bind, long after their Parse was decided: the relay decides each Bind
# again under the policy as it is then. An approval covers the executions in the batch (up to Sync) that
# first runs the approved statement — an executemany — and nothing after it.

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.postgres.enforcement import Verdict

_PARSE, _BIND, _SYNC = b"P"[0], b"B"[0], b"S"[0]


class _Batch:
    """Responses owed for one run of client messages ending in Sync (or one Query / FunctionCall).

    Each forwarded Parse and Bind is listed in order; the server answers them in the same order. A Bind
    entry is True when the gateway injected it. A Parse entry is True when injected, else a pending
    `(statement name, verdict, approved)` (None until the relay decided it).
    """

    __slots__ = ("binds", "ended_by", "extended", "parses")

    def __init__(self) -> None:
        self.parses: deque[Any] = deque()
        self.binds: deque[bool] = deque()
        self.extended = False  # holds extended-protocol messages (an error in it skips to the next Sync)
        self.ended_by = ""  # "sync" | "query" once closed


class StatementBatches:
    """The batches in flight (oldest first) and the prepared statements they created."""

    __slots__ = ("_approval_credit", "_approved_in_batch", "_batches", "_prepared")

    def __init__(self) -> None:
        # The batch the server is answering now is _batches[0]; the client adds to [-1].
        self._batches: deque[_Batch] = deque((_Batch(),))
        self._prepared: dict[str, Verdict] = {}
        self._approval_credit: set[str] = set()  # approved at Parse, not yet executed
        self._approved_in_batch: set[str] = set()

    # ---------------------------------------------------------------- client → server

    def track(self, type_byte: int) -> None:
        """A Parse, Bind, Sync, Query or FunctionCall on its way to the server."""
        batches = self._batches
        if type_byte == _PARSE:
            batches[-1].parses.append(None)
            batches[-1].extended = True
        elif type_byte == _BIND:
            batches[-1].binds.append(False)
            batches[-1].extended = True
        else:  # Sync, Query and FunctionCall each end the current batch with one ReadyForQuery
            batches[-1].ended_by = "sync" if type_byte == _SYNC else "query"
            batches.append(_Batch())
            self._approved_in_batch.clear()  # an approval covers one batch, whatever ends it

    def untrack_held_query(self) -> None:
        """The Query just tracked is held: it is tracked again when replayed after the decision."""
        self._batches.pop()

    def untrack_held_parse(self) -> None:
        self._batches[-1].parses.pop()

    def untrack_held_bind(self) -> None:
        self._batches[-1].binds.pop()

    def parse_decided(self, name: str, verdict: Verdict, approved: bool) -> None:
        """The verdict of the Parse just tracked; it becomes statement `name` when its ParseComplete comes."""
        self._batches[-1].parses[-1] = (name, verdict, approved)

    def parse_replaced(self) -> None:
        """The Parse just tracked went out as an injected Parse/Bind/Execute."""
        batch = self._batches[-1]
        batch.parses[-1] = True
        batch.binds.append(True)

    def bind_replaced(self) -> None:
        """The Bind just tracked went out as an injected Parse/Bind/Execute."""
        batch = self._batches[-1]
        batch.parses.append(True)
        batch.binds[-1] = True

    def statement(self, name: str) -> tuple[Verdict | None, bool]:
        """The verdict of prepared statement `name` (a Parse still in flight wins over an older one), and
        whether an approval of that in-flight Parse is still unused — it is used up by this call."""
        for batch in reversed(self._batches):
            parses = batch.parses
            for index in range(len(parses) - 1, -1, -1):
                entry = parses[index]
                if entry and entry is not True and entry[0] == name:
                    if entry[2]:
                        parses[index] = (name, entry[1], False)
                    return entry[1], entry[2]
        return self._prepared.get(name), False

    # ---------------------------------------------------------------- approvals of prepared statements

    def approve_in_batch(self, name: str) -> None:
        self._approved_in_batch.add(name)

    def approved_in_batch(self, name: str) -> bool:
        return name in self._approved_in_batch

    def take_credit(self, name: str) -> bool:
        """Use up the approval given at `name`'s Parse, if any: it then covers this batch's executions."""
        if name not in self._approval_credit:
            return False
        self._approval_credit.discard(name)
        self._approved_in_batch.add(name)
        return True

    # ---------------------------------------------------------------- server → client

    def answered(self) -> None:
        """A ReadyForQuery: the oldest batch is answered (what it still owed was skipped after an error)."""
        batches = self._batches
        batches.popleft()
        if not batches:
            batches.append(_Batch())

    def injected(self, parse_complete: bool) -> bool:
        """Consume the entry a ParseComplete (or BindComplete) answers; True when the gateway sent it."""
        batch = self._batches[0]
        owners = batch.parses if parse_complete else batch.binds
        if not owners:
            return False
        entry = owners.popleft()
        if entry is True:
            return True
        if entry:  # a client Parse the server accepted: now it is a prepared statement of this session
            name, verdict, approved = entry
            self._prepared[name] = verdict
            if approved:
                self._approval_credit.add(name)
            else:
                self._approval_credit.discard(name)
        return False

    def failed(self) -> None:
        """An ErrorResponse: in extended mode PostgreSQL ignores everything up to Sync, Queries included."""
        batches = self._batches
        if not batches[0].extended:
            return  # a Query's own error: its ReadyForQuery follows
        batches[0].parses.clear()
        batches[0].binds.clear()
        while len(batches) > 1 and batches[0].ended_by == "query":
            batches.popleft()  # that Query is skipped by the server: no ReadyForQuery will answer it
            batches[0].parses.clear()
            batches[0].binds.clear()
