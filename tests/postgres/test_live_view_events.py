"""Live viewers of a Postgres session see every event the relay records, also those of its last buffer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from proxy.postgres.messages import Query, Terminate
from tests.conftest import start_gateway
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient


def test_live_viewers_see_the_statement_sent_with_terminate(
    tmp_path: Path, upstream: UpstreamPostgres
) -> None:
    """The relay hands a buffer's events to the recorder when its callback ends; a Terminate in that buffer
    closes the session inside the callback, and the live view must still get the statement before its end."""
    running = start_gateway(tmp_path, upstream)
    try:
        gateway = running.gateway
        client = RawClient(running.host, running.port)
        client.login("appdb", running.token())
        deadline = time.monotonic() + 10
        while not gateway.sessions.list() and time.monotonic() < deadline:
            time.sleep(0.01)
        (session,) = gateway.sessions.list()
        seen: list[list | None] = []
        ended = threading.Event()

        def deliver(event: list | None) -> None:
            seen.append(event)
            if event is None:
                ended.set()

        async def subscribe() -> None:
            recorder = gateway.live_recorder(session.id)
            assert recorder is not None
            recorder.subscribe(deliver)

        running.thread.call(subscribe())  # type: ignore[attr-defined]
        client.send(Query("SELECT 'shown to live viewers?'").encode() + Terminate().encode())
        assert ended.wait(10)
        client.close()
        kinds = [event[1] for event in seen if event is not None]
        assert "pg.query" in kinds, f"the live view missed the statement: {kinds}"
    finally:
        running.thread.stop()  # type: ignore[attr-defined]
