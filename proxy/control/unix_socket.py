"""Unix control sockets: private (0600) from the first instant, stale files replaced, long paths reached.

A socket is bound inside a fresh 0700 staging directory, made 0600, then renamed into place, so there is no
moment when another local user could connect to it. Paths longer than `sun_path` holds (about 107 bytes) are
reached through `/proc/self/fd/<directory fd>/<name>` on Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("hoop.control")

_SUN_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux, 104 on the BSDs; keep a margin for the NUL
_PROC_FD = Path("/proc/self/fd")


class ControlAddressInUse(OSError):
    """Another live process already serves the control API on this socket."""


@contextlib.contextmanager
def reachable_path(path: Path) -> Iterator[str]:
    """A name for `path` short enough to bind or connect, valid inside the `with` block."""
    if len(os.fsencode(str(path))) < _SUN_PATH_LIMIT:
        yield str(path)
        return
    if not _PROC_FD.is_dir() or len(os.fsencode(path.name)) >= _SUN_PATH_LIMIT - 24:
        raise OSError(f"the control socket path {path} is too long for a Unix socket; choose a shorter one")
    directory_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"{_PROC_FD}/{directory_fd}/{path.name}"
    finally:
        os.close(directory_fd)


def _refuse_live_socket(path: Path) -> None:
    """Raise when `path` is a socket some process still answers on, or is not a socket at all."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; remove it or choose another control address")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        with reachable_path(path) as name:
            probe.connect(name)
    except OSError:
        return  # nobody listens: a stale file left by a crash, replaced below
    finally:
        probe.close()
    raise ControlAddressInUse(f"another gateway already serves the control API at unix:{path}")


def _warn_if_shared_directory(directory: Path) -> None:
    mode = directory.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        log.warning(
            "the control socket directory %s is writable by other users, who could replace the socket; "
            "use a private directory (mode 0700)",
            directory,
        )


def bind_private_unix_socket(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """A listening-ready socket bound at `path` (mode 0600), and the (device, inode) of its file."""
    path = Path(os.path.abspath(path))
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    else:
        _warn_if_shared_directory(directory)
    _refuse_live_socket(path)
    staging = Path(tempfile.mkdtemp(prefix=".control-", dir=directory))  # mkdtemp makes it 0700
    staged = staging / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with reachable_path(staged) as name:
            sock.bind(name)
        os.chmod(staged, 0o600)
        os.rename(staged, path)  # atomic, and replaces a stale socket file
        status = os.lstat(path)
    except BaseException:
        sock.close()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sock.setblocking(False)
    return sock, (status.st_dev, status.st_ino)


def remove_socket_file(path: Path, identity: tuple[int, int]) -> None:
    """Unlink `path` only if it is still the socket we bound (another gateway may have taken the name)."""
    with contextlib.suppress(OSError):
        status = os.lstat(path)
        if (status.st_dev, status.st_ino) == identity:
            path.unlink()


async def open_unix_connection(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with reachable_path(Path(os.path.abspath(path))) as name:
        return await asyncio.open_unix_connection(name)
