"""Render-time masking for control API viewers: a session's events masked further by the viewer's role.

Recordings hold what the storage policy let through. An auditor who is not an admin sees that masked again
for `[gateway] auditor_mask`'s entities, on the gateway, before an event leaves it: a remote console never
receives what its operator may not see. Masking only replaces more; nothing masked at storage comes back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import Any

from proxy.control.roles import ADMIN
from proxy.control.streams import Watch
from proxy.masking.masker import Masker
from proxy.masking.render import viewer_masker
from recordings.errors import RecordingError
from recordings.pgwire import decode_datarows, encode_datarow

_SKIP_KINDS = frozenset({"session.end", "ssh.exit", "ssh.resize", "mask.summary", "pg.execute", "pg.bind"})


def viewer_entities(roles: Iterable[str], auditor_mask: Iterable[str]) -> frozenset[str]:
    """What a viewer with `roles` may not see beyond the recording: nothing for an admin."""
    return frozenset() if ADMIN in set(roles) else frozenset(auditor_mask)


class EventMasker:
    """Masks every text a recording event carries: statements, commands, outputs, rows, errors, screens."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker

    @classmethod
    def for_entities(cls, entities: frozenset[str]) -> EventMasker | None:
        return cls(viewer_masker(entities)) if entities else None

    def event(self, event: Any) -> Any:
        if not isinstance(event, list) or len(event) < 3 or event[1] in _SKIP_KINDS:
            return event
        if event[1] == "pg.rows" and len(event) >= 4 and isinstance(event[3], bytes | bytearray):
            return [*event[:3], self._rows(bytes(event[3])), *event[4:]]
        return [*event[:2], *(self._value(value) for value in event[2:])]

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._masker.mask_text(value)[0]
        if isinstance(value, bytes | bytearray):
            masked = self._masker.mask_bytes(bytes(value))
            return value if masked is None else masked[0]
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        return value

    def _rows(self, raw: bytes) -> bytes:
        try:
            rows = decode_datarows(raw)
        except RecordingError:
            return b""  # rows this masker cannot read are not shown at all (fail closed)
        out = []
        for row in rows:
            values = []
            for value in row:
                masked = None if value is None else self._masker.mask_bytes(value)
                values.append(value if masked is None else masked[0])
            out.append(encode_datarow(values))
        return b"".join(out)


def masked_watch(watch: Watch, masker: EventMasker) -> Watch:
    """`watch` with every event (and the catch-up in its initial map) masked for the viewer."""

    async def events() -> AsyncGenerator[Any, None]:
        source = watch.events
        try:
            async for event in source:
                yield masker.event(event)
        finally:
            await source.aclose()

    return Watch(watch.initial, events())
