"""Hypothesis strategies that build valid typed messages of every frontend and backend type."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import strategies as st

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

# Strings on the wire are NUL-terminated UTF-8, so any code point but NUL (and lone surrogates) is fair.
texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=24)
int16s = st.integers(-(2**15), 2**15 - 1)
int32s = st.integers(-(2**31), 2**31 - 1)
uint32s = st.integers(0, 2**32 - 1)
small_bytes = st.binary(max_size=40)
nullable_values = st.tuples() | st.lists(st.none() | small_bytes, max_size=6).map(tuple)
format_codes = st.lists(st.sampled_from((0, 1)), max_size=6).map(tuple)
field_codes = st.characters(min_codepoint=0x21, max_codepoint=0x7E)

field_descriptions = st.builds(FieldDescription, texts, uint32s, int16s, uint32s, int16s, int32s, int16s)

FRONTEND_STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Query: st.builds(Query, texts),
    Parse: st.builds(Parse, texts, texts, st.lists(uint32s, max_size=6).map(tuple)),
    Bind: st.builds(Bind, texts, texts, format_codes, nullable_values, format_codes),
    Describe: st.builds(Describe, st.sampled_from("SP"), texts),
    Close: st.builds(Close, st.sampled_from("SP"), texts),
    Execute: st.builds(Execute, texts, int32s),
    Sync: st.just(Sync()),
    Flush: st.just(Flush()),
    Terminate: st.just(Terminate()),
    CopyData: st.builds(CopyData, small_bytes),
    CopyDone: st.just(CopyDone()),
    CopyFail: st.builds(CopyFail, texts),
    # OIDs up to 2**31 - 1 here; the unsigned upper half has its own test (the relay records it signed).
    FunctionCall: st.builds(FunctionCall, st.integers(0, 2**31 - 1), format_codes, nullable_values, int16s),
    PasswordMessage: st.builds(PasswordMessage, small_bytes),
}

BACKEND_STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Authentication: st.builds(Authentication, int32s, small_bytes),
    BackendKeyData: st.builds(BackendKeyData, int32s, st.binary(min_size=4, max_size=256)),
    ParseComplete: st.just(ParseComplete()),
    BindComplete: st.just(BindComplete()),
    CloseComplete: st.just(CloseComplete()),
    NoData: st.just(NoData()),
    EmptyQueryResponse: st.just(EmptyQueryResponse()),
    PortalSuspended: st.just(PortalSuspended()),
    CommandComplete: st.builds(CommandComplete, texts),
    CopyInResponse: st.builds(CopyInResponse, st.integers(0, 1), format_codes),
    CopyOutResponse: st.builds(CopyOutResponse, st.integers(0, 1), format_codes),
    CopyBothResponse: st.builds(CopyBothResponse, st.integers(0, 1), format_codes),
    CopyData: st.builds(CopyData, small_bytes),
    CopyDone: st.just(CopyDone()),
    DataRow: st.builds(DataRow, nullable_values),
    ErrorResponse: st.builds(ErrorResponse, st.dictionaries(field_codes, texts, max_size=6)),
    NoticeResponse: st.builds(NoticeResponse, st.dictionaries(field_codes, texts, max_size=6)),
    FunctionCallResponse: st.builds(FunctionCallResponse, st.none() | small_bytes),
    NegotiateProtocolVersion: st.builds(
        NegotiateProtocolVersion, int32s, st.lists(texts, max_size=4).map(tuple)
    ),
    NotificationResponse: st.builds(NotificationResponse, int32s, texts, texts),
    ParameterDescription: st.builds(ParameterDescription, st.lists(uint32s, max_size=6).map(tuple)),
    ParameterStatus: st.builds(ParameterStatus, texts, texts),
    ReadyForQuery: st.builds(ReadyForQuery, st.sampled_from("ITE")),
    RowDescription: st.builds(RowDescription, st.lists(field_descriptions, max_size=4).map(tuple)),
}

frontend_messages = st.one_of(list(FRONTEND_STRATEGIES.values()))
backend_messages = st.one_of(list(BACKEND_STRATEGIES.values()))
# What a live client sends mid-session: everything but Terminate, which ends the session.
session_frontend_messages = st.one_of(
    [strategy for cls, strategy in FRONTEND_STRATEGIES.items() if cls is not Terminate]
)


def chunkings(length: int, max_cuts: int = 40) -> st.SearchStrategy[list[int]]:
    """Sorted cut offsets that split a buffer of `length` bytes into chunks (duplicates = empty chunks)."""
    return st.lists(st.integers(0, length), max_size=max_cuts).map(sorted)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]
