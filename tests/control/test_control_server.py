"""The control listener itself: sign-in, framing errors that end one connection only, TLS over TCP, the
private Unix socket, and the in-process LocalControl answering exactly as the socket does."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
import threading
from pathlib import Path

import pytest

from proxy.control.client import ControlClient, run_control
from proxy.control.cross_loop import CrossLoopChannel
from proxy.control.errors import ControlError, ControlUnavailable
from proxy.control.local import LocalControl
from proxy.control.protocol import FrameDecoder, encode_frame
from proxy.control.unix_socket import ControlAddressInUse, bind_private_unix_socket, open_unix_connection
from proxy.postgres.messages import Query
from tests.conftest import RunningGateway
from tests.control.conftest import control_address, start_controlled
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient


class RawControl:
    """A control connection that sends whatever bytes a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.decoder = reader, writer, FrameDecoder()
        self.pending: list[dict] = []

    @classmethod
    async def open(cls, gateway: RunningGateway) -> RawControl:
        path = Path(control_address(gateway).removeprefix("unix:"))
        return cls(*await open_unix_connection(path))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> dict | None:
        async with asyncio.timeout(10):
            while not self.pending:
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.writer.close()


async def test_hello_is_required_and_frames_are_checked(controlled: RunningGateway) -> None:
    oncall = controlled.token(subject="alice", groups=("oncall",))
    raw = await RawControl.open(controlled)
    await raw.send(encode_frame({"id": 1, "op": "approvals.list"}))
    assert await raw.receive() == {
        "id": 1,
        "ok": False,
        "error": "the first frame must be {'op': 'hello', 'token': ...}",
    }
    assert await raw.receive() is None, "the connection is closed"
    raw.close()

    # Pipelined behind the hello, and ids answered out of band.
    raw = await RawControl.open(controlled)
    await raw.send(
        encode_frame({"op": "hello", "token": oncall})
        + encode_frame({"id": 5, "op": "approvals.list", "states": ["pending"]})
        + encode_frame({"id": 6, "op": "approvals.list", "bogus": 1})
        + encode_frame({"id": 7, "op": "nope"})
        + encode_frame({"op": "whoami"})
    )
    hello = await raw.receive()
    assert hello is not None and hello["ok"] is True
    assert hello["result"]["subject"] == "alice" and hello["result"]["roles"] == ["approver"]
    answers = {}
    for _ in range(4):
        answer = await raw.receive()
        assert answer is not None
        answers[answer["id"]] = answer
    assert answers[5] == {"id": 5, "ok": True, "result": []}
    assert answers[6]["error"] == "approvals.list: unknown field(s) 'bogus'"
    assert answers[7]["error"].startswith("unknown operation 'nope'")
    assert answers[None]["error"] == "every request needs an integer id"

    # A malformed frame ends this connection only: another one carries on.
    other = await ControlClient.connect(control_address(controlled), oncall)
    await raw.send(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
    closing = await raw.receive()
    assert closing is not None and closing["id"] is None and "malformed frame" in closing["error"]
    assert await raw.receive() is None
    raw.close()
    assert await other.list_approvals() == []
    raw = await RawControl.open(controlled)
    await raw.send(encode_frame({"op": "hello", "token": oncall}))
    assert (await raw.receive() or {})["ok"] is True
    await raw.send(struct.pack(">I", 64 * 1024 * 1024))
    oversize = await raw.receive()
    assert oversize is not None and "exceeds" in oversize["error"]
    raw.close()
    assert (await other.whoami())["subject"] == "alice"
    await other.close()


async def test_requests_run_concurrently_and_errors_are_one_line(controlled: RunningGateway) -> None:
    oncall = controlled.token(subject="alice", groups=("oncall",))
    async with await ControlClient.connect(control_address(controlled), oncall) as client:
        results = await asyncio.gather(*(client.list_approvals(["pending", "approved"]) for _ in range(20)))
        assert results == [[]] * 20
        with pytest.raises(ControlError, match=r"^unknown state\(s\) maybe; use approved, cancelled"):
            await client.list_approvals(["maybe"])
        with pytest.raises(ControlError, match=r"^no approval request r00$"):
            await client.approve("r00")
        with pytest.raises(ControlError, match="needs the admin role"):
            await client.kill_session("0123456789abcdef", "why")
        with pytest.raises(ControlError, match=r"'interval' must be between 0\.2 and 300"):
            await client.watch_sessions(interval=0.01)
    with pytest.raises(ControlUnavailable, match="No such file"):
        await ControlClient.connect("unix:/nonexistent/control.sock", oncall)


async def test_tcp_control_address_uses_tls(
    tmp_path: Path, seeded: UpstreamPostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    running = await asyncio.to_thread(start_controlled, tmp_path, seeded, "tcp://127.0.0.1:0")
    try:
        address = control_address(running)
        assert address.startswith("tcp://127.0.0.1:") and not address.endswith(":0")
        ca_file = running.state_dir / "tls" / "gateway.crt"
        token = running.token(subject="root", groups=("admins",))
        async with await ControlClient.connect(address, token, ca_file=ca_file) as client:
            assert (await client.whoami())["roles"] == ["admin", "auditor"]
            assert await client.list_sessions() == []
        with pytest.raises(ControlUnavailable, match="cannot verify the control API's certificate"):
            await ControlClient.connect(address, token)
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        _, plain = await asyncio.open_connection(host, int(port))
        plain.write(
            encode_frame({"op": "hello", "token": token})
        )  # no TLS: the handshake fails, nothing leaks
        await plain.drain()
        plain.close()
        result = await asyncio.to_thread(
            run_control, address, token, lambda client: client.list_grants(), ca_file=ca_file
        )
        assert result == []
    finally:
        await asyncio.to_thread(running.thread.stop)  # type: ignore[attr-defined]


def test_unix_socket_is_private_and_not_shared(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "hoop"
    path = directory / "control.sock"
    sock, identity = bind_private_unix_socket(path)
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert sorted(p.name for p in directory.iterdir()) == ["control.sock"], "no staging leftovers"
        sock.listen()
        with pytest.raises(ControlAddressInUse):
            bind_private_unix_socket(path)
    finally:
        sock.close()
    # Nobody listens any more: the stale file is replaced.
    again, second = bind_private_unix_socket(path)
    again.close()
    assert second != identity
    (tmp_path / "plain").write_text("not a socket")
    with pytest.raises(OSError, match="exists and is not a socket"):
        bind_private_unix_socket(tmp_path / "plain")


async def test_unix_socket_paths_longer_than_sun_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    path = deep / "control.sock"
    assert len(str(path)) > 108
    sock, _ = bind_private_unix_socket(path)
    server = await asyncio.start_unix_server(lambda r, w: w.close(), sock=sock)
    try:
        reader, writer = await open_unix_connection(path)
        assert await reader.read() == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_local_control_answers_like_the_socket(controlled: RunningGateway) -> None:
    """The embedded path (the gateway's loop is another thread's) gives the same maps and refusals."""
    oncall_token = controlled.token(subject="alice", groups=("oncall",))
    local = await LocalControl.sign_in(controlled.gateway, oncall_token)
    remote = await ControlClient.connect(control_address(controlled), oncall_token)
    try:
        assert local.identity == {k: v for k, v in remote.identity.items() if k != "protocol"}
        assert await local.list_sessions() == await remote.list_sessions()
        assert await local.list_grants() == await remote.list_grants()
        for call in (lambda c: c.approve("r00"), lambda c: c.kill_session("0123456789ab", "x")):
            with pytest.raises(ControlError) as from_local:
                await call(local)
            with pytest.raises(ControlError) as from_remote:
                await call(remote)
            assert str(from_local.value) == str(from_remote.value)
        with pytest.raises(ControlError, match="invalid or expired token"):
            await LocalControl.sign_in(controlled.gateway, "garbage")
        watch = await local.watch_approvals()
        assert watch.initial == []
        agent = RawClient(controlled.host, controlled.port)
        try:
            await asyncio.to_thread(agent.login, "appdb", controlled.token())
            agent.send(Query("UPDATE victims SET name = 'y' WHERE id = 1").encode())
            async with asyncio.timeout(10):
                created = await anext(watch)
            assert created["state"] == "pending" and created["requester"] == "ci-bot"
            assert await local.list_approvals() == await remote.list_approvals() == [created]
            await local.deny(created["id"], "local path")
            async with asyncio.timeout(10):
                decided = await anext(watch)
            assert (decided["id"], decided["state"], decided["justification"]) == (
                created["id"],
                "denied",
                "local path",
            )
        finally:
            agent.close()
        await watch.aclose()
        assert watch.end_reason == "unwatched"
    finally:
        await remote.close()
        await local.close()


async def test_expired_token_ends_the_control_connection(controlled: RunningGateway) -> None:
    token = controlled.token(subject="alice", groups=("oncall",), ttl=1.5)
    client = await ControlClient.connect(control_address(controlled), token)
    try:
        assert await client.list_grants() == []
        await asyncio.sleep(2.0)
        with pytest.raises(ControlUnavailable, match="your token expired; sign in again"):
            await client.list_grants()
    finally:
        await client.close()
    with pytest.raises(ControlError, match="invalid or expired token"):
        await ControlClient.connect(control_address(controlled), token)


async def test_cross_loop_channel_keeps_order_under_backpressure() -> None:
    """A producer on another thread's loop and this loop consuming: bounded, ordered, closed cleanly."""
    producer_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=producer_loop.run_forever, daemon=True)
    thread.start()
    try:
        channel = CrossLoopChannel(producer_loop, asyncio.get_running_loop(), capacity=4)
        peak = 0

        async def produce() -> None:
            nonlocal peak
            for number in range(2000):
                assert await channel.put(number)
                peak = max(peak, len(channel._items))
            channel.close()

        done = asyncio.run_coroutine_threadsafe(produce(), producer_loop)
        received = []
        while True:
            try:
                received.append(await channel.get())
            except EOFError:
                break
        done.result(5)
        assert received == list(range(2000)) and peak <= 4
    finally:
        producer_loop.call_soon_threadsafe(producer_loop.stop)
        thread.join(5)
        producer_loop.close()
