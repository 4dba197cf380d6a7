"""A gateway on its own event loop in a background thread: how the TUI, the demo and the tests embed it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from proxy.config import Config
from proxy.gateway import Gateway

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class GatewayThread:
    """Start with `start()`; `call()` runs a coroutine on the gateway's loop and waits for its result."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = _new_loop()
        self.gateway: Gateway | None = None
        self._thread = threading.Thread(target=self._run, name="hoop-gateway", daemon=True)
        self._ready = concurrent.futures.Future[Gateway]()
        self._stopped = asyncio.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        gateway = Gateway(self.config)
        try:
            await gateway.start()
        except BaseException as error:
            self._ready.set_exception(error)
            return
        self.gateway = gateway
        self._ready.set_result(gateway)
        await self._stopped.wait()
        await gateway.stop()

    def start(self, timeout: float = 30.0) -> Gateway:
        self._thread.start()
        return self._ready.result(timeout)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)
