"""Typed protocol 3.x messages, frontend and backend, each with its own decode and encode."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from proxy.postgres.protocol import ProtocolError

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")  # message counts: PostgreSQL reads them unsigned (up to 65535)
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")


class BodyReader:
    """Bounds-checked reads from one message body; every overrun is a ProtocolError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = bytes(data)
        self.pos = 0

    def int16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolError("message body too short")
        (value,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def uint16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolError("message body too short")
        (value,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ProtocolError("message body too short")
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def uint32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ProtocolError("message body too short")
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError("message body too short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ProtocolError("message body too short")
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("unterminated string in message")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string in message is not valid UTF-8") from exc

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value

    def counted_values(self) -> tuple[bytes | None, ...]:
        """int16 count, then per value an int32 length (-1 = NULL) and that many bytes."""
        count = self.uint16()
        values: list[bytes | None] = []
        for _ in range(count):
            length = self.int32()
            values.append(None if length == -1 else self.take(length))
        return tuple(values)

    def int16_list(self) -> tuple[int, ...]:
        count = self.uint16()
        return tuple(self.int16() for _ in range(count))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError("trailing bytes in message")


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def frame(type_byte: bytes, body: bytes) -> bytes:
    """A complete message: type byte, int32 length (counting itself), body."""
    return type_byte + _I32.pack(len(body) + 4) + body


def _counted_values(values: tuple[bytes | None, ...]) -> bytes:
    parts = [_U16.pack(len(values))]
    for value in values:
        if value is None:
            parts.append(_I32.pack(-1))
        else:
            parts.append(_I32.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def _int16_list(values: tuple[int, ...]) -> bytes:
    return _U16.pack(len(values)) + b"".join(_I16.pack(v) for v in values)


class Message:
    """Base of every typed message: `TYPE` is its type byte; `encode()` returns the whole framed message."""

    TYPE: ClassVar[bytes] = b""

    def body(self) -> bytes:
        return b""

    def encode(self) -> bytes:
        return frame(self.TYPE, self.body())

    @classmethod
    def decode(cls, body: bytes) -> Message:
        BodyReader(body).end()
        return cls()


# ---------------------------------------------------------------- frontend messages


@dataclass(slots=True)
class Query(Message):
    TYPE: ClassVar[bytes] = b"Q"
    sql: str = ""

    def body(self) -> bytes:
        return cstr(self.sql)

    @classmethod
    def decode(cls, body: bytes) -> Query:
        reader = BodyReader(body)
        sql = reader.cstring()
        reader.end()
        return cls(sql)


@dataclass(slots=True)
class Parse(Message):
    TYPE: ClassVar[bytes] = b"P"
    name: str = ""
    sql: str = ""
    param_types: tuple[int, ...] = ()

    def body(self) -> bytes:
        types = _U16.pack(len(self.param_types)) + b"".join(_U32.pack(t) for t in self.param_types)
        return cstr(self.name) + cstr(self.sql) + types

    @classmethod
    def decode(cls, body: bytes) -> Parse:
        reader = BodyReader(body)
        name, sql = reader.cstring(), reader.cstring()
        count = reader.uint16()
        types = tuple(reader.uint32() for _ in range(count))
        reader.end()
        return cls(name, sql, types)


@dataclass(slots=True)
class Bind(Message):
    TYPE: ClassVar[bytes] = b"B"
    portal: str = ""
    statement: str = ""
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()

    def body(self) -> bytes:
        return (
            cstr(self.portal)
            + cstr(self.statement)
            + _int16_list(self.param_formats)
            + _counted_values(self.params)
            + _int16_list(self.result_formats)
        )

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        reader = BodyReader(body)
        portal, statement = reader.cstring(), reader.cstring()
        formats = reader.int16_list()
        params = reader.counted_values()
        results = reader.int16_list()
        reader.end()
        return cls(portal, statement, formats, params, results)


@dataclass(slots=True)
class Describe(Message):
    TYPE: ClassVar[bytes] = b"D"
    kind: str = "S"  # 'S' statement or 'P' portal
    name: str = ""

    def body(self) -> bytes:
        return self.kind.encode() + cstr(self.name)

    @classmethod
    def decode(cls, body: bytes) -> Describe:
        reader = BodyReader(body)
        kind = chr(reader.byte())
        if kind not in "SP":
            raise ProtocolError("Describe target must be S or P")
        name = reader.cstring()
        reader.end()
        return cls(kind, name)


@dataclass(slots=True)
class Close(Message):
    TYPE: ClassVar[bytes] = b"C"
    kind: str = "S"
    name: str = ""

    def body(self) -> bytes:
        return self.kind.encode() + cstr(self.name)

    @classmethod
    def decode(cls, body: bytes) -> Close:
        reader = BodyReader(body)
        kind = chr(reader.byte())
        if kind not in "SP":
            raise ProtocolError("Close target must be S or P")
        name = reader.cstring()
        reader.end()
        return cls(kind, name)


@dataclass(slots=True)
class Execute(Message):
    TYPE: ClassVar[bytes] = b"E"
    portal: str = ""
    max_rows: int = 0

    def body(self) -> bytes:
        return cstr(self.portal) + _I32.pack(self.max_rows)

    @classmethod
    def decode(cls, body: bytes) -> Execute:
        reader = BodyReader(body)
        portal = reader.cstring()
        max_rows = reader.int32()
        reader.end()
        return cls(portal, max_rows)


@dataclass(slots=True)
class Sync(Message):
    TYPE: ClassVar[bytes] = b"S"


@dataclass(slots=True)
class Flush(Message):
    TYPE: ClassVar[bytes] = b"H"


@dataclass(slots=True)
class Terminate(Message):
    TYPE: ClassVar[bytes] = b"X"


@dataclass(slots=True)
class CopyData(Message):
    """CopyData travels both ways with the same layout."""

    TYPE: ClassVar[bytes] = b"d"
    data: bytes = b""

    def body(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> CopyData:
        return cls(bytes(body))


@dataclass(slots=True)
class CopyDone(Message):
    TYPE: ClassVar[bytes] = b"c"


@dataclass(slots=True)
class CopyFail(Message):
    TYPE: ClassVar[bytes] = b"f"
    message: str = ""

    def body(self) -> bytes:
        return cstr(self.message)

    @classmethod
    def decode(cls, body: bytes) -> CopyFail:
        reader = BodyReader(body)
        message = reader.cstring()
        reader.end()
        return cls(message)


@dataclass(slots=True)
class FunctionCall(Message):
    TYPE: ClassVar[bytes] = b"F"
    function_oid: int = 0
    arg_formats: tuple[int, ...] = ()
    args: tuple[bytes | None, ...] = ()
    result_format: int = 0

    def body(self) -> bytes:
        return (
            _U32.pack(self.function_oid)
            + _int16_list(self.arg_formats)
            + _counted_values(self.args)
            + _I16.pack(self.result_format)
        )

    @classmethod
    def decode(cls, body: bytes) -> FunctionCall:
        reader = BodyReader(body)
        oid = reader.uint32()
        formats = reader.int16_list()
        args = reader.counted_values()
        result_format = reader.int16()
        reader.end()
        return cls(oid, formats, args, result_format)


@dataclass(slots=True)
class PasswordMessage(Message):
    """Frontend 'p': password, SASLInitialResponse, SASLResponse or GSSResponse — the context decides.

    The body is kept raw; `password()`, `sasl_initial()` read it the way the current auth exchange needs.
    """

    TYPE: ClassVar[bytes] = b"p"
    data: bytes = b""

    def body(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, body: bytes) -> PasswordMessage:
        return cls(bytes(body))

    def password(self) -> str:
        reader = BodyReader(self.data)
        value = reader.cstring()
        reader.end()
        return value

    def sasl_initial(self) -> tuple[str, bytes | None]:
        reader = BodyReader(self.data)
        mechanism = reader.cstring()
        length = reader.int32()
        data = None if length == -1 else reader.take(length)
        reader.end()
        return mechanism, data

    @classmethod
    def for_password(cls, password: str) -> PasswordMessage:
        return cls(cstr(password))

    @classmethod
    def for_sasl_initial(cls, mechanism: str, data: bytes) -> PasswordMessage:
        return cls(cstr(mechanism) + _I32.pack(len(data)) + data)


# ---------------------------------------------------------------- backend messages


@dataclass(slots=True)
class Authentication(Message):
    """Backend 'R': `code` is the request (0 ok, 3 cleartext, 5 md5, 10 SASL, 11/12 SASL continue/final)."""

    TYPE: ClassVar[bytes] = b"R"
    code: int = 0
    data: bytes = b""

    def body(self) -> bytes:
        return _I32.pack(self.code) + self.data

    @classmethod
    def decode(cls, body: bytes) -> Authentication:
        reader = BodyReader(body)
        code = reader.int32()
        return cls(code, reader.rest())

    def sasl_mechanisms(self) -> list[str]:
        return [m.decode("utf-8", "replace") for m in self.data.split(b"\0") if m]


@dataclass(slots=True)
class BackendKeyData(Message):
    """Cancel key: pid and secret (4 bytes in protocol 3.0, up to 256 bytes in 3.2)."""

    TYPE: ClassVar[bytes] = b"K"
    pid: int = 0
    secret: bytes = b""

    def body(self) -> bytes:
        return _I32.pack(self.pid) + self.secret

    @classmethod
    def decode(cls, body: bytes) -> BackendKeyData:
        reader = BodyReader(body)
        pid = reader.int32()
        secret = reader.rest()
        if not 4 <= len(secret) <= 256:
            raise ProtocolError("BackendKeyData secret must be 4 to 256 bytes")
        return cls(pid, secret)


@dataclass(slots=True)
class ParseComplete(Message):
    TYPE: ClassVar[bytes] = b"1"


@dataclass(slots=True)
class BindComplete(Message):
    TYPE: ClassVar[bytes] = b"2"


@dataclass(slots=True)
class CloseComplete(Message):
    TYPE: ClassVar[bytes] = b"3"


@dataclass(slots=True)
class NoData(Message):
    TYPE: ClassVar[bytes] = b"n"


@dataclass(slots=True)
class EmptyQueryResponse(Message):
    TYPE: ClassVar[bytes] = b"I"


@dataclass(slots=True)
class PortalSuspended(Message):
    TYPE: ClassVar[bytes] = b"s"


@dataclass(slots=True)
class CommandComplete(Message):
    TYPE: ClassVar[bytes] = b"C"
    tag: str = ""

    def body(self) -> bytes:
        return cstr(self.tag)

    @classmethod
    def decode(cls, body: bytes) -> CommandComplete:
        reader = BodyReader(body)
        tag = reader.cstring()
        reader.end()
        return cls(tag)


@dataclass(slots=True)
class _CopyResponse(Message):
    overall_format: int = 0
    column_formats: tuple[int, ...] = ()

    def body(self) -> bytes:
        return bytes([self.overall_format]) + _int16_list(self.column_formats)

    @classmethod
    def decode(cls, body: bytes) -> _CopyResponse:
        reader = BodyReader(body)
        overall = reader.byte()
        formats = reader.int16_list()
        reader.end()
        return cls(overall, formats)


@dataclass(slots=True)
class CopyInResponse(_CopyResponse):
    TYPE: ClassVar[bytes] = b"G"


@dataclass(slots=True)
class CopyOutResponse(_CopyResponse):
    TYPE: ClassVar[bytes] = b"H"


@dataclass(slots=True)
class CopyBothResponse(_CopyResponse):
    TYPE: ClassVar[bytes] = b"W"


@dataclass(slots=True)
class DataRow(Message):
    TYPE: ClassVar[bytes] = b"D"
    values: tuple[bytes | None, ...] = ()

    def body(self) -> bytes:
        return _counted_values(self.values)

    @classmethod
    def decode(cls, body: bytes) -> DataRow:
        reader = BodyReader(body)
        values = reader.counted_values()
        reader.end()
        return cls(values)


@dataclass(slots=True)
class _FieldsMessage(Message):
    """ErrorResponse / NoticeResponse: (code byte, string) pairs ended by a zero byte."""

    fields: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        parts = [code.encode("latin-1") + cstr(value) for code, value in self.fields.items()]
        return b"".join(parts) + b"\0"

    @classmethod
    def decode(cls, body: bytes) -> _FieldsMessage:
        reader = BodyReader(body)
        fields: dict[str, str] = {}
        while True:
            code = reader.byte()
            if code == 0:
                break
            fields[chr(code)] = reader.cstring()
        reader.end()
        return cls(fields)

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")

    @property
    def severity(self) -> str:
        return self.fields.get("V", self.fields.get("S", ""))


@dataclass(slots=True)
class ErrorResponse(_FieldsMessage):
    TYPE: ClassVar[bytes] = b"E"


@dataclass(slots=True)
class NoticeResponse(_FieldsMessage):
    TYPE: ClassVar[bytes] = b"N"


@dataclass(slots=True)
class FunctionCallResponse(Message):
    TYPE: ClassVar[bytes] = b"V"
    value: bytes | None = None

    def body(self) -> bytes:
        if self.value is None:
            return _I32.pack(-1)
        return _I32.pack(len(self.value)) + self.value

    @classmethod
    def decode(cls, body: bytes) -> FunctionCallResponse:
        reader = BodyReader(body)
        length = reader.int32()
        value = None if length == -1 else reader.take(length)
        reader.end()
        return cls(value)


@dataclass(slots=True)
class NegotiateProtocolVersion(Message):
    TYPE: ClassVar[bytes] = b"v"
    newest_minor: int = 0
    unsupported_options: tuple[str, ...] = ()

    def body(self) -> bytes:
        options = b"".join(cstr(o) for o in self.unsupported_options)
        return _I32.pack(self.newest_minor) + _I32.pack(len(self.unsupported_options)) + options

    @classmethod
    def decode(cls, body: bytes) -> NegotiateProtocolVersion:
        reader = BodyReader(body)
        minor = reader.int32()
        count = reader.int32()
        if count < 0:
            raise ProtocolError("negative option count")
        options = tuple(reader.cstring() for _ in range(count))
        reader.end()
        return cls(minor, options)


@dataclass(slots=True)
class NotificationResponse(Message):
    TYPE: ClassVar[bytes] = b"A"
    pid: int = 0
    channel: str = ""
    payload: str = ""

    def body(self) -> bytes:
        return _I32.pack(self.pid) + cstr(self.channel) + cstr(self.payload)

    @classmethod
    def decode(cls, body: bytes) -> NotificationResponse:
        reader = BodyReader(body)
        pid = reader.int32()
        channel, payload = reader.cstring(), reader.cstring()
        reader.end()
        return cls(pid, channel, payload)


@dataclass(slots=True)
class ParameterDescription(Message):
    TYPE: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...] = ()

    def body(self) -> bytes:
        return _U16.pack(len(self.type_oids)) + b"".join(_U32.pack(o) for o in self.type_oids)

    @classmethod
    def decode(cls, body: bytes) -> ParameterDescription:
        reader = BodyReader(body)
        count = reader.uint16()
        oids = tuple(reader.uint32() for _ in range(count))
        reader.end()
        return cls(oids)


@dataclass(slots=True)
class ParameterStatus(Message):
    TYPE: ClassVar[bytes] = b"S"
    name: str = ""
    value: str = ""

    def body(self) -> bytes:
        return cstr(self.name) + cstr(self.value)

    @classmethod
    def decode(cls, body: bytes) -> ParameterStatus:
        reader = BodyReader(body)
        name, value = reader.cstring(), reader.cstring()
        reader.end()
        return cls(name, value)


@dataclass(slots=True)
class ReadyForQuery(Message):
    TYPE: ClassVar[bytes] = b"Z"
    status: str = "I"

    def body(self) -> bytes:
        return self.status.encode("ascii")

    @classmethod
    def decode(cls, body: bytes) -> ReadyForQuery:
        reader = BodyReader(body)
        status = chr(reader.byte())
        reader.end()
        if status not in "ITE":
            raise ProtocolError("ReadyForQuery status must be I, T or E")
        return cls(status)


@dataclass(frozen=True, slots=True)
class FieldDescription:
    name: str
    table_oid: int
    column_number: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


_FIELD_TAIL = struct.Struct("!IhIhih")


@dataclass(slots=True)
class RowDescription(Message):
    TYPE: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...] = ()

    def body(self) -> bytes:
        parts = [_I16.pack(len(self.fields))]
        for f in self.fields:
            parts.append(cstr(f.name))
            parts.append(
                _FIELD_TAIL.pack(
                    f.table_oid, f.column_number, f.type_oid, f.type_size, f.type_modifier, f.format
                )
            )
        return b"".join(parts)

    @classmethod
    def decode(cls, body: bytes) -> RowDescription:
        reader = BodyReader(body)
        count = reader.int16()
        if count < 0:
            raise ProtocolError("negative field count")
        fields = []
        for _ in range(count):
            name = reader.cstring()
            tail = reader.take(_FIELD_TAIL.size)
            fields.append(FieldDescription(name, *_FIELD_TAIL.unpack(tail)))
        reader.end()
        return cls(tuple(fields))


FRONTEND_TYPES: dict[int, type[Message]] = {
    m.TYPE[0]: m
    for m in (
        Query,
        Parse,
        Bind,
        Describe,
        Close,
        Execute,
        Sync,
        Flush,
        Terminate,
        CopyData,
        CopyDone,
        CopyFail,
        FunctionCall,
        PasswordMessage,
    )
}

BACKEND_TYPES: dict[int, type[Message]] = {
    m.TYPE[0]: m
    for m in (
        Authentication,
        BackendKeyData,
        ParseComplete,
        BindComplete,
        CloseComplete,
        NoData,
        EmptyQueryResponse,
        PortalSuspended,
        CommandComplete,
        CopyInResponse,
        CopyOutResponse,
        CopyBothResponse,
        CopyData,
        CopyDone,
        DataRow,
        ErrorResponse,
        NoticeResponse,
        FunctionCallResponse,
        NegotiateProtocolVersion,
        NotificationResponse,
        ParameterDescription,
        ParameterStatus,
        ReadyForQuery,
        RowDescription,
    )
}


def decode_frontend(type_byte: int, body: bytes) -> Message:
    cls = FRONTEND_TYPES.get(type_byte)
    if cls is None:
        raise ProtocolError(f"invalid frontend message type {type_byte!r}")
    return cls.decode(body)


def decode_backend(type_byte: int, body: bytes) -> Message:
    cls = BACKEND_TYPES.get(type_byte)
    if cls is None:
        raise ProtocolError(f"invalid backend message type {type_byte!r}")
    return cls.decode(body)


def error_response(
    message: str, code: str, severity: str = "ERROR", detail: str | None = None, hint: str | None = None
) -> ErrorResponse:
    fields = {"S": severity, "V": severity, "C": code, "M": message}
    if detail:
        fields["D"] = detail
    if hint:
        fields["H"] = hint
    return ErrorResponse(fields)


def notice_response(message: str, code: str = "01000", severity: str = "NOTICE") -> NoticeResponse:
    return NoticeResponse({"S": severity, "V": severity, "C": code, "M": message})
