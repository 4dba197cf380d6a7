"""A minimal blocking wire-protocol client for tests that need to send exactly the bytes they choose."""

from __future__ import annotations

import socket

from proxy.postgres.framing import MessageDecoder, StartupMessage
from proxy.postgres.messages import Message, PasswordMessage, ReadyForQuery
from proxy.postgres.protocol import PROTOCOL_3_0


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = MessageDecoder("backend")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self) -> Message | None:
        while True:
            message = self.decoder.next_message()
            if message is not None:
                return message
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.decoder.feed(chunk)

    def read_until_ready(self) -> list[Message]:
        messages = []
        while True:
            message = self.read_message()
            if message is None:
                return messages
            messages.append(message)
            if isinstance(message, ReadyForQuery):
                return messages

    def login(self, connection: str, token: str, user: str = "raw") -> list[Message]:
        self.send(StartupMessage(PROTOCOL_3_0, {"user": user, "database": connection}).encode())
        self.read_message()  # AuthenticationCleartextPassword
        self.send(PasswordMessage.for_password(token).encode())
        return self.read_until_ready()

    def close(self) -> None:
        self.sock.close()
