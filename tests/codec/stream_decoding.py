"""Drive the sans-I/O decoders over a list of chunks the way the listener does, collecting what they yield."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.postgres.framing import MessageDecoder, StartupDecoder, StartupMessage, StartupPacket
from proxy.postgres.messages import Message
from proxy.postgres.protocol import DEFAULT_MAX_MESSAGE_SIZE


def decode_messages(
    direction: str, chunks: Iterable[bytes], max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> tuple[list[Message], MessageDecoder]:
    """Feed each chunk and drain complete messages; return them and the decoder (for what it buffers)."""
    decoder = MessageDecoder(direction, max_size)
    messages: list[Message] = []
    for chunk in chunks:
        decoder.feed(chunk)
        messages.extend(decoder)
    return messages, decoder


def decode_client_session(chunks: Iterable[bytes]) -> tuple[list[StartupPacket], list[Message]]:
    """Startup packets until the StartupMessage, then the rest of the stream as typed frontend messages."""
    startup = StartupDecoder()
    decoder: MessageDecoder | None = None
    packets: list[StartupPacket] = []
    messages: list[Message] = []
    for chunk in chunks:
        if decoder is None:
            startup.feed(chunk)
            while decoder is None and (packet := startup.next_packet()) is not None:
                packets.append(packet)
                if isinstance(packet, StartupMessage):
                    # Bytes after the StartupMessage already belong to the typed phase.
                    decoder = MessageDecoder("frontend")
                    decoder.feed(startup.take_raw())
        else:
            decoder.feed(chunk)
        if decoder is not None:
            messages.extend(decoder)
    return packets, messages
