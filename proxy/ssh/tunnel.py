"""A forwarded TCP connection (`ssh -L`, `ssh -W`) as a gateway session: listed, killable, ended with the
token, recorded (its destination and byte counts; a tunnel's payload is opaque bytes and is not kept).

The upstream host opens the connection, through the gateway's own login; the gateway relays bytes between
the agent's channel and that upstream channel, each side pausing the other when its window is full.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncssh

from proxy.sessions import Session
from proxy.ssh.channel import SshCounters

if TYPE_CHECKING:
    from proxy.recorder import SessionRecorder
    from proxy.ssh.link import SshLink

log = logging.getLogger("hoop.ssh")


class _Side(asyncssh.SSHTCPSession[bytes]):
    """One end of the tunnel; what it receives goes out of the other end."""

    def __init__(self, tunnel: Tunnel, from_agent: bool) -> None:
        self._tunnel = tunnel
        self._from_agent = from_agent
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        # What the other end sent before this end's channel existed (the upstream speaks first, e.g. an SSH
        # banner, while asyncssh is still wiring the agent's channel); at most one window's worth.
        self.pending: list[bytes] = []

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:  # type: ignore[override]
        self.chan = chan
        for data in self.pending:
            chan.write(data)
        self.pending.clear()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._tunnel.relay(data, self._from_agent)

    def eof_received(self) -> bool:
        self._tunnel.eof(self._from_agent)
        return True

    def pause_writing(self) -> None:
        self._tunnel.pause(self._from_agent)

    def resume_writing(self) -> None:
        self._tunnel.resume(self._from_agent)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tunnel.close("agent closed the tunnel" if self._from_agent else "upstream closed the tunnel")


class Tunnel:
    def __init__(self, link: SshLink, destination: str) -> None:
        self.link = link
        self.destination = destination
        self.counters = SshCounters()
        self.agent_side = _Side(self, from_agent=True)
        self.upstream_side = _Side(self, from_agent=False)
        self._session: Session | None = None
        self._recorder: SessionRecorder | None = None
        self._expiry: Any = None
        self._closed = False

    async def open(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> _Side:
        """Open the upstream end, then register the session; returns the agent's end for asyncssh."""
        upstream = await self.link.upstream()
        await upstream.create_connection(
            lambda: self.upstream_side, dest_host, dest_port, orig_host, orig_port, encoding=None
        )
        link = self.link
        session = link.new_session()
        try:
            self._recorder = link.gateway.open_recorder(session, time.monotonic_ns())
        except Exception:
            self._close_channels()
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "hoop: the gateway cannot record this tunnel (strict mode)"
            ) from None
        self._session = session
        session.counters = self.counters
        session.terminate = lambda message, _code: self.close(message)
        link.gateway.session_started(session)
        self._expiry = link.gateway.schedule_expiry(session)
        self._record("ssh.forward", {"destination": self.destination})
        return self.agent_side

    def relay(self, data: bytes, from_agent: bool) -> None:
        counters = self.counters
        if from_agent:
            counters.bytes_from_client += len(data)
        else:
            counters.bytes_from_server += len(data)
        other = self.upstream_side if from_agent else self.agent_side
        if other.chan is not None:
            other.chan.write(data)
        else:
            other.pending.append(data)

    def eof(self, from_agent: bool) -> None:
        other = self.upstream_side if from_agent else self.agent_side
        if other.chan is not None:
            with contextlib.suppress(Exception):
                other.chan.write_eof()

    def pause(self, from_agent: bool) -> None:
        # `from_agent` is the side whose outgoing window is full: stop reading from the other one.
        source = self.upstream_side if from_agent else self.agent_side
        if source.chan is not None:
            source.chan.pause_reading()

    def resume(self, from_agent: bool) -> None:
        source = self.upstream_side if from_agent else self.agent_side
        if source.chan is not None:
            source.chan.resume_reading()

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_channels()
        if self._expiry is not None:
            self._expiry.cancel()
        counters = self.counters
        moved = {"sent": counters.bytes_from_client, "received": counters.bytes_from_server}
        self._record("ssh.transfer", moved)
        if self._session is not None:
            self.link.gateway.session_ended(self._session, reason, self._recorder)

    def _close_channels(self) -> None:
        for side in (self.agent_side, self.upstream_side):
            if side.chan is not None:
                with contextlib.suppress(Exception):
                    side.chan.close()

    def _record(self, kind: str, details: dict[str, Any]) -> None:
        recorder = self._recorder
        if recorder is not None:
            recorder.append([recorder.now_us(), kind, details])
