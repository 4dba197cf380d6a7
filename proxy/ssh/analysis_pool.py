"""Command-line analysis off the event loop: bashlex is pure Python and a long line costs a large fraction
of a second, which on the loop would stall every session of the process (SSH and Postgres alike)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from proxy.ssh.commands import CommandAnalysis, analyse_command

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    # One thread: analyses queue behind each other instead of competing for the GIL with the relay, so a
    # flood of long lines slows down only the channels that sent them.
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hoop-ssh-analysis")
        return _executor


async def analyse_off_loop(command_line: str) -> CommandAnalysis:
    return await asyncio.get_running_loop().run_in_executor(_pool(), analyse_command, command_line)
