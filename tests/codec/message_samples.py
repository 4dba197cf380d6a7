"""Hand-picked edge-value messages of every frontend and backend type, and the startup packets."""

from __future__ import annotations

from proxy.postgres.framing import CancelRequest, GSSENCRequest, SSLRequest, StartupMessage, StartupPacket
from proxy.postgres.messages import (
    Authentication,
    BackendKeyData,
    Bind,
    BindComplete,
    Close,
    CloseComplete,
    CommandComplete,
    CopyBothResponse,
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
    NegotiateProtocolVersion,
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
from proxy.postgres.protocol import PROTOCOL_3_0, PROTOCOL_3_2

# The codec's counts are Int16 on the wire: this is the largest count it can carry.
INT16_MAX = 32767
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
NON_ASCII = "héllo wörld ✓ 日本語 🐘 Ωμέγα"

FIELD_ID = FieldDescription("id", 16384, 1, 23, 4, -1, 0)
FIELD_EMAIL = FieldDescription("e-mail ✓", UINT32_MAX, 2, 25, -1, -1, 1)
FIELD_UNNAMED = FieldDescription("", 0, 0, 0, 0, 0, 0)

FRONTEND_SAMPLES: list[Message] = [
    Query(""),
    Query("SELECT 1"),
    Query(f"SELECT '{NON_ASCII}'; SELECT 2;"),
    Parse("", "", ()),
    Parse("stmt_ü", "SELECT $1::int, $2", (23, 0)),
    Parse("max", "SELECT 1", (0, UINT32_MAX)),
    Parse("", "SELECT 1", tuple(range(INT16_MAX))),
    Bind(),
    Bind("portal", "stmt", (0, 1), (None, b""), (1,)),
    Bind("", "", (), (b"\x00\xff binary", NON_ASCII.encode(), None), ()),
    Bind("", "s", (1,), tuple(None for _ in range(INT16_MAX)), tuple([1] * INT16_MAX)),
    Describe("S", ""),
    Describe("P", "portal_é"),
    Close("S", "stmt"),
    Close("P", ""),
    Execute("", 0),
    Execute("portal", INT32_MAX),
    Sync(),
    Flush(),
    Terminate(),
    CopyData(b""),
    CopyData(b"1\tAlice\t\\N\n" * 100),
    CopyDone(),
    CopyFail(""),
    CopyFail(f"aborted by user: {NON_ASCII}"),
    FunctionCall(0, (), (), 0),
    FunctionCall(UINT32_MAX, (0, 1), (None, b"\x00\x01"), 1),
    PasswordMessage(b""),
    PasswordMessage.for_password("eyJhbGciOiJFZERTQSJ9.payload.sig"),
    PasswordMessage.for_sasl_initial("SCRAM-SHA-256", b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"),
]

BACKEND_SAMPLES: list[Message] = [
    Authentication(0),
    Authentication(3),
    Authentication(5, b"\x01\x02\x03\x04"),
    Authentication(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
    Authentication(11, b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"),
    Authentication(12, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
    BackendKeyData(1234, b"\x00\x00\x00\x00"),
    BackendKeyData(-1, bytes(range(32))),  # protocol 3.2 style 32-byte secret
    BackendKeyData(INT32_MAX, bytes(range(256))),
    ParseComplete(),
    BindComplete(),
    CloseComplete(),
    NoData(),
    EmptyQueryResponse(),
    PortalSuspended(),
    CommandComplete(""),
    CommandComplete("SELECT 1000"),
    CommandComplete("INSERT 0 5"),
    CopyInResponse(0, ()),
    CopyInResponse(1, (1, 1, 1)),
    CopyOutResponse(0, (0, 0)),
    CopyBothResponse(0, ()),
    CopyData(b""),
    CopyData(b"\xff\xfe binary copy row\n"),
    CopyDone(),
    DataRow(()),
    DataRow((None,)),
    DataRow((b"",)),
    DataRow((b"1", None, b"", NON_ASCII.encode(), b"\x00\xff")),
    DataRow(tuple(None for _ in range(INT16_MAX))),
    ErrorResponse({}),
    ErrorResponse({"S": "ERROR", "V": "ERROR", "C": "42P01", "M": 'relation "nope" does not exist'}),
    ErrorResponse({"S": "FATAL", "C": "08P01", "M": NON_ASCII, "D": "", "H": "try again", "P": "15"}),
    NoticeResponse({}),
    NoticeResponse({"S": "WARNING", "V": "WARNING", "C": "01000", "M": f"careful: {NON_ASCII}"}),
    FunctionCallResponse(None),
    FunctionCallResponse(b""),
    FunctionCallResponse(b"\x00\x00\x00\x2a"),
    NegotiateProtocolVersion(0, ()),
    NegotiateProtocolVersion(2, ("_pq_.unknown_option", "_pq_.ü")),
    NotificationResponse(0, "", ""),
    NotificationResponse(4242, "jobs_ü", NON_ASCII),
    ParameterDescription(()),
    ParameterDescription((23, 25, UINT32_MAX)),
    ParameterDescription(tuple(range(INT16_MAX))),
    ParameterStatus("", ""),
    ParameterStatus("server_version", "17.2"),
    ParameterStatus("application_name", NON_ASCII),
    ReadyForQuery("I"),
    ReadyForQuery("T"),
    ReadyForQuery("E"),
    RowDescription(()),
    RowDescription((FIELD_ID, FIELD_EMAIL, FIELD_UNNAMED)),
    RowDescription(tuple(FIELD_UNNAMED for _ in range(1664))),  # PostgreSQL's column limit
]

STARTUP_SAMPLES: list[StartupPacket] = [
    SSLRequest(),
    GSSENCRequest(),
    CancelRequest(1234, b"\x00\x01\x02\x03"),  # protocol 3.0: 4-byte key
    CancelRequest(-5, bytes(range(32))),  # protocol 3.2: longer key
    CancelRequest(INT32_MAX, bytes(256)),
    StartupMessage(PROTOCOL_3_0, {}),
    StartupMessage(PROTOCOL_3_0, {"user": "ci-bot", "database": "appdb"}),
    StartupMessage(PROTOCOL_3_2, {"user": "ü", "database": "", "application_name": NON_ASCII}),
    StartupMessage(PROTOCOL_3_2, {"user": "u", "_pq_.some_option": "on", "options": "-c search_path=x"}),
]
