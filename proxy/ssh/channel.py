"""One SSH session channel through the gateway: decide, hold, then relay both ways with masking and recording.

Each exec, shell or subsystem channel is a gateway session of its own (protocol "ssh"): its own decision,
approval request, recording and entry in the sessions list. Nothing reaches the upstream before the decision:
the upstream channel is opened only once the command (or shell) is allowed or approved, and what the agent
types meanwhile waits in a bounded buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from proxy.approvals import new_request_id
from proxy.durations import format_duration
from proxy.masking.masker import Counts, Masker, merge_counts
from proxy.masking.stream import StreamMasker
from proxy.policy.engine import Decision
from proxy.sessions import Session
from proxy.ssh.analysis_pool import analyse_off_loop
from proxy.ssh.decide import SFTP, SHELL, allowed_by_name, decide_exec
from proxy.ssh.terminal_mask import TerminalMasker
from proxy.ssh.upstream import SshUpstreamError

if TYPE_CHECKING:
    from proxy.recorder import SessionRecorder
    from proxy.ssh.link import SshLink

log = logging.getLogger("hoop.ssh")

EXIT_DENIED = 126  # what a shell reports for "found but cannot run": the agent's cue that policy said no
EXIT_GATEWAY = 255  # what OpenSSH reports for a failure of the connection itself
# Keystrokes typed while a command waits for its decision; beyond this the client is paused.
MAX_PENDING_INPUT = 1 << 20
# A prompt or a progress line has no newline: the line-buffered masker lets it through once output pauses.
IDLE_FLUSH_PTY = 0.03
IDLE_FLUSH_EXEC = 0.2
# Output is paused while the recorder is this far behind, so a fast upstream cannot outrun the disk.
RECORDER_BACKLOG_LIMIT = 32 << 20
_STDERR = asyncssh.EXTENDED_DATA_STDERR


class SshCounters:
    """What the sessions list shows for an SSH session (the same names as the Postgres relay's counters)."""

    __slots__ = ("bytes_from_client", "bytes_from_server", "rows", "statements")

    def __init__(self) -> None:
        self.statements = 0  # commands: the exec line, or lines entered in a shell
        self.rows = 0  # output lines
        self.bytes_from_client = 0
        self.bytes_from_server = 0


def held_message(request_id: str, timeout_seconds: float) -> str:
    """The line an agent sees on stderr at once when its command is held (the SSH form of the contract)."""
    return (
        f"hoop: command held for review (request {request_id}); "
        f"waiting up to {format_duration(timeout_seconds)} for an approver"
    )


class _UpstreamSide(asyncssh.SSHClientSession[bytes]):
    """The upstream channel's callbacks, handed straight to the relay."""

    def __init__(self, relay: ChannelRelay) -> None:
        self._relay = relay

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._relay.upstream_data(data, datatype == _STDERR)

    def eof_received(self) -> bool:
        self._relay.upstream_eof()
        return True

    def exit_status_received(self, status: int) -> None:
        self._relay.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._relay.exit_signal = (signal, core_dumped, msg, lang)

    def pause_writing(self) -> None:
        self._relay.pause_client()

    def resume_writing(self) -> None:
        self._relay.resume_client()

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.upstream_closed()


class ChannelRelay(asyncssh.SSHServerSession[bytes]):
    """The gateway's side of one agent channel."""

    def __init__(self, link: SshLink) -> None:
        self.link = link
        self.gateway = link.gateway
        self.counters = SshCounters()
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str, str] | None = None
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._request: tuple[str, str | None] | None = (
            None  # ("exec", line) | ("shell", None) | ("subsystem", n)
        )
        self._pty: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None
        self._session: Session | None = None
        self._recorder: SessionRecorder | None = None
        self._task: asyncio.Task[None] | None = None
        self._upstream_chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._pending_input: list[bytes] = []
        self._pending_size = 0
        self._client_eof = False
        self._client_paused = 0  # reasons the client's input is paused (upstream full, pending buffer full)
        self._upstream_paused = False
        self._maskers: dict[bool, StreamMasker] = {}  # by "is stderr"
        self._input_masker: StreamMasker | None = None
        self._mask_counts: Counts = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        self._idle_flush = IDLE_FLUSH_EXEC
        self._last_output = 0.0  # loop time of the last upstream output, for the idle flush
        self._finished = False
        self._end_reason = "client closed the channel"
        self._expiry: asyncio.TimerHandle | None = None
        self._backlog_timer: asyncio.TimerHandle | None = None
        self._masker: Masker | None = link.masker
        self._binary = False
        self._screen_masker: TerminalMasker | None = None  # pty output: values split by cursor control
        self._input_screen_masker: TerminalMasker | None = None  # typed input: erase characters applied

    # ------------------------------------------------------------------ requests from the agent

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:  # type: ignore[override]
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        if self._request is not None:
            return False  # after the exec/shell request: the decision, maskers and recording assumed none
        self._pty = (term_type or "xterm", term_size, dict(term_modes))
        return True

    def shell_requested(self) -> bool:
        self._request = ("shell", None)
        return True

    def exec_requested(self, command: str) -> bool:
        self._request = ("exec", command)
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        policy = self.link.policy
        if policy is None:
            self._request = ("subsystem", subsystem)
            return True  # the refusal is reported when the channel starts
        kind = SFTP if subsystem == "sftp" else f"subsystem:{subsystem}"
        allowed, decision = allowed_by_name(policy, kind)
        self.gateway.audit(
            None,
            {
                "action": "ssh.subsystem",
                "identity": self.link.identity.subject,
                "connection": self.link.connection,
                "subsystem": subsystem,
                "decision": "allow" if allowed else "deny",
                "rule": decision.rule,
            },
        )
        if not allowed:
            return False  # the client reports "subsystem request failed"
        self._request = ("subsystem", subsystem)
        return True

    def session_started(self) -> None:
        # The session and its recording are opened here, synchronously: input the client sent together with
        # its request is delivered right after this call, and must be recorded like any other.
        link = self.link
        if not link.refusal and self._request is not None and not self._open_session():
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.counters.bytes_from_client += len(data)
        self._record_input(data)
        upstream = self._upstream_chan
        if upstream is not None:
            upstream.write(data)
            return
        self._pending_input.append(data)
        self._pending_size += len(data)
        if self._pending_size > MAX_PENDING_INPUT and self._chan is not None:
            self._pending_size = -(1 << 62)  # pause once; resumed when the upstream opens
            self.pause_client()

    def eof_received(self) -> bool:
        self._client_eof = True
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.write_eof()
        return True  # keep the channel half-open: the command's output is still to come

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self._pty is not None:
            self._pty = (self._pty[0], (width, height, pixwidth, pixheight), self._pty[2])
        self._record("ssh.resize", width, height)
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.change_terminal_size(width, height, pixwidth, pixheight)

    def signal_received(self, signal: str) -> None:
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.send_break(msec)
            return True
        return False

    def pause_writing(self) -> None:
        self._upstream_paused = True
        if self._upstream_chan is not None:
            self._upstream_chan.pause_reading()

    def resume_writing(self) -> None:
        self._upstream_paused = False
        if self._upstream_chan is not None and self._backlog_timer is None:
            self._upstream_chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The agent went away (or the channel was closed): a held command is cancelled and never runs."""
        self.link.channel_closed()
        if self._task is not None and not self._task.done():
            self._end_reason = "client disconnected"
            self._task.cancel()
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.close()
        self._finish(self._end_reason)

    # ------------------------------------------------------------------ the decision, then the relay

    async def _run(self) -> None:
        chan = self._chan
        assert chan is not None
        try:
            await self._start()
        except asyncio.CancelledError:
            raise
        except SshUpstreamError as error:
            self._fail(f"hoop: {error}", "upstream unavailable")
        except asyncssh.ChannelOpenError as error:
            # The upstream host itself said no (e.g. a subsystem it does not run): its reason is the agent's.
            self._fail(f"hoop: the upstream host refused the session: {error.reason}", "upstream refused")
        except Exception:
            log.exception("ssh channel of %s failed", self.link.connection)
            self._fail("hoop: the gateway failed to run this command", "gateway error")

    async def _start(self) -> None:
        link = self.link
        if link.refusal:
            self._fail(f"hoop: {link.refusal}", "refused")
            return
        if self._request is None:
            self._fail("hoop: this channel asked for nothing the gateway can run", "no request")
            return
        what, argument = self._request
        policy = link.policy
        assert policy is not None
        if what == "exec" and not (argument or "").strip():
            # asyncssh (and the SSH protocol) turn an empty exec into a shell: never let it pass as exec.
            self._deny("hoop: an empty command line is refused; ask for an interactive shell instead")
            return
        if what == "exec":
            assert argument is not None
            decision, shown = await self._decide_exec(argument)
        elif what == "shell":
            decision = policy.decide(SHELL)
            shown = "(interactive shell)"
            self._note_decision(decision, shown, SHELL)
        else:
            decision = Decision("allow", SFTP, f"{argument} allowed by name", 0.0, ())
            shown = f"(subsystem {argument})"
            self._note_decision(decision, shown, SFTP)
        if decision.action == "deny":
            self._deny(f"hoop: {what_word(what)} denied by policy ({decision.kind}: {decision.rule})")
            return
        if decision.action == "review" and not await self._hold(decision, shown, what):
            return
        await self._open_upstream(what, argument)

    def _open_session(self) -> bool:
        link = self.link
        session = link.new_session(self._terminal_size())
        self._session = session
        started_ns = time.monotonic_ns()
        try:
            self._recorder = self.gateway.open_recorder(session, started_ns)
        except Exception as error:
            log.error("ssh session refused, it cannot be recorded: %s", error)
            self._session = None
            self._fail("hoop: the gateway cannot record this session, so it is refused (strict mode)", "")
            return False
        session.counters = self.counters
        session.terminate = self.terminate
        self.gateway.session_started(session)
        self._expiry = self.gateway.schedule_expiry(session)
        policy = link.policy
        assert policy is not None
        masker = self._masker
        if self._request is not None and self._request[0] == "subsystem":
            # A binary protocol (sftp): masking would corrupt it, and its payload (whole files) is not
            # recorded, only that it ran and how many bytes moved. Policy allows subsystems by name only.
            self._binary = True
        elif masker is not None:
            self._maskers = {False: StreamMasker(masker), True: StreamMasker(masker)}
            if self._pty is not None:
                self._screen_masker = TerminalMasker(masker)
            self._input_masker = StreamMasker(masker)
            self._input_screen_masker = TerminalMasker(masker)
        if self._pty is not None:
            self._idle_flush = IDLE_FLUSH_PTY
        return True

    def _terminal_size(self) -> tuple[int, int] | None:
        if self._pty is None:
            return None
        width, height = self._pty[1][0], self._pty[1][1]
        return (width or 80, height or 24)

    async def _decide_exec(self, command: str) -> tuple[Decision, str]:
        policy = self.link.policy
        assert policy is not None
        shown = self._mask_text(command)
        self.counters.statements += 1
        self._record("ssh.exec", shown)
        analysis = await analyse_off_loop(command)
        decision = decide_exec(policy, analysis)
        kind = decision.kind if decision.kind else "exec"
        self._note_decision(decision, shown, kind, analysis.reasons)
        return decision, shown

    def _note_decision(
        self, decision: Decision, shown: str, kind: str, reasons: tuple[str, ...] = ()
    ) -> None:
        payload = {
            "decision": decision.action,
            "kind": kind,
            "rule": decision.rule,
            "statement": shown,
            "flags": [],
        }
        if reasons:
            payload["reasons"] = [self._mask_text(reason) for reason in reasons]
        self._record("policy.decision", payload)
        self.gateway.audit(
            self._session,
            {
                "action": "command",
                "decision": decision.action,
                "kind": kind,
                "rule": decision.rule,
                "statement": shown,
            },
        )

    async def _hold(self, decision: Decision, shown: str, what: str) -> bool:
        session = self._session
        assert session is not None and self._chan is not None
        request_id = new_request_id()
        newline = "\r\n" if self._pty is not None else "\n"
        self._chan.write_stderr(
            (held_message(request_id, decision.review_timeout_seconds) + newline).encode()
        )

        def record(kind: str, details: dict[str, Any]) -> None:
            self._record(kind, details)

        outcome = await self.gateway.approvals.hold(
            session,
            request_id,
            statement=shown,
            kind=decision.kind or what,
            rule=decision.rule,
            reason=decision.rule,
            approvers=decision.approvers,
            timeout_seconds=decision.review_timeout_seconds,
            record=record,
        )
        if outcome.allowed:
            return True
        message = outcome.message.replace("statement", what_word(what), 1)
        self._deny(message)
        return False

    async def _open_upstream(self, what: str, argument: str | None) -> None:
        connection = await self.link.upstream()
        if self._finished:
            return
        options: dict[str, Any] = {"encoding": None}
        if self._pty is not None:
            term_type, term_size, term_modes = self._pty
            options.update(term_type=term_type, term_size=term_size, term_modes=term_modes)
        if what == "subsystem":
            options["subsystem"] = argument
            command = None
        else:
            command = argument if what == "exec" else None
        if what == "exec" and not command:
            raise AssertionError("an exec without a command would open a shell upstream")
        opening = asyncio.ensure_future(
            connection.create_session(lambda: _UpstreamSide(self), command, **options)
        )
        try:
            upstream_chan, _ = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Ended (kill, disconnect) while the upstream was opening the channel: close it once it exists,
            # or an approved command would run on with nobody watching.
            opening.add_done_callback(_close_opened_channel)
            raise
        if self._finished:
            upstream_chan.close()
            return
        self._upstream_chan = upstream_chan
        if self._upstream_paused:
            upstream_chan.pause_reading()
        for data in self._pending_input:
            upstream_chan.write(data)
        self._pending_input.clear()
        if self._pending_size < 0:
            self.resume_client()
        self._pending_size = 0
        if self._client_eof:
            upstream_chan.write_eof()

    # ------------------------------------------------------------------ upstream → agent

    def upstream_data(self, data: bytes, stderr: bool) -> None:
        chan = self._chan
        if chan is None or self._finished:
            return
        self.counters.bytes_from_server += len(data)
        masker = self._maskers.get(stderr)
        if masker is not None:
            data = self._screen_pass(masker.feed(data))
            self._last_output = loop_time = asyncio.get_running_loop().time()
            if masker.held and self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_at(
                    loop_time + self._idle_flush, self._flush_idle
                )
        if data:
            self._deliver(data, stderr)

    def _screen_pass(self, masked: tuple[bytes, Counts]) -> bytes:
        """Count what the line masker found, then give pty output its screen-level second reading."""
        data, counts = masked
        if counts:
            merge_counts(self._mask_counts, counts)
        if self._screen_masker is not None and data:
            data, counts = self._screen_masker.mask(data)
            if counts:
                merge_counts(self._mask_counts, counts)
        return data

    def _deliver(self, data: bytes, stderr: bool) -> None:
        chan = self._chan
        assert chan is not None
        self.counters.rows += data.count(b"\n")
        if stderr:
            chan.write_stderr(data)
        else:
            chan.write(data)
        recorder = self._recorder
        if recorder is not None and not self._binary:
            recorder.append([recorder.now_us(), "ssh.output", "stderr" if stderr else "stdout", data])
            if recorder.pending_bytes > RECORDER_BACKLOG_LIMIT:
                self._wait_for_recorder()

    def _wait_for_recorder(self) -> None:
        if self._backlog_timer is not None or self._upstream_chan is None:
            return
        self._upstream_chan.pause_reading()

        def check() -> None:
            self._backlog_timer = None
            recorder = self._recorder
            if recorder is not None and recorder.pending_bytes > RECORDER_BACKLOG_LIMIT // 2:
                self._backlog_timer = asyncio.get_running_loop().call_later(0.01, check)
            elif self._upstream_chan is not None and not self._upstream_paused:
                self._upstream_chan.resume_reading()

        self._backlog_timer = asyncio.get_running_loop().call_later(0.01, check)

    def _flush_idle(self) -> None:
        """Flush a held partial line only once the upstream has been quiet for the whole idle interval: a
        line still streaming in must never be cut (each half of a value would pass the masker alone)."""
        loop = asyncio.get_running_loop()
        quiet_since = self._last_output + self._idle_flush
        if loop.time() < quiet_since:
            self._flush_timer = loop.call_at(quiet_since, self._flush_idle)
            return
        self._flush_timer = None
        self._flush_output()

    def _flush_output(self) -> None:
        for stderr, masker in self._maskers.items():
            if masker.held:
                data = self._screen_pass(masker.flush())
                if data and self._chan is not None:
                    self._deliver(data, stderr)

    def upstream_eof(self) -> None:
        self._flush_output()
        if self._chan is not None:
            with contextlib.suppress(Exception):
                self._chan.write_eof()

    def upstream_closed(self) -> None:
        if self._finished:
            return
        self._flush_output()
        chan = self._chan
        status = self.exit_status
        if self.exit_signal is not None:
            signal, core_dumped, message, lang = self.exit_signal
            self._record("ssh.exit", 128 + 1 if status is None else status)
            self._finish(f"command ended by signal {signal}")
            if chan is not None:
                with contextlib.suppress(Exception):
                    chan.exit_with_signal(signal, core_dumped, message, lang)
            return
        if status is None:
            status = EXIT_GATEWAY
        self._record("ssh.exit", status)
        self._finish(f"command exited with status {status}")
        if chan is not None:
            with contextlib.suppress(Exception):
                chan.exit(status)

    # ------------------------------------------------------------------ flow control

    def pause_client(self) -> None:
        self._client_paused += 1
        if self._client_paused == 1 and self._chan is not None:
            self._chan.pause_reading()

    def resume_client(self) -> None:
        if self._client_paused == 0:
            return
        self._client_paused -= 1
        if self._client_paused == 0 and self._chan is not None:
            self._chan.resume_reading()

    # ------------------------------------------------------------------ endings

    def terminate(self, message: str, code: str = "") -> None:
        """End the channel from outside (operator kill, token expiry, recording failure)."""
        if self._finished:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._upstream_chan is not None:
            with contextlib.suppress(Exception):
                self._upstream_chan.close()
        self._fail(message, message)

    def _deny(self, message: str) -> None:
        """A command or shell the policy or an approver refused: the reason on stderr, exit status 126."""
        self._record("ssh.exit", EXIT_DENIED)
        self._end(message, EXIT_DENIED, "denied")

    def _fail(self, message: str, reason: str) -> None:
        self._end(message, EXIT_GATEWAY, reason or message)

    def _end(self, message: str, status: int, reason: str) -> None:
        chan = self._chan
        self._flush_output()
        self._finish(reason)
        if chan is None:
            return
        newline = "\r\n" if self._pty is not None else "\n"
        with contextlib.suppress(Exception):
            chan.write_stderr((newline + message + newline if self._pty else message + newline).encode())
            chan.exit(status)

    def _finish(self, reason: str) -> None:
        if self._finished:
            return
        self._finished = True
        for timer in (self._flush_timer, self._expiry, self._backlog_timer):
            if timer is not None:
                timer.cancel()
        if self._input_masker is not None and self._input_masker.held:
            self._record_masked_input(self._input_masker.flush())
        if self._mask_counts:
            self._record("mask.summary", dict(self._mask_counts))
        if self._binary:
            counters = self.counters
            self._record(
                "ssh.transfer", {"sent": counters.bytes_from_client, "received": counters.bytes_from_server}
            )
        session = self._session
        if session is not None:
            self.gateway.session_ended(session, reason, self._recorder)

    # ------------------------------------------------------------------ recording

    def _record(self, kind: str, *fields: Any) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.append([recorder.now_us(), kind, *fields])

    def _record_input(self, data: bytes) -> None:
        if self._recorder is None or self._binary:
            return
        if self._pty is not None and b"\r" in data:
            self.counters.statements += data.count(b"\r")
        masker = self._input_masker
        if masker is None:
            self._record("ssh.input", data)
            return
        masked = masker.feed(data)
        if b"\r" in data and masker.held:
            # A terminal's Enter is "\r": the typed line is complete, so mask and record it now.
            flushed = masker.flush()
            masked = (masked[0] + flushed[0], merge_counts(dict(masked[1]), flushed[1]))
        self._record_masked_input(masked)

    def _record_masked_input(self, masked: tuple[bytes, Counts]) -> None:
        data, counts = masked
        if counts:
            merge_counts(self._mask_counts, counts)
        if self._input_screen_masker is not None and data:
            data, counts = self._input_screen_masker.mask(data)
            if counts:
                merge_counts(self._mask_counts, counts)
        if data:
            self._record("ssh.input", data)

    def _mask_text(self, text: str) -> str:
        masker = self._masker
        if masker is None:
            return text
        masked, counts = masker.mask_text(text)
        if counts:
            merge_counts(self._mask_counts, counts)
        return masked


def _close_opened_channel(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[0].close()


def what_word(what: str) -> str:
    return {"exec": "command", "shell": "interactive shell"}.get(what, "subsystem")
