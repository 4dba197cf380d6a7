"""A realistic psql-like session in both directions, built from typed messages like a packet capture."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.postgres.framing import SSLRequest, StartupMessage, StartupPacket
from proxy.postgres.messages import (
    Authentication,
    BackendKeyData,
    Bind,
    BindComplete,
    Close,
    CloseComplete,
    CommandComplete,
    CopyData,
    CopyDone,
    CopyFail,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    Describe,
    EmptyQueryResponse,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    FunctionCall,
    FunctionCallResponse,
    Message,
    NoData,
    NoticeResponse,
    NotificationResponse,
    ParameterDescription,
    ParameterStatus,
    Parse,
    ParseComplete,
    PasswordMessage,
    PortalSuspended,
    Query,
    ReadyForQuery,
    RowDescription,
    Sync,
    Terminate,
)
from proxy.postgres.protocol import AUTH_CLEARTEXT, AUTH_OK, PROTOCOL_3_0

ROW_COUNT = 1000

_SERVER_PARAMETERS = {
    "application_name": "psql",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
    "integer_datetimes": "on",
    "IntervalStyle": "postgres",
    "is_superuser": "off",
    "server_encoding": "UTF8",
    "server_version": "17.2",
    "session_authorization": "ci-bot",
    "standard_conforming_strings": "on",
    "TimeZone": "UTC",
}

_USERS_COLUMNS = RowDescription(
    (
        FieldDescription("id", 16385, 1, 23, 4, -1, 0),
        FieldDescription("email", 16385, 2, 25, -1, -1, 0),
        FieldDescription("note", 16385, 3, 1043, -1, 68, 0),
    )
)


def _user_row(index: int) -> DataRow:
    note = None if index % 7 == 0 else f"café #{index}".encode()
    return DataRow((str(index).encode(), f"user{index}@example.com".encode(), note))


@dataclass(frozen=True)
class Session:
    """What each side sent: startup packets then typed messages (client), typed messages (server)."""

    startup: list[StartupPacket]
    client: list[Message]
    server: list[Message]

    @property
    def startup_bytes(self) -> bytes:
        return b"".join(packet.encode() for packet in self.startup)

    @property
    def client_bytes(self) -> bytes:
        return b"".join(message.encode() for message in self.client)

    @property
    def server_bytes(self) -> bytes:
        return b"".join(message.encode() for message in self.server)


def psql_session(rows: int = ROW_COUNT) -> Session:
    """Login, a query returning `rows` rows, an extended batch, COPY in and out, notices, a notification."""
    startup: list[StartupPacket] = [
        SSLRequest(),  # answered with the single byte 'N', which is not a typed message
        StartupMessage(PROTOCOL_3_0, {"user": "ci-bot", "database": "appdb", "application_name": "psql"}),
    ]
    client: list[Message] = [PasswordMessage.for_password("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjaSJ9.c2ln")]
    server: list[Message] = [Authentication(AUTH_CLEARTEXT), Authentication(AUTH_OK)]
    server += [ParameterStatus(name, value) for name, value in _SERVER_PARAMETERS.items()]
    server += [BackendKeyData(31337, b"\x9a\x10\x5c\x01"), ReadyForQuery("I")]

    # Simple query with a large result.
    client.append(Query("SELECT id, email, note FROM users ORDER BY id;"))
    server.append(_USERS_COLUMNS)
    server += [_user_row(index) for index in range(rows)]
    server += [CommandComplete(f"SELECT {rows}"), ReadyForQuery("I")]

    # An empty query and one raising a notice.
    client.append(Query(""))
    server += [EmptyQueryResponse(), ReadyForQuery("I")]
    client.append(Query("DROP TABLE IF EXISTS scratch;"))
    notice = {"S": "NOTICE", "V": "NOTICE", "C": "00000", "M": 'table "scratch" does not exist, skipping'}
    server += [NoticeResponse(notice), CommandComplete("DROP TABLE"), ReadyForQuery("I")]

    # Extended-protocol batch, as a driver pipelines it: two statements, one portal suspended, one Sync.
    client += [
        Parse("s1", "SELECT id, email, note FROM users WHERE id > $1", (23,)),
        Describe("S", "s1"),
        Bind("p1", "s1", (0,), (b"10",), (0,)),
        Execute("p1", 5),
        Bind("", "s1", (1,), (b"\x00\x00\x00\x02",), ()),
        Execute("", 0),
        Parse("", "UPDATE users SET note = $1 WHERE id = $2", (25, 23)),
        Bind("", "", (), (None, b"3"), ()),
        Describe("P", ""),
        Execute("", 0),
        Close("S", "s1"),
        Flush(),
        Sync(),
    ]
    server += [ParseComplete(), ParameterDescription((23,)), _USERS_COLUMNS, BindComplete()]
    server += [_user_row(index) for index in range(11, 16)]
    server += [PortalSuspended(), BindComplete()]
    server += [_user_row(index) for index in range(3, 6)]
    server += [CommandComplete("SELECT 3"), ParseComplete(), BindComplete(), NoData()]
    server += [CommandComplete("UPDATE 1"), CloseComplete(), ReadyForQuery("I")]

    # COPY FROM STDIN inside a transaction.
    client.append(Query("BEGIN; COPY users (id, email, note) FROM STDIN;"))
    server += [CommandComplete("BEGIN"), CopyInResponse(0, (0, 0, 0))]
    client += [CopyData(b"2001\tnew1@example.com\t\\N\n"), CopyData(b"2002\tnew2@example.com\tok\n")]
    client += [CopyData(b""), CopyDone()]
    server += [CommandComplete("COPY 2"), ReadyForQuery("T")]

    # A failing COPY aborts the transaction; ROLLBACK ends it.
    client.append(Query("COPY users FROM STDIN;"))
    server += [CopyInResponse(0, (0, 0, 0))]
    client.append(CopyFail("COPY terminated by user"))
    error = {"S": "ERROR", "V": "ERROR", "C": "57014", "M": "COPY from stdin failed: COPY terminated by user"}
    server += [ErrorResponse(error), ReadyForQuery("E")]
    client.append(Query("ROLLBACK;"))
    server += [CommandComplete("ROLLBACK"), ReadyForQuery("I")]

    # COPY TO STDOUT.
    client.append(Query("COPY (SELECT id, email FROM users LIMIT 3) TO STDOUT;"))
    server.append(CopyOutResponse(0, (0, 0)))
    server += [CopyData(f"{index}\tuser{index}@example.com\n".encode()) for index in range(3)]
    server += [CopyDone(), CommandComplete("COPY 3"), ReadyForQuery("I")]

    # LISTEN, then a notification arrives between queries.
    client.append(Query("LISTEN jobs;"))
    server += [CommandComplete("LISTEN"), ReadyForQuery("I")]
    server.append(NotificationResponse(4242, "jobs", '{"id": 7, "state": "done"}'))

    # The legacy fast-path function call interface, then goodbye.
    client.append(FunctionCall(1598, (0,), (b"16385",), 0))
    server += [FunctionCallResponse(b"t"), ReadyForQuery("I")]
    client.append(Terminate())
    return Session(startup, client, server)
