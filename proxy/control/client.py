"""The control API client: one connection to a gateway, signed in with an operator token; a helper for CLIs.

Requests may run concurrently on one connection. Each stream buffers up to STREAM_BUFFER events; a stream
that is not read holds up the connection behind it, so read streams or close them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from proxy.config import Config
from proxy.control.address import parse_control_address
from proxy.control.api import ControlCalls, ControlStream
from proxy.control.errors import ControlError, ControlUnavailable
from proxy.control.protocol import FrameDecoder, FrameError, encode_frame
from proxy.control.unix_socket import open_unix_connection

T = TypeVar("T")
READ_SIZE = 256 * 1024
STREAM_BUFFER = 1024
DEFAULT_TIMEOUT = 10.0
_END = object()


class _RemoteStream:
    """A stream the gateway feeds over the connection (see ControlStream)."""

    def __init__(self, client: ControlClient, stream_id: int) -> None:
        self._client = client
        self._id = stream_id
        self._queue: asyncio.Queue[Any] = asyncio.Queue(STREAM_BUFFER)
        self._ended = False
        self._closed = False
        self.initial: Any = None
        self.end_reason: str | None = None

    async def push(self, event: Any) -> None:
        if not self._closed:
            await self._queue.put(event)

    def finish(self, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        with contextlib.suppress(asyncio.QueueFull):  # when full, __anext__ notices the end once drained
            self._queue.put_nowait(_END)

    def __aiter__(self) -> _RemoteStream:
        return self

    async def __anext__(self) -> Any:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        while not self._queue.empty():  # unblocks the connection's reader if it waits to push here
            self._queue.get_nowait()
        if not self._ended:
            with contextlib.suppress(ControlError):
                await self._client._request("unwatch", {"watch": self._id})
            self.finish("unwatched")

    async def __aenter__(self) -> _RemoteStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ControlClient(ControlCalls):
    """Connect with `await ControlClient.connect(address, token)`; `identity` says who you signed in as."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        self.address = address
        self.identity: dict[str, Any] = {}
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._write_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, _RemoteStream] = {}
        self._next_id = 1
        self._reader_task: asyncio.Task[None] | None = None
        self._broken: str | None = None

    @classmethod
    async def connect(
        cls,
        address: str,
        token: str,
        *,
        ca_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ControlClient:
        """Open and sign in. TCP addresses use TLS, verified against `ca_file` (else the system's CAs)."""
        try:
            where = parse_control_address(address)
        except ValueError as error:
            raise ControlError(str(error)) from None
        try:
            async with asyncio.timeout(timeout):
                if where.kind == "unix":
                    assert where.path is not None
                    reader, writer = await open_unix_connection(where.path)
                else:
                    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
                    reader, writer = await asyncio.open_connection(
                        where.host, where.port, ssl=context, server_hostname=where.host
                    )
        except TimeoutError:
            raise ControlUnavailable(
                f"the control API at {where} did not answer within {timeout:g}s"
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise ControlUnavailable(
                f"cannot verify the control API's certificate at {where} ({error.verify_message}); "
                "pass the gateway's CA with --ca-file"
            ) from None
        except OSError as error:
            raise ControlUnavailable(
                f"cannot reach the control API at {where}: {error.strerror or error}"
            ) from None
        client = cls(reader, writer, str(where))
        try:
            async with asyncio.timeout(timeout):
                client.identity = await client._hello(token)
        except TimeoutError:
            await client.close()
            raise ControlUnavailable(
                f"the control API at {where} did not answer within {timeout:g}s"
            ) from None
        except BaseException:
            await client.close()
            raise
        return client

    async def _hello(self, token: str) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        self._pending[0] = future
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())
        await self._send({"id": 0, "op": "hello", "token": token})
        return await future

    # -- transport ------------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    async def _send(self, message: dict[str, Any]) -> None:
        if self._broken is not None:
            raise ControlUnavailable(self._broken)
        try:
            frame = encode_frame(message)
        except ValueError as error:
            raise ControlError(str(error)) from None
        try:
            async with self._write_lock:
                self._writer.write(frame)
                await self._writer.drain()
        except OSError as error:
            raise ControlUnavailable(f"lost the control connection: {error}") from None

    async def _request(self, op: str, fields: dict[str, Any]) -> Any:
        request_id = self._new_id()
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send({**fields, "id": request_id, "op": op})
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def _open_stream(self, op: str, fields: dict[str, Any]) -> ControlStream:
        stream_id = self._new_id()
        stream = _RemoteStream(self, stream_id)
        self._streams[stream_id] = stream
        future = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        try:
            await self._send({**fields, "id": stream_id, "op": op})
            stream.initial = await future
        except BaseException:
            self._streams.pop(stream_id, None)
            raise
        finally:
            self._pending.pop(stream_id, None)
        return stream

    async def _read_loop(self) -> None:
        reason = "the gateway closed the control connection"
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                for message in self._decoder.feed(data):
                    await self._on_message(message)
        except FrameError as error:
            reason = f"the gateway sent an unreadable frame ({error})"
        except OSError as error:
            reason = f"lost the control connection: {error}"
        except asyncio.CancelledError:
            reason = "the control connection was closed"
            raise
        finally:
            self._fail_all(self._broken or reason)

    async def _on_message(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if "event" in message:
            stream = self._streams.get(message_id)  # type: ignore[arg-type]
            if stream is not None:
                await stream.push(message["event"])
        elif "end" in message:
            stream = self._streams.pop(message_id, None)  # type: ignore[arg-type]
            if stream is not None:
                stream.finish(str(message["end"]))
            opening = self._pending.get(message_id)  # type: ignore[arg-type]
            if opening is not None and not opening.done():  # ended before it started: a refusal
                opening.set_exception(ControlError(str(message["end"])))
        elif message_id is None and message.get("ok") is False:
            # About the whole connection (token expired, bad frame): it is about to close.
            self._broken = str(message.get("error") or "the gateway ended the control connection")
            hello = self._pending.get(0)
            if hello is not None and not hello.done():
                hello.set_exception(ControlError(self._broken))
        else:
            future = self._pending.get(message_id)  # type: ignore[arg-type]
            if future is None or future.done():
                return
            if message.get("ok") is True:
                future.set_result(message.get("result"))
            else:
                future.set_exception(ControlError(str(message.get("error") or "request refused")))

    def _fail_all(self, reason: str) -> None:
        self._broken = self._broken or reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ControlUnavailable(reason))
        for stream in self._streams.values():
            stream.finish(reason)
        self._streams.clear()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None
        self._fail_all("the control connection was closed")
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


# -- for command-line tools ---------------------------------------------------------------------------------


def control_target(config: Config) -> tuple[str, Path | None]:
    """The control address in `config`, and the CA file a client should trust for it (TCP only)."""
    settings = config.gateway
    if not settings.control.startswith("tcp://"):
        return settings.control, None
    if settings.tls_cert is not None:
        return settings.control, settings.tls_cert
    generated = settings.state_dir / "tls" / "gateway.crt"  # the self-signed certificate the gateway made
    return settings.control, generated if generated.exists() else None


def run_control(
    address: str,
    token: str,
    action: Callable[[ControlClient], Awaitable[T]],
    *,
    ca_file: str | Path | None = None,
    timeout: float = 30.0,
) -> T:
    """Connect, run `action(client)`, close: for synchronous callers. Raises ControlError (one line)."""

    async def run() -> T:
        client = await ControlClient.connect(address, token, ca_file=ca_file, timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                return await action(client)
        except TimeoutError:
            raise ControlUnavailable(f"the gateway did not answer within {timeout:g}s") from None
        finally:
            await client.close()

    return asyncio.run(run())
