"""Running the gateway as a process: event loop choice, signals, and `workers` processes on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from proxy.config import Config, load_config
from proxy.gateway import Gateway

log = logging.getLogger("hoop.serve")


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (markedly faster relaying), the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve_gateway(
    config: Config,
    *,
    worker_index: int = 0,
    reuse_port: bool = False,
    on_ready: Callable[[Gateway], None] | None = None,
    on_reload: Callable[[], None] | None = None,
) -> None:
    gateway = Gateway(config, worker_index=worker_index, reuse_port=reuse_port)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        from proxy.config_errors import ConfigError

        try:
            gateway.reload(load_config(config.path))
        except ConfigError as error:
            log.error("reload refused, keeping the running configuration: %s", error)
            return
        if on_reload is not None:
            on_reload()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload)
    if on_ready is not None:
        on_ready(gateway)
    try:
        await stop.wait()
    finally:
        await gateway.stop()


def _worker_main(config_path: str, worker_index: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s w{worker_index} %(name)s %(levelname)s %(message)s"
    )
    config = load_config(Path(config_path))
    run_loop(serve_gateway(config, worker_index=worker_index, reuse_port=True))


def serve_forever(config: Config, on_ready: Callable[[Gateway], None] | None = None) -> None:
    """`hoop-tui serve`: one process, or `workers` processes sharing the listen ports via SO_REUSEPORT."""
    workers = config.gateway.workers
    if workers <= 1:
        run_loop(serve_gateway(config, on_ready=on_ready))
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_worker_main, args=(str(config.path), index), daemon=True)
        for index in range(1, workers)
    ]
    for child in children:
        child.start()
    try:
        run_loop(
            serve_gateway(
                config,
                worker_index=0,
                reuse_port=True,
                on_ready=on_ready,
                on_reload=lambda: [os.kill(c.pid, signal.SIGHUP) for c in children if c.pid],
            )
        )
    finally:
        for child in children:
            child.terminate()  # SIGTERM: each worker stops its listeners and seals its recordings
        for child in children:
            child.join(timeout=10)
    if any(child.exitcode not in (0, -signal.SIGTERM, None) for child in children):
        sys.exit(1)
