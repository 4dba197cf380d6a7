"""The control API in-process, for the embedded TUI: the same calls, checks and answers as over a socket.

The gateway may run on another thread's event loop (GatewayThread); every call then runs on the gateway's
loop and its answer comes back to the caller's loop, and streams cross through a bounded channel. Events of
a live session are the recorder's own lists: treat them as read-only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.control.api import ControlCalls, ControlStream
from proxy.control.cross_loop import CrossLoopChannel
from proxy.control.errors import ControlError, ControlUnavailable
from proxy.control.service import ControlService
from proxy.control.streams import StreamEnd, Watch
from proxy.identity.model import Identity

if TYPE_CHECKING:
    from proxy.gateway import Gateway

log = logging.getLogger("hoop.control")
T = TypeVar("T")


def _internal_error(op: str) -> ControlError:
    reference = secrets.token_hex(4)
    log.exception("control API (in-process): %s failed [ref %s]", op, reference)
    return ControlError(f"internal error in the gateway's control API [ref {reference}]")


async def _on_gateway_loop(gateway: Gateway, make: Callable[[], Awaitable[T]]) -> T:
    """Run `make()` on the gateway's event loop and await its result from the caller's loop."""
    gateway_loop = gateway.loop
    if gateway_loop is None or gateway_loop is asyncio.get_running_loop():
        return await make()

    async def run() -> T:
        return await make()

    coroutine = run()
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, gateway_loop)
    except RuntimeError:  # the gateway's loop has closed
        coroutine.close()
        raise ControlUnavailable("the embedded gateway has stopped") from None
    return await asyncio.wrap_future(future)


class _StreamState:
    reason: str | None = None


class _LocalStream:
    """A stream pumped from the gateway's loop into the caller's (see ControlStream)."""

    def __init__(
        self,
        initial: Any,
        channel: CrossLoopChannel,
        state: _StreamState,
        pump: asyncio.Task[None],
        gateway_loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.initial = initial
        self.end_reason: str | None = None
        self._channel = channel
        self._state = state
        self._pump = pump
        self._gateway_loop = gateway_loop
        self._closed = False

    def __aiter__(self) -> _LocalStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._channel.get()
        except EOFError:
            self.end_reason = self.end_reason or self._state.reason or "stream ended"
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._channel.close()
        pump = self._pump

        async def stop_pump() -> None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

        if self._gateway_loop is asyncio.get_running_loop():
            await stop_pump()
        elif not self._gateway_loop.is_closed():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(stop_pump(), self._gateway_loop))
        self.end_reason = self.end_reason or self._state.reason or "unwatched"

    async def __aenter__(self) -> _LocalStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class LocalControl(ControlCalls):
    """Control calls for `identity` against `gateway` in this process (roles and expiry checked per call)."""

    def __init__(
        self, gateway: Gateway, identity: Identity, *, service: ControlService | None = None
    ) -> None:
        self.gateway = gateway
        self.caller = identity
        self._service = service or gateway.control_service
        self.identity: dict[str, Any] = self._service.whoami(identity)

    @classmethod
    async def sign_in(cls, gateway: Gateway, token: str) -> LocalControl:
        """Verify `token` exactly as the control socket's hello does (ControlError when refused)."""
        service: ControlService = gateway.control_service
        identity = await _on_gateway_loop(gateway, lambda: service.authenticate(token))
        return cls(gateway, identity, service=service)

    async def _request(self, op: str, fields: dict[str, Any]) -> Any:
        async def run() -> Any:
            try:
                return await self._service.request(self.caller, op, fields)
            except ControlError:
                raise
            except Exception:
                raise _internal_error(op) from None

        return await _on_gateway_loop(self.gateway, run)

    async def _open_stream(self, op: str, fields: dict[str, Any]) -> ControlStream:
        consumer_loop = asyncio.get_running_loop()
        gateway_loop = self.gateway.loop or consumer_loop
        channel = CrossLoopChannel(gateway_loop, consumer_loop)
        state = _StreamState()

        async def pump(watch: Watch) -> None:
            try:
                async for item in watch.events:
                    if isinstance(item, StreamEnd):
                        state.reason = item.reason
                        break
                    if not await channel.put(item):
                        break  # the caller closed the stream
                else:
                    state.reason = "stream ended"
            except ControlError as failed:
                state.reason = str(failed)
            except Exception:
                state.reason = str(_internal_error(op))
            finally:
                try:
                    await watch.events.aclose()
                finally:
                    channel.close()

        async def start() -> tuple[Any, asyncio.Task[None]]:
            try:
                watch = await self._service.open_stream(self.caller, op, fields)
            except ControlError:
                raise
            except Exception:
                raise _internal_error(op) from None
            return watch.initial, asyncio.get_running_loop().create_task(pump(watch))

        initial, task = await _on_gateway_loop(self.gateway, start)
        return _LocalStream(initial, channel, state, task, gateway_loop)

    async def close(self) -> None:
        """Nothing to release: streams are closed by their own `aclose`."""
