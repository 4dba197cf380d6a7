"""The control API listener: msgpack frames on a private Unix socket or TLS TCP, over the service.

Each connection signs in once with an operator token (`hello`), then sends requests that run concurrently;
streams push events until unwatched. A malformed frame, a bad token or an expired one ends that connection
only. The gateway runs one listener, in worker 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.control.address import ControlAddress, parse_control_address
from proxy.control.errors import ControlError
from proxy.control.protocol import PROTOCOL_VERSION, FrameDecoder, FrameError, encode_frame
from proxy.control.service import ControlService
from proxy.control.streams import StreamEnd, Watch
from proxy.control.unix_socket import bind_private_unix_socket, remove_socket_file
from proxy.identity.model import Identity

if TYPE_CHECKING:
    from proxy.gateway import Gateway

log = logging.getLogger("hoop.control")

HELLO_TIMEOUT = 10.0
READ_SIZE = 256 * 1024
MAX_REQUESTS_IN_FLIGHT = 64
MAX_STREAMS = 32
MAX_REQUEST_ID = 2**53


class ControlServer:
    """Listens on `gateway.settings.control`; `address` is where it actually listens (a real port for :0)."""

    def __init__(self, gateway: Gateway, service: ControlService | None = None) -> None:
        self.gateway = gateway
        self.service = service or ControlService(gateway)
        self.address = ""
        self._server: asyncio.AbstractServer | None = None
        self._socket_file: tuple[Path, tuple[int, int]] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        where = parse_control_address(self.gateway.settings.control)
        if where.kind == "unix":
            assert where.path is not None
            sock, identity = bind_private_unix_socket(where.path)
            self._socket_file = (where.path, identity)
            self._server = await asyncio.start_unix_server(self._accept, sock=sock)
            self.address = str(where)
        else:
            self._server = await asyncio.start_server(
                self._accept,
                where.host,
                where.port,
                ssl=self.gateway.tls_context(),
                ssl_handshake_timeout=HELLO_TIMEOUT,
            )
            port = self._server.sockets[0].getsockname()[1]
            self.address = str(ControlAddress("tcp", host=where.host, port=port))
        log.info("control API on %s", self.address)
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._socket_file is not None:
            remove_socket_file(*self._socket_file)
            self._socket_file = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _Connection(self.service, reader, writer).run()
        except asyncio.CancelledError:
            pass  # the listener is stopping
        finally:
            self._connections.discard(task)


class _Connection:
    """One operator's connection: sign-in, then requests and streams until either side closes."""

    def __init__(self, service: ControlService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.service = service
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.peer = _peer_name(writer)
        self._write_lock = asyncio.Lock()
        self._requests: dict[int, asyncio.Task[None]] = {}
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._closing = False

    async def run(self) -> None:
        expiry: asyncio.TimerHandle | None = None
        try:
            signed_in = await self._hello()
            if signed_in is None:
                return
            identity, pipelined = signed_in
            delay = max(0.0, self.service.deadline(identity) - time.time())
            expiry = asyncio.get_running_loop().call_later(delay, self._expire)
            log.info("control API: %s signed in from %s", identity.subject, self.peer)
            for message in pipelined:
                await self._dispatch(identity, message)
            await self._serve(identity)
        except (OSError, FrameError) as error:  # a broken connection or TLS session, or a malformed frame
            log.info("control API connection from %s ended: %s", self.peer, error)
            with contextlib.suppress(Exception):
                await self._send({"id": None, "ok": False, "error": str(error)})
        finally:
            if expiry is not None:
                expiry.cancel()
            await self._shut_down()

    # -- reading --------------------------------------------------------------------------------------------

    async def _frames(self) -> list[dict[str, Any]]:
        """The next whole frames; [] at end of stream."""
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data:
                if self.decoder.buffered:
                    raise FrameError("connection closed in the middle of a frame")
                return []
            messages = self.decoder.feed(data)
            if messages:
                return messages

    async def _hello(self) -> tuple[Identity, list[dict[str, Any]]] | None:
        """The caller's identity and any requests sent right behind the hello; None when refused."""
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                messages = await self._frames()
        except TimeoutError:
            await self._refuse(None, "no hello within 10s")
            return None
        if not messages:
            return None
        hello, rest = messages[0], messages[1:]
        request_id = hello.get("id") if _valid_id(hello.get("id")) else None
        if hello.get("op") != "hello":
            await self._refuse(request_id, "the first frame must be {'op': 'hello', 'token': ...}")
            return None
        try:
            identity = await self.service.authenticate(hello.get("token"))
        except ControlError as refused:
            await self._refuse(request_id, str(refused))
            return None
        result = {**self.service.whoami(identity), "protocol": PROTOCOL_VERSION}
        await self._send({"id": request_id, "ok": True, "result": result})
        return identity, rest

    async def _refuse(self, request_id: int | None, message: str) -> None:
        log.info("control API: refused %s: %s", self.peer, message)
        with contextlib.suppress(Exception):
            await self._send({"id": request_id, "ok": False, "error": message})

    async def _serve(self, identity: Identity) -> None:
        while not self._closing:
            messages = await self._frames()
            if not messages:
                return
            for message in messages:
                await self._dispatch(identity, message)

    async def _dispatch(self, identity: Identity, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        op = message.get("op")
        if not _valid_id(request_id):
            await self._send({"id": None, "ok": False, "error": "every request needs an integer id"})
            return
        if not isinstance(op, str):
            await self._error(request_id, "every request needs an op")
        elif request_id in self._requests or request_id in self._streams:
            await self._error(request_id, f"request id {request_id} is already in use")
        elif op == "hello":
            await self._error(request_id, "already signed in")
        elif op == "unwatch":
            await self._unwatch(request_id, message.get("watch"))
        elif self.service.is_stream(op):
            if len(self._streams) >= MAX_STREAMS:
                await self._error(request_id, f"at most {MAX_STREAMS} open streams per connection")
            else:
                self._spawn(self._streams, request_id, self._stream(identity, request_id, op, message))
        elif len(self._requests) >= MAX_REQUESTS_IN_FLIGHT:
            await self._error(request_id, f"at most {MAX_REQUESTS_IN_FLIGHT} requests in flight")
        else:
            self._spawn(self._requests, request_id, self._request(identity, request_id, op, message))

    def _spawn(self, tasks: dict[int, asyncio.Task[None]], request_id: int, coroutine: Any) -> None:
        async def guarded() -> None:
            with contextlib.suppress(ConnectionError):  # the caller went away: nobody to answer
                await coroutine

        task = asyncio.get_running_loop().create_task(guarded())
        tasks[request_id] = task
        task.add_done_callback(
            lambda done: tasks.pop(request_id, None) if tasks.get(request_id) is done else None
        )

    # -- requests and streams -------------------------------------------------------------------------------

    async def _request(self, identity: Identity, request_id: int, op: str, message: dict[str, Any]) -> None:
        try:
            result = await self.service.request(identity, op, message)
        except ControlError as refused:
            await self._error(request_id, str(refused))
        except ConnectionError:
            raise
        except Exception:
            await self._error(request_id, _internal_error(op))
        else:
            try:
                frame = encode_frame({"id": request_id, "ok": True, "result": result})
            except ValueError as error:
                await self._error(request_id, f"the answer cannot be sent ({error}); ask for less")
            else:
                await self._write(frame)

    async def _stream(self, identity: Identity, request_id: int, op: str, message: dict[str, Any]) -> None:
        try:
            watch = await self.service.open_stream(identity, op, message)
        except ControlError as refused:
            await self._error(request_id, str(refused))
            return
        except Exception:
            await self._error(request_id, _internal_error(op))
            return
        try:
            started = encode_frame({"id": request_id, "ok": True, "result": watch.initial})
        except ValueError as error:
            await watch.events.aclose()
            await self._error(request_id, f"the answer cannot be sent ({error}); ask for less")
            return
        try:
            await self._write(started)
            reason = await self._pump(request_id, watch)
        except ControlError as failed:
            reason = str(failed)
        except ConnectionError:
            raise
        except ValueError as error:
            reason = f"the stream cannot be sent ({error})"
        except Exception:
            reason = _internal_error(op)
        finally:
            await watch.events.aclose()
        await self._send({"id": request_id, "end": reason})

    async def _pump(self, request_id: int, watch: Watch) -> str:
        async for item in watch.events:
            if isinstance(item, StreamEnd):
                return item.reason
            try:
                frame = encode_frame({"id": request_id, "event": item})
            except ValueError:
                frame = encode_frame({"id": request_id, "event": _oversized(item)})
            await self._write(frame)
        return "stream ended"

    async def _unwatch(self, request_id: int, watch_id: object) -> None:
        task = self._streams.get(watch_id) if _valid_id(watch_id) else None  # type: ignore[arg-type]
        if task is None:
            await self._error(request_id, f"no open stream {watch_id!r}")
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._send({"id": watch_id, "end": "unwatched"})
        await self._send({"id": request_id, "ok": True, "result": None})

    # -- writing and closing --------------------------------------------------------------------------------

    async def _error(self, request_id: int | None, message: str) -> None:
        await self._send({"id": request_id, "ok": False, "error": message})

    async def _send(self, message: dict[str, Any]) -> None:
        await self._write(encode_frame(message))

    async def _write(self, frame: bytes) -> None:
        if self._closing or self.writer.is_closing():
            raise ConnectionResetError("the control connection is closed")
        async with self._write_lock:
            self.writer.write(frame)
            await self.writer.drain()

    def _expire(self) -> None:
        log.info("control API: token of %s expired; closing", self.peer)
        with contextlib.suppress(ValueError, RuntimeError):
            frame = encode_frame({"id": None, "ok": False, "error": "your token expired; sign in again"})
            self.writer.write(frame)
        self._closing = True
        self.writer.close()

    async def _shut_down(self) -> None:
        self._closing = True
        tasks = [*self._requests.values(), *self._streams.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def _valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_REQUEST_ID


def _internal_error(op: str) -> str:
    reference = secrets.token_hex(4)
    log.exception("control API: %s failed [ref %s]", op, reference)
    return f"internal error in the gateway's control API [ref {reference}]"


def _oversized(item: Any) -> Any:
    """A recorded event too large for one frame is replaced by a note saying so (the file still holds it)."""
    if isinstance(item, list) and len(item) >= 2:
        return [item[0], "control.omitted", {"kind": item[1], "reason": "larger than a control frame"}]
    return {"omitted": "larger than a control frame"}


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "the control socket"
