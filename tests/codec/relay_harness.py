"""A PgRelay between two fake endpoints, and the recorder events a message stream should produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.postgres.messages import (
    Bind,
    CommandComplete,
    CopyData,
    DataRow,
    ErrorResponse,
    Execute,
    FunctionCall,
    Message,
    NoticeResponse,
    Parse,
    Query,
    RowDescription,
)
from proxy.postgres.protocol import DEFAULT_MAX_MESSAGE_SIZE
from proxy.postgres.relay import PgRelay


class FakeTransport:
    """Captures writes like an asyncio transport would send them; a write after close() is kept apart.

    asyncio silently discards writes to a transport closed with an empty buffer, so bytes written after
    close() would never reach the peer: they go to `after_close`, not `sent`.
    """

    def __init__(self) -> None:
        self.sent = bytearray()
        self.after_close = bytearray()
        self.closing = False
        self.reading_paused = False

    def write(self, data: bytes) -> None:
        (self.after_close if self.closing else self.sent).extend(data)

    def writelines(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False


class FakeEndpoint:
    """The attributes of `proxy.postgres.endpoint.Endpoint` that PgRelay touches, with no socket behind."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.relay: Any = None
        self.on_lost: Any = None
        self.peer: Any = None
        self.lost = False

    @property
    def closed(self) -> bool:
        return self.lost

    def write(self, data: bytes) -> None:
        if not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        self.transport.close()

    def start_relay(self, relay: Any) -> None:
        self.relay = relay

    def receive(self, data: bytes) -> None:
        """What `data_received` does once relaying: hand the buffer to the relay, if one is attached."""
        if self.relay is not None:
            self.relay(data)


@dataclass
class RelayHarness:
    relay: PgRelay
    client: FakeEndpoint
    server: FakeEndpoint
    records: list[list[Any]] = field(default_factory=list)
    close_reasons: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[list[Any]]:
        """Recorded events without their timestamps."""
        return [record[1:] for record in self.records]

    @property
    def client_events(self) -> list[list[Any]]:
        """Events about what the client sent (COPY data 'in' included)."""
        return [e for e in self.events if e[0] in CLIENT_EVENT_KINDS and e[:2] != ["pg.copy", "out"]]

    @property
    def server_events(self) -> list[list[Any]]:
        """Events about what the server sent, adjacent row runs merged."""
        events = [e for e in self.events if e[0] in SERVER_EVENT_KINDS and e[:2] != ["pg.copy", "in"]]
        return merge_row_runs(events)


def start_relay(
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, record: bool = True, server_pending: bytes = b""
) -> RelayHarness:
    client, server = FakeEndpoint(), FakeEndpoint()
    records: list[list[Any]] = []
    close_reasons: list[str] = []
    relay = PgRelay(
        client,  # type: ignore[arg-type]
        server,  # type: ignore[arg-type]
        max_message_size=max_message_size,
        record=records.append if record else None,
        on_close=close_reasons.append,
    )
    relay.start(server_pending=server_pending)
    return RelayHarness(relay, client, server, records, close_reasons)


CLIENT_EVENT_KINDS = {"pg.query", "pg.parse", "pg.bind", "pg.execute", "pg.copy", "pg.function_call"}
SERVER_EVENT_KINDS = {"pg.rows", "pg.complete", "pg.rowdesc", "pg.error", "pg.notice", "pg.copy"}


def expected_client_events(messages: list[Message]) -> list[list[Any]]:
    """What the recorder should get for these frontend messages, per the message contents."""
    events: list[list[Any]] = []
    for message in messages:
        if isinstance(message, Query):
            events.append(["pg.query", message.sql])
        elif isinstance(message, Parse):
            events.append(["pg.parse", message.name, message.sql])
        elif isinstance(message, Bind):
            events.append(["pg.bind", message.portal, message.statement, len(message.params)])
        elif isinstance(message, Execute):
            events.append(["pg.execute", message.portal, message.max_rows])
        elif isinstance(message, CopyData):
            events.append(["pg.copy", "in", message.data])
        elif isinstance(message, FunctionCall):
            events.append(["pg.function_call", message.function_oid])
    return events


def expected_server_events(messages: list[Message]) -> list[list[Any]]:
    """What the recorder should get for these backend messages; row runs already merged."""
    events: list[list[Any]] = []
    for message in messages:
        if isinstance(message, DataRow):
            events.append(["pg.rows", 1, message.encode()])
        elif isinstance(message, CommandComplete):
            events.append(["pg.complete", message.tag])
        elif isinstance(message, RowDescription):
            names = [f.name for f in message.fields]
            events.append(["pg.rowdesc", names, [f.type_oid for f in message.fields]])
        elif isinstance(message, ErrorResponse):
            events.append(["pg.error", message.fields])
        elif isinstance(message, NoticeResponse):
            events.append(["pg.notice", message.fields])
        elif isinstance(message, CopyData):
            events.append(["pg.copy", "out", message.data])
    return merge_row_runs(events)


def merge_row_runs(events: list[list[Any]]) -> list[list[Any]]:
    """Adjacent pg.rows events as one, and adjacent COPY OUT data as one (a run may be cut wherever a read
    ends; the relay records one event per run per read)."""
    merged: list[list[Any]] = []
    for event in events:
        if event[0] == "pg.rows" and merged and merged[-1][0] == "pg.rows":
            merged[-1] = ["pg.rows", merged[-1][1] + event[1], bytes(merged[-1][2]) + bytes(event[2])]
        elif event[:2] == ["pg.copy", "out"] and merged and merged[-1][:2] == ["pg.copy", "out"]:
            merged[-1] = ["pg.copy", "out", bytes(merged[-1][2]) + bytes(event[2])]
        else:
            merged.append([event[0], *event[1:]])
    return [["pg.rows", e[1], bytes(e[2])] if e[0] == "pg.rows" else e for e in merged]
