"""PostgreSQL wire-protocol constants and the protocol error every codec raises."""

from __future__ import annotations

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# PostgreSQL itself refuses startup packets over 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP_PACKET = 10000

PROTOCOL_3_0 = (3 << 16) | 0
PROTOCOL_3_2 = (3 << 16) | 2
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# Authentication request codes carried by backend 'R' messages.
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

# Transaction status byte of ReadyForQuery.
TX_IDLE = ord("I")
TX_IN_BLOCK = ord("T")
TX_FAILED = ord("E")


class ProtocolError(Exception):
    """The peer sent bytes that are not the PostgreSQL protocol; the session that sent them must end."""


# SQLSTATE codes the gateway itself raises.
SQLSTATE_PROTOCOL_VIOLATION = "08P01"
SQLSTATE_CONNECTION_FAILURE = "08006"
SQLSTATE_CANNOT_CONNECT = "08001"
SQLSTATE_INVALID_AUTHORIZATION = "28000"
SQLSTATE_INVALID_PASSWORD = "28P01"
SQLSTATE_INVALID_CATALOG = "3D000"
SQLSTATE_INSUFFICIENT_PRIVILEGE = "42501"
SQLSTATE_ADMIN_SHUTDOWN = "57P01"
SQLSTATE_FEATURE_NOT_SUPPORTED = "0A000"
SQLSTATE_TOO_MANY_CONNECTIONS = "53300"
