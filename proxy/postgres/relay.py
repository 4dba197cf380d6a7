"""The hot path: frames both directions of an established session inside `data_received` and forwards.

Each buffer the kernel hands us is scanned for message boundaries with `struct.unpack_from` on the
buffer itself; complete frames are forwarded with one `write` per buffer, the incomplete tail is kept
until the rest arrives. Only the few message types a rule needs are decoded. Row data is never turned
into Python objects unless masking rewrites it: the recorder gets raw runs of DataRow bytes. With masking
on, each run of DataRows (or of COPY data) in a buffer is prefiltered by one scan over its bytes
(proxy.masking.framescan), and only the rows that scan flags are parsed and masked.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from proxy.approvals import SQLSTATE_CANCELLED, HoldOutcome, hold_notice, new_request_id
from proxy.masking.pgrows import MalformedMessage, mask_notice_fields
from proxy.postgres.enforcement import Verdict, denial_message, new_reference, raising_extended, raising_query
from proxy.postgres.frame_fields import (
    OWN_ERROR_MARK,
    NotUtf8,
    PartialFrame,
    bind_result_formats,
    clean_own_error,
    cstring_at,
    fields_at,
    row_description_at,
    sql_at,
)
from proxy.postgres.messages import (
    error_response,
    notice_response,
)
from proxy.postgres.protocol import SQLSTATE_PROTOCOL_VIOLATION, ProtocolError
from proxy.postgres.session_masking import UnmaskableOutput, mask_text_message
from proxy.postgres.statement_batches import StatementBatches

if TYPE_CHECKING:
    from proxy.masking.pgrows import RowMasker
    from proxy.postgres.endpoint import Endpoint
    from proxy.postgres.enforcement import StatementGate
    from proxy.postgres.session_masking import SessionMasking

log = logging.getLogger("hoop.relay")

# Runs the approval flow for one held statement: (request id, verdict, statement text) → outcome.
HoldFunction = Callable[[str, Verdict, str], Awaitable[HoldOutcome]]
_HOLD = b"<hold>"  # sentinel from _client_message: stop here until a human decides

_unpack_i32 = struct.Struct("!i").unpack_from
_unpack_u16 = struct.Struct("!H").unpack_from
_pack_i32 = struct.Struct("!i").pack
_unpack_u32 = struct.Struct("!I").unpack_from

# Frontend type bytes the relay looks at.
_Q, _P, _B, _E, _X, _F, _COPY_DATA = b"Q"[0], b"P"[0], b"B"[0], b"E"[0], b"X"[0], b"F"[0], b"d"[0]
_SYNC, _FLUSH = b"S"[0], b"H"[0]
CLIENT_INSPECT = frozenset({_Q, _P, _B, _E, _X, _F, _COPY_DATA, _SYNC})
_BATCH_TRACKED = frozenset({_Q, _P, _B, _F, _SYNC})
_PARSE_COMPLETE, _BIND_COMPLETE = b"1"[0], b"2"[0]
_DESCRIBE, _CLOSE = b"D"[0], b"C"[0]  # client-side meanings of these type bytes
# Server messages that move masking's result-shape bookkeeping (see session_masking.ResultShapes).
_CLOSE_COMPLETE, _NO_DATA, _PORTAL_SUSPENDED, _EMPTY_QUERY, _COPY_OUT_RESPONSE = (
    b"3"[0],
    b"n"[0],
    b"s"[0],
    b"I"[0],
    b"H"[0],
)
# Server messages that carry free text besides rows and errors (masked by session_masking.mask_text_message).
_NOTIFICATION, _PARAMETER_STATUS, _FUNCTION_RESULT = b"A"[0], b"S"[0], b"V"[0]
# Backend type bytes the relay looks at ('D' is counted inline, the rest are decoded).
_DATA_ROW, _ROW_DESC, _COMPLETE, _ERROR, _NOTICE, _READY = (
    b"D"[0],
    b"T"[0],
    b"C"[0],
    b"E"[0],
    b"N"[0],
    b"Z"[0],
)


class SessionCounters:
    __slots__ = ("bytes_from_client", "bytes_from_server", "rows", "statements")

    def __init__(self) -> None:
        self.statements = 0
        self.rows = 0
        self.bytes_from_client = 0
        self.bytes_from_server = 0


class PgRelay:
    """Relays one established session; `on_close(reason)` fires once when either side ends."""

    def __init__(
        self,
        client: Endpoint,
        server: Endpoint,
        *,
        max_message_size: int,
        record: Callable[[list[Any]], None] | None,
        on_close: Callable[[str], None],
        record_many: Callable[[list[list[Any]]], None] | None = None,
        started_ns: int | None = None,
        gate: StatementGate | None = None,
        audit: Callable[[dict[str, Any]], None] | None = None,
        hold: HoldFunction | None = None,
        masking: SessionMasking | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.max_size = max_message_size
        # With `record_many` the events of one received buffer are collected here and handed over together
        # when the callback ends (one call into the recorder per buffer, not one per event).
        self._events: list[list[Any]] = []
        self._record_many = record_many
        self.record = self._events.append if record_many is not None else record
        self.on_close = on_close
        self.counters = SessionCounters()
        self.transaction_status = "I"
        self._t0_ns = started_ns if started_ns is not None else time.monotonic_ns()
        self._client_tail = PartialFrame()
        self._server_tail = PartialFrame()
        self._closed = False
        self._terminating = False
        # Masking: None unless the session's policy masks something (then every result row is checked).
        self.masking = masking
        self._shapes = None
        self._rows_masker = None
        self._rows_masker_known = False
        self._client_inspect = CLIENT_INSPECT
        self._frame_scan = masking.frame_scan if masking is not None else None
        if masking is not None:
            from proxy.postgres.session_masking import ResultShapes

            self._shapes = ResultShapes()
            self._client_inspect = CLIENT_INSPECT | {_DESCRIBE, _CLOSE}
        else:
            self._client_message = self._client_message_inner  # type: ignore[method-assign]
        self._now = 0
        self._decision_payloads: dict[tuple[str, str, str, frozenset[str]], dict[str, Any]] = {}
        self._last_row_description = b""
        self._last_columns: tuple[list[str], list[int]] = ([], [])
        self.gate = gate
        self.audit = audit
        # Extended-protocol deny: after a denied Parse everything but Flush is dropped up to Sync.
        self._skipping_to_sync = False
        # Responses the server owes, and the session's prepared statements (see statement_batches.py).
        self._statements = StatementBatches()
        # Holding: client bytes from the held message on wait here until the decision.
        self.hold = hold
        self._held_input: bytearray | None = None
        self._held: tuple[str, Verdict, str] | None = None
        self._hold_task: asyncio.Task[None] | None = None
        self._forced: HoldOutcome | None = None  # the decision to apply when the held message is replayed
        self._cancel_outcome: HoldOutcome | None = None
        self._held_verdict: Verdict | None = None
        self._server_handlers = self._build_server_handlers()
        client.peer = server.transport
        server.peer = client.transport

    # ---------------------------------------------------------------- lifecycle

    def start(self, server_pending: bytes = b"") -> None:
        self.client.on_lost = lambda exc: self.close("client disconnected")
        self.server.on_lost = lambda exc: self.close("upstream closed the connection")
        if server_pending:
            self.from_server(server_pending)
        self.server.start_relay(self.from_server)
        self.client.start_relay(self.from_client)

    def now_us(self) -> int:
        return (time.monotonic_ns() - self._t0_ns) // 1000

    # Events from one received buffer share one timestamp (`_now`, set per callback): the clock is read
    # once per buffer, not once per event.

    def close(self, reason: str, *, terminate_upstream: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if self._events:
            # Before on_close ends the live view: what this buffer did must reach its viewers too.
            self._flush_events()
        if self._hold_task is not None:
            self._hold_task.cancel()  # the request ends as cancelled; the statement never runs
        self.client.relay = self.server.relay = None
        self.client.on_lost = self.server.on_lost = None
        if terminate_upstream and not self.server.closed:
            self.server.write(b"X\x00\x00\x00\x04")  # Terminate, so the backend exits cleanly
        self.server.close()
        self.client.close()
        self.on_close(reason)

    def fail_client(self, message: str, code: str = SQLSTATE_PROTOCOL_VIOLATION) -> None:
        """End only this session with one FATAL error to the client."""
        self.client.write(error_response(message, code, severity="FATAL").encode())
        self.close(f"protocol error: {message}")

    def terminate(self, message: str, code: str) -> None:
        """Gateway-initiated end (token expired, killed by an operator): FATAL to the client, then close."""
        if not self._closed:
            self.fail_client(message, code)

    # ---------------------------------------------------------------- client → server

    def from_client(self, data: bytes) -> None:
        try:
            self._from_client(data)
        finally:
            if self._events:
                self._flush_events()

    def _flush_events(self) -> None:
        events = self._events[:]
        self._events.clear()  # the same list: `self.record` is its bound append
        assert self._record_many is not None
        self._record_many(events)

    def _from_client(self, data: bytes) -> None:
        if self._held_input is not None:
            self._held_input += data
            if len(self._held_input) > self.max_size:
                self.fail_client("too much data sent while a statement is held for review")
            return
        self.counters.bytes_from_client += len(data)
        self._now = (time.monotonic_ns() - self._t0_ns) // 1000
        if self._client_tail.parts:
            joined = self._client_tail.add(data)
            if joined is None:
                return
            data = joined
        size = len(data)
        pos = 0
        forwarded_to = 0  # data[forwarded_to:pos] is pass-through not yet placed in `pieces`
        pieces: list[bytes] | None = None  # only built when a message is dropped or replaced
        limit = self.max_size
        record = self.record
        try:
            while size - pos >= 5:
                type_byte = data[pos]
                length = _unpack_i32(data, pos + 1)[0]
                if length < 4 or length > limit:
                    raise ProtocolError(f"invalid message length {length}")
                end = pos + 1 + length
                if end > size:
                    break
                if self._skipping_to_sync or type_byte in self._client_inspect:
                    replacement = self._client_message(type_byte, data, pos + 5, end, record)
                    if replacement is _HOLD:
                        self._start_hold(data, pos, pieces, forwarded_to)
                        return
                    if replacement is not None:
                        if pieces is None:
                            pieces = []
                        if forwarded_to < pos:
                            pieces.append(data[forwarded_to:pos])
                        if replacement:
                            pieces.append(replacement)
                        forwarded_to = end
                pos = end
                if self._terminating:
                    break  # nothing after Terminate is the protocol
        except ProtocolError as exc:
            self.fail_client(str(exc))
            return
        if pos < size and not self._terminating:
            self._client_tail.keep(data, pos)
        transport = self.server.transport
        if pieces is None:
            if pos:
                transport.write(data if pos == size else data[:pos])  # type: ignore[union-attr]
        else:
            if forwarded_to < pos:
                pieces.append(data[forwarded_to:pos])
            transport.writelines(pieces)  # type: ignore[union-attr]
        if self._terminating:
            # The client's Terminate went upstream with everything before it; now end the session.
            self.close("client terminated the session", terminate_upstream=False)

    def _client_message(
        self, type_byte: int, data: bytes, start: int, end: int, record: Callable[[list[Any]], None] | None
    ) -> bytes | None:
        """Masking sessions: the inner decision, then the forwarded message noted for ResultShapes."""
        skipping = self._skipping_to_sync
        result = self._client_message_inner(type_byte, data, start, end, record)
        shapes = self._shapes
        if result is _HOLD or result == b"" or shapes is None:
            return result
        if skipping and type_byte != _SYNC:
            return result
        if type_byte in (_Q, _F):
            shapes.client("query")
        elif type_byte == _SYNC:
            shapes.client("sync")
        elif type_byte == _P:
            if result is None:
                shapes.client("parse", cstring_at(data, start, end)[0])
            else:  # the injected raising Parse/Bind/Execute
                shapes.client("parse", "")
                shapes.client("bind", "", "")
                shapes.client("execute", "")
        elif type_byte == _B:
            if result is None:
                portal, offset = cstring_at(data, start, end)
                statement, offset = cstring_at(data, offset, end)
                shapes.client("bind", portal, statement, bind_result_formats(data, offset, end))
            else:  # the injected raising Parse/Bind/Execute in place of a denied execution
                shapes.client("parse", "")
                shapes.client("bind", "", "")
                shapes.client("execute", "")
        elif result is None and type_byte == _E:
            shapes.client("execute", cstring_at(data, start, end)[0])
        elif result is None and (type_byte in (_DESCRIBE, _CLOSE)) and end > start:
            target = chr(data[start])
            shapes.client(
                "describe" if type_byte == _DESCRIBE else "close",
                target,
                cstring_at(data, start + 1, end)[0],
            )
        return result

    def _client_message_inner(
        self, type_byte: int, data: bytes, start: int, end: int, record: Callable[[list[Any]], None] | None
    ) -> bytes | None:
        """Look at one client message: None forwards it; bytes are sent instead of it (b"" drops it)."""
        if self._skipping_to_sync:
            # After a denied Parse PostgreSQL ignores everything up to Sync; so do we. Flush still goes
            # through: clients such as asyncpg send Parse/Describe/Flush and wait for the error.
            if type_byte == _FLUSH:
                return None
            if type_byte != _SYNC:
                return b""
            self._skipping_to_sync = False
        if self.gate is not None and type_byte in _BATCH_TRACKED:
            self._statements.track(type_byte)
        if type_byte == _Q:
            if self._forced is not None:
                outcome, self._forced = self._forced, None
                return None if outcome.allowed else raising_query(outcome.message, outcome.sqlstate)
            self.counters.statements += 1
            try:
                sql, _ = sql_at(data, start, end)
            except NotUtf8:
                return raising_query(
                    f"hoop: statement text is not valid UTF-8, so it was not run [ref {new_reference()}]"
                )
            # What may be stored or shown; most statements are rejected by one prefilter over their bytes.
            shown = sql if self.masking is None else self.masking.text_of(sql, data, start, end - 1)
            if record is not None:
                record([self._now, "pg.query", shown])
            if self.gate is not None:
                verdict = self.gate.check(sql)
                self._note_decision(verdict, shown, record)
                if verdict.action == "review" and self.hold is not None:
                    self._statements.untrack_held_query()
                    self._held = (new_request_id(), verdict, shown)
                    return _HOLD
                if verdict.action != "allow":
                    return raising_query(self._deny_text(verdict))
        elif type_byte == _P:
            if self._forced is not None:
                outcome, self._forced = self._forced, None
                if outcome.allowed:
                    name = cstring_at(data, start, end)[0]
                    if self._held_verdict is not None:
                        self._statements.parse_decided(name, self._held_verdict, True)
                    return None
                return self._deny_parse(outcome.message, outcome.sqlstate)
            self.counters.statements += 1
            name, offset = cstring_at(data, start, end)
            try:
                sql, _ = sql_at(data, offset, end)
            except NotUtf8:
                return self._deny_parse(
                    f"hoop: statement text is not valid UTF-8, so it was not run [ref {new_reference()}]"
                )
            shown = sql if self.masking is None else self.masking.text_of(sql, data, offset, end - 1)
            if record is not None:
                record([self._now, "pg.parse", name, shown])
            if self.gate is not None:
                verdict = self.gate.check(sql)
                self._note_decision(verdict, shown, record)
                if verdict.action == "review" and self.hold is not None:
                    self._statements.untrack_held_parse()
                    self._held = (new_request_id(), verdict, shown)
                    self._held_verdict = verdict
                    return _HOLD
                if verdict.action == "allow":
                    self._statements.parse_decided(name, verdict, False)
                else:
                    # In place of the Parse: a Parse/Bind/Execute of a raising statement. The server answers
                    # with its own ErrorResponse where the client expects the Parse's answer, and aborts the
                    # batch (and its implicit transaction) exactly as if the client's statement had failed.
                    return self._deny_parse(self._deny_text(verdict))
        elif type_byte == _B:
            if self.gate is not None:
                replacement = self._check_bind(data, start, end)
                if replacement is not None:
                    return replacement
            if record is not None:
                portal, offset = cstring_at(data, start, end)
                statement, offset = cstring_at(data, offset, end)
                formats = _unpack_u16(data, offset)[0] if offset + 2 <= end else 0
                offset += 2 + 2 * formats
                params = _unpack_u16(data, offset)[0] if offset + 2 <= end else 0
                record([self._now, "pg.bind", portal, statement, params])
        elif type_byte == _E:
            if record is not None:
                portal, offset = cstring_at(data, start, end)
                max_rows = _unpack_i32(data, offset)[0] if offset + 4 <= end else 0
                record([self._now, "pg.execute", portal, max_rows])
        elif type_byte == _COPY_DATA:
            if record is not None:
                payload = bytes(data[start:end])
                if self.masking is not None:
                    masked = self.masking.copy.mask_copy_line(payload)
                    if masked is not None:
                        payload = masked[0]
                record([self._now, "pg.copy", "in", payload])
        elif type_byte == _F:
            self.counters.statements += 1
            oid = _unpack_u32(data, start)[0] if start + 4 <= end else 0
            if record is not None:
                record([self._now, "pg.function_call", oid])
            if self.gate is not None:
                verdict = self.gate.check_function_call()
                self._note_decision(verdict, f"<function call oid {oid}>", record)
                if verdict.action != "allow":
                    return raising_query(self._deny_text(verdict))
        elif type_byte == _X:
            self._terminating = True
        return None

    def _check_bind(self, data: bytes, start: int, end: int) -> bytes | None:
        """Decide one execution of a prepared statement; None lets the Bind through."""
        _portal, offset = cstring_at(data, start, end)
        name = cstring_at(data, offset, end)[0]
        if self._forced is not None:  # the replay of a Bind held for review
            outcome, self._forced = self._forced, None
            if outcome.allowed:
                self._statements.approve_in_batch(name)
                return None
            return self._deny_bind(outcome.message, outcome.sqlstate)
        statements = self._statements
        prepared, pending_approval = statements.statement(name)
        if prepared is None:
            # Not parsed through this relay: SQL-level PREPARE shares the namespace and was never decided
            # per execution. Fail closed.
            reference = new_reference()
            message = (
                f'hoop: prepared statement "{name}" was not prepared through the gateway [ref {reference}]'
            )
            return self._deny_bind(message)
        if pending_approval:
            statements.approve_in_batch(name)  # the approved Parse is in this very batch
        verdict = prepared if prepared.decision is None else self.gate.decide(prepared.statements)  # type: ignore[union-attr]
        if verdict.action == "allow" or statements.approved_in_batch(name):
            return None
        if verdict.action == "review":
            if statements.take_credit(name):
                return None
            if self.hold is not None:
                statements.untrack_held_bind()
                shown = "; ".join(s.text for s in verdict.statements)
                if self.masking is not None:
                    shown = self.masking.text(shown)
                self._note_decision(verdict, shown, self.record)
                self._held = (new_request_id(), verdict, shown)
                self._held_verdict = None
                return _HOLD
        shown = "; ".join(s.text for s in verdict.statements)
        self._note_decision(verdict, shown if self.masking is None else self.masking.text(shown), self.record)
        return self._deny_bind(self._deny_text(verdict))

    def _deny_bind(self, message: str, sqlstate: str = "42501") -> bytes:
        """A Bind replaced by the raising Parse/Bind/Execute; the server's error answers the client's Bind."""
        self._skipping_to_sync = True
        self._statements.bind_replaced()
        return raising_extended(message, sqlstate)

    def _deny_parse(self, message: str, sqlstate: str = "42501") -> bytes:
        # In place of the Parse: a Parse/Bind/Execute of a raising statement. The server answers with its
        # own ErrorResponse where the client expects the Parse's answer, and aborts the batch (and its
        # implicit transaction) exactly as if the client's statement had failed.
        self._skipping_to_sync = True
        if self.gate is not None:  # batches are tracked only with a gate (a non-UTF-8 Parse comes here too)
            self._statements.parse_replaced()
        return raising_extended(message, sqlstate)

    # ---------------------------------------------------------------- holding for review

    @property
    def holding(self) -> bool:
        return self._held_input is not None

    def _start_hold(self, data: bytes, pos: int, pieces: list[bytes] | None, forwarded_to: int) -> None:
        """Forward what came before the held message; everything from it on waits for the decision."""
        assert self._held is not None
        head = pieces or []
        if forwarded_to < pos:
            head.append(data[forwarded_to:pos])
        if head:
            self.server.transport.writelines(head)  # type: ignore[union-attr]
        self._held_input = bytearray(data[pos:])
        self._client_tail.clear()
        # Reading stays on while held (bytes are buffered, capped at max_message_size): with reading paused
        # the transport would not notice the client going away, and the request must end as cancelled.
        request_id, verdict, sql = self._held
        timeout = verdict.decision.review_timeout_seconds if verdict.decision else 300.0
        self.client.write(notice_response(hold_notice(request_id, timeout)).encode())
        self._hold_task = asyncio.get_running_loop().create_task(
            self._await_decision(request_id, verdict, sql)
        )

    async def _await_decision(self, request_id: str, verdict: Verdict, sql: str) -> None:
        assert self.hold is not None
        try:
            outcome = await self.hold(request_id, verdict, sql)
        except asyncio.CancelledError:
            if self._closed or self._cancel_outcome is None:
                return
            outcome = self._cancel_outcome
        except Exception:
            log.exception("approval flow failed for request %s", request_id)
            outcome = HoldOutcome(
                False, f"hoop: the approval flow failed, so the statement is denied [ref {request_id}]"
            )
        if self._closed:
            return
        self._hold_task = None
        self._held = None
        held = bytes(self._held_input or b"")
        self._held_input = None
        self._forced = outcome
        self.from_client(held)

    def cancel_hold(self) -> bool:
        """A CancelRequest for a held statement: the request is cancelled and the statement never runs."""
        if self._hold_task is None:
            return False
        self._cancel_outcome = HoldOutcome(
            False, "canceling statement due to user request", SQLSTATE_CANCELLED
        )
        self._hold_task.cancel()
        return True

    def _note_decision(self, verdict: Verdict, sql: str, record: Callable[[list[Any]], None] | None) -> None:
        if record is not None:
            statements = verdict.statements
            flags = (
                statements[0].flags
                if len(statements) == 1
                else frozenset().union(*(s.flags for s in statements))
            )
            key = (verdict.action, verdict.kind, verdict.rule, flags)
            payload = self._decision_payloads.get(key)
            if payload is None:  # a session makes the same few decisions over and over: build each once
                payload = {"decision": key[0], "kind": key[1], "rule": key[2], "flags": sorted(flags)}
                if len(self._decision_payloads) < 1024:
                    self._decision_payloads[key] = payload
            record([self._now, "policy.decision", payload])
        if self.audit is not None:
            self.audit(
                {
                    "action": "statement",
                    "decision": verdict.action,
                    "kind": verdict.kind,
                    "rule": verdict.rule,
                    "statement": sql,
                }
            )

    @staticmethod
    def _deny_text(verdict: Verdict) -> str:
        return denial_message(verdict, new_reference())

    # ---------------------------------------------------------------- server → client

    def from_server(self, data: bytes) -> None:
        try:
            self._from_server(data)
        finally:
            if self._events:
                self._flush_events()

    def _from_server(self, data: bytes) -> None:
        self.counters.bytes_from_server += len(data)
        self._now = (time.monotonic_ns() - self._t0_ns) // 1000
        if self._server_tail.parts:
            joined = self._server_tail.add(data)
            if joined is None:
                return
            data = joined
        size = len(data)
        pos = 0
        limit = self.max_size
        rows = 0
        run_start = -1  # start of the current run of DataRow frames, for the recorder
        # Where a run of DataRows (or of CopyData) is masked as a whole once it ends: the frames' offsets.
        row_frames: list[int] = []
        copy_frames: list[int] = []
        pieces: list[bytes] | None = None  # only when a message is swallowed or replaced
        kept_from = 0
        masking = self.masking
        handlers = self._server_handlers
        try:
            while size - pos >= 5:
                type_byte = data[pos]
                length = _unpack_i32(data, pos + 1)[0]
                if length < 4 or length > limit:
                    raise ProtocolError(f"invalid message length {length} from upstream")
                end = pos + 1 + length
                if end > size:
                    break
                if type_byte == _DATA_ROW:
                    rows += 1
                    if run_start < 0:
                        run_start = pos
                        if copy_frames:  # keep the recorder's events in wire order
                            pieces, kept_from = self._end_copy_run(data, copy_frames, pos, pieces, kept_from)
                    if masking is not None:
                        row_frames.append(pos)
                    pos = end
                    continue
                if run_start >= 0:
                    pieces, kept_from = self._end_row_run(
                        data, run_start, pos, rows, row_frames, pieces, kept_from
                    )
                    rows, run_start = 0, -1
                if type_byte == _COPY_DATA:
                    copy_frames.append(pos)
                    pos = end
                    continue
                if copy_frames:
                    pieces, kept_from = self._end_copy_run(data, copy_frames, pos, pieces, kept_from)
                handler = handlers.get(type_byte)
                if handler is not None:
                    replacement = handler(data, pos, end)
                    if replacement is not None:  # b"" drops the message
                        if pieces is None:
                            pieces = []
                        pieces.append(data[kept_from:pos])
                        if replacement:
                            pieces.append(replacement)
                        kept_from = end
                pos = end
            if run_start >= 0:
                pieces, kept_from = self._end_row_run(
                    data, run_start, pos, rows, row_frames, pieces, kept_from
                )
            if copy_frames:
                pieces, kept_from = self._end_copy_run(data, copy_frames, pos, pieces, kept_from)
        except (ProtocolError, MalformedMessage) as exc:
            message = str(exc) if isinstance(exc, UnmaskableOutput) else "upstream protocol error"
            self.client.write(error_response(message, SQLSTATE_PROTOCOL_VIOLATION, "FATAL").encode())
            self.close(f"upstream protocol error: {exc}")
            return
        if pos < size:
            self._server_tail.keep(data, pos)
        transport = self.client.transport
        if pieces is None:
            if pos:
                transport.write(data if pos == size else data[:pos])  # type: ignore[union-attr]
        else:
            pieces.append(data[kept_from:pos])
            # One joined write: a masked buffer has hundreds of pieces, and the transport would handle each.
            transport.write(b"".join(pieces))  # type: ignore[union-attr]

    def _end_row_run(
        self,
        data: bytes,
        start: int,
        stop: int,
        rows: int,
        frames: list[int],
        pieces: list[bytes] | None,
        kept_from: int,
    ) -> tuple[list[bytes] | None, int]:
        """Count a run of DataRows, mask it (when `frames` lists its rows), and record it as the client
        receives it. Returns the updated (pieces, kept_from) of `from_server`."""
        self.counters.rows += rows
        replaced = None
        if frames:
            row_masker = self._current_rows_masker(data, frames[0])
            if row_masker is not None:
                replaced = self._take_counts(
                    row_masker.mask_datarow_frames(data, frames, stop, self._frame_scan)
                )
            frames.clear()
        if replaced is None:
            if self.record is not None:
                self.record([self._now, "pg.rows", rows, data[start:stop]])
            return pieces, kept_from
        if pieces is None:
            pieces = []
        recorded: list[bytes] = []
        recorded_from = start
        for frame_start, frame_end, message in replaced:
            pieces.append(data[kept_from:frame_start])
            pieces.append(message)
            kept_from = frame_end
            recorded.append(data[recorded_from:frame_start])
            recorded.append(message)
            recorded_from = frame_end
        if self.record is not None:
            recorded.append(data[recorded_from:stop])
            self.record([self._now, "pg.rows", rows, b"".join(recorded)])
        return pieces, kept_from

    def _end_copy_run(
        self, data: bytes, frames: list[int], stop: int, pieces: list[bytes] | None, kept_from: int
    ) -> tuple[list[bytes] | None, int]:
        """Mask a run of COPY OUT CopyData messages and record their payloads as one event."""
        masking = self.masking
        replaced = None
        if masking is not None:
            replaced = self._take_counts(masking.copy.mask_copy_frames(data, frames, stop, self._frame_scan))
        if replaced is not None:
            if pieces is None:
                pieces = []
            for frame_start, frame_end, message in replaced:
                pieces.append(data[kept_from:frame_start])
                pieces.append(message)
                kept_from = frame_end
        if self.record is not None:
            ends = frames[1:]
            ends.append(stop)
            payloads = [
                data[frame_start + 5 : frame_end] for frame_start, frame_end in zip(frames, ends, strict=True)
            ]
            for frame_start, _, message in replaced or ():
                payloads[bisect_left(frames, frame_start)] = message[5:]
            self.record([self._now, "pg.copy", "out", b"".join(payloads)])
        frames.clear()
        return pieces, kept_from

    def _take_counts(
        self, result: tuple[list[tuple[int, int, bytes]], dict[str, int]] | None
    ) -> list[tuple[int, int, bytes]] | None:
        if result is None:
            return None
        assert self.masking is not None
        self.masking.add(result[1])
        return result[0]

    def _current_rows_masker(self, data: bytes, pos: int) -> RowMasker | None:
        """The RowMasker of the result now streaming (None when no column can need masking)."""
        masking = self.masking
        assert masking is not None and self._shapes is not None
        if not self._rows_masker_known:
            shape, formats = self._shapes.rows_shape()
            if shape is not None:
                try:
                    self._rows_masker = masking.rows(shape, formats)
                except (ValueError, struct.error) as error:  # a RowDescription the masker cannot read
                    raise ProtocolError(f"malformed RowDescription from upstream: {error}") from None
            else:  # unplaced rows: every column is scanned as text (fail closed)
                self._rows_masker = masking.rows_unknown(
                    _unpack_u16(data, pos + 5)[0] if _unpack_i32(data, pos + 1)[0] >= 6 else 0
                )
            self._rows_masker_known = True
        return self._rows_masker

    # Each handler looks at one server message type: None forwards the message, bytes are sent in its place
    # (b"" drops it). Message types without a handler are forwarded unread.

    def _build_server_handlers(self) -> dict[int, Callable[[bytes, int, int], bytes | None]]:
        handlers: dict[int, Callable[[bytes, int, int], bytes | None]] = {
            _ROW_DESC: self._on_row_description,
            _COMPLETE: self._on_complete,
            _READY: self._on_ready,
            _ERROR: self._on_error,
            _NOTICE: self._on_notice,
            _PARSE_COMPLETE: self._on_parse_complete,
            _BIND_COMPLETE: self._on_bind_complete,
        }
        if self.masking is not None:
            handlers.update(
                {
                    _CLOSE_COMPLETE: self._on_close_complete,
                    _NO_DATA: self._on_no_data,
                    _PORTAL_SUSPENDED: self._on_result_done,
                    _EMPTY_QUERY: self._on_result_done,
                    _COPY_OUT_RESPONSE: self._on_copy_out_response,
                    _NOTIFICATION: self._on_text_message,
                    _PARAMETER_STATUS: self._on_text_message,
                    _FUNCTION_RESULT: self._on_text_message,
                }
            )
        return handlers

    def _on_row_description(self, data: bytes, pos: int, end: int) -> bytes | None:
        raw = data[pos + 5 : end]
        shapes = self._shapes
        if shapes is not None:
            self._rows_masker_known = False
            shapes.row_description(raw)
        record = self.record
        if record is not None:
            if raw != self._last_row_description:  # most sessions repeat a few result shapes
                self._last_row_description = raw
                self._last_columns = row_description_at(raw, 0, len(raw))
            names, oids = self._last_columns
            record([self._now, "pg.rowdesc", names, oids])
        return None

    def _on_complete(self, data: bytes, pos: int, end: int) -> bytes | None:
        if self._shapes is not None:
            self._on_result_done(data, pos, end)
        record = self.record
        if record is not None:
            record([self._now, "pg.complete", cstring_at(data, pos + 5, end)[0]])
        return None

    def _on_result_done(self, data: bytes, pos: int, end: int) -> bytes | None:
        """CommandComplete, PortalSuspended or EmptyQueryResponse, for masking: one result is over."""
        shapes, masking = self._shapes, self.masking
        assert shapes is not None and masking is not None
        self._rows_masker_known = False
        shapes.result_done()
        counts = masking.take_counts()
        if counts is not None and self.record is not None:
            self.record([self._now, "mask.summary", counts])
        return None

    def _on_ready(self, data: bytes, pos: int, end: int) -> bytes | None:
        if end - pos != 6:
            raise ProtocolError("malformed ReadyForQuery from upstream")
        if self._shapes is not None:
            self._rows_masker_known = False
            self._shapes.ready()
        self.transaction_status = chr(data[pos + 5])
        if self.gate is not None:
            self._statements.answered()
        return None

    def _on_error(self, data: bytes, pos: int, end: int) -> bytes | None:
        if self._shapes is not None:
            self._rows_masker_known = False
            self._shapes.error()
        if self.gate is not None:
            self._statements.failed()
        masked = self._masked_notice(_ERROR, data, pos, end)
        if masked is not None:
            return masked
        if self.record is not None:
            self.record([self._now, "pg.error", fields_at(data, pos + 5, end)])
        if data.find(OWN_ERROR_MARK, pos + 5, end) >= 0:
            # Our own raised denial: drop the PL/pgSQL context and source location PostgreSQL attaches to
            # it; the client needs the message, not how the gateway produced it.
            return clean_own_error(data, pos + 5, end)
        return None

    def _on_notice(self, data: bytes, pos: int, end: int) -> bytes | None:
        masked = self._masked_notice(_NOTICE, data, pos, end)
        if masked is not None:
            return masked
        if self.record is not None:
            self.record([self._now, "pg.notice", fields_at(data, pos + 5, end)])
        return None

    def _masked_notice(self, type_byte: int, data: bytes, pos: int, end: int) -> bytes | None:
        """The ErrorResponse/NoticeResponse with its text fields masked (and recorded as the client sees
        it), or None when masking is off or changed nothing."""
        masking = self.masking
        if masking is None:
            return None
        masked = mask_notice_fields(masking.masker, data[pos + 5 : end])
        if masked is None:
            return None
        masking.add(masked[1])
        if self.record is not None:
            kind = "pg.error" if type_byte == _ERROR else "pg.notice"
            self.record([self._now, kind, fields_at(masked[0], 0, len(masked[0]))])
        return bytes([type_byte]) + _pack_i32(len(masked[0]) + 4) + masked[0]

    def _on_parse_complete(self, data: bytes, pos: int, end: int) -> bytes | None:
        if self._shapes is not None:
            self._rows_masker_known = False
            self._shapes.parse_complete()
        # The answer to a message the gateway injected: the client never sent it.
        return b"" if self.gate is not None and self._statements.injected(True) else None

    def _on_bind_complete(self, data: bytes, pos: int, end: int) -> bytes | None:
        if self._shapes is not None:
            self._rows_masker_known = False
            self._shapes.bind_complete()
        return b"" if self.gate is not None and self._statements.injected(False) else None

    def _on_close_complete(self, data: bytes, pos: int, end: int) -> bytes | None:
        assert self._shapes is not None
        self._rows_masker_known = False
        self._shapes.close_complete()
        return None

    def _on_no_data(self, data: bytes, pos: int, end: int) -> bytes | None:
        assert self._shapes is not None
        self._rows_masker_known = False
        self._shapes.row_description(None)
        return None

    def _on_copy_out_response(self, data: bytes, pos: int, end: int) -> bytes | None:
        self._rows_masker_known = False
        if end > pos + 5 and data[pos + 5] == 1:
            # Binary COPY cannot be scanned for personal data: fail closed rather than leak it.
            raise ProtocolError(
                "binary COPY output cannot be masked; use COPY ... TO STDOUT in text or csv format"
            )
        if self.masking is not None and self.masking.column_rules:
            # COPY data names no columns and no tables: mask_columns rules cannot be applied to it.
            raise UnmaskableOutput(
                "COPY output cannot be checked against this session's mask_columns rules; use SELECT"
            )
        return None

    def _on_text_message(self, data: bytes, pos: int, end: int) -> bytes | None:
        assert self.masking is not None
        return mask_text_message(self.masking, data[pos], data, pos + 5, end)
