"""The audit trail: every decision and session event as one JSON line, batched to disk off the event loop."""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger("hoop.audit")

# json.dumps with these options would build a new encoder for every line.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode
_ENCODE_STRING = json.encoder.encode_basestring_ascii  # what that encoder does to a str (ensure_ascii)
_HEAD_KEYS = frozenset({"at", "gateway"})
# The records that come at statement rates: {"action": A, "decision", "kind", "rule", A: text} with A one of
# these. All but the text repeat, so their JSON is made once (the line is byte-for-byte what _ENCODE makes).
_PER_STATEMENT_SHAPES = {
    "statement": ("action", "decision", "kind", "rule", "statement"),
    "command": ("action", "decision", "kind", "rule", "command"),
}
_MAX_CACHED_PREFIXES = 4096


def _statement_body(record: dict[str, Any], prefixes: dict[tuple[Any, ...], str]) -> str | None:
    """The JSON of a per-statement record from a cached prefix, or None when it has another shape."""
    shape = _PER_STATEMENT_SHAPES.get(record.get("action"))  # type: ignore[arg-type]
    if shape is None or tuple(record) != shape:
        return None
    text = record[shape[4]]
    key = (shape[4], record["decision"], record["kind"], record["rule"])
    if type(text) is not str or not all(value is None or type(value) is str for value in key):
        return None
    prefix = prefixes.get(key)
    if prefix is None:
        prefix = _ENCODE(dict(zip(shape[:4], key, strict=True)))[:-1] + f',"{shape[4]}":'
        if len(prefixes) < _MAX_CACHED_PREFIXES:
            prefixes[key] = prefix
    return prefix + _ENCODE_STRING(text) + "}"


def _context_head(gateway: str, context: dict[str, Any] | None) -> tuple[str, frozenset[str]] | None:
    """The JSON of `"gateway": ..., <context keys>,` (after "at", before the record's keys) and the keys it
    holds; None when a context key would reorder the merged line (it shadows "at" or "gateway")."""
    context = context or {}
    if not _HEAD_KEYS.isdisjoint(context):
        return None
    head = _ENCODE({"gateway": gateway, **context})
    return head[1:-1] + ",", frozenset(context) | _HEAD_KEYS


class AuditLog:
    """Append-only JSONL files `<dir>/audit-<UTC date>-<gateway>-<pid>.jsonl`; `append` never touches disk.

    One file per process, so several gateway workers never interleave partial lines. A thread writes
    batches every `flush_interval` seconds (fsynced when `durable`).
    """

    def __init__(
        self, directory: Path, gateway_id: str, *, flush_interval: float = 0.2, durable: bool = True
    ) -> None:
        self.directory = directory
        self.gateway_id = gateway_id
        self.flush_interval = flush_interval
        self.durable = durable
        # (unix time, context shared by a session's records or None, the record) — merged on the thread.
        # deque append/popleft are atomic, so the event loop never takes a lock here.
        self._pending: deque[tuple[float, dict[str, Any] | None, dict[str, Any]]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hoop-audit", daemon=True)
        self._prefixes: dict[tuple[Any, ...], str] = {}  # the writer thread's, see _statement_body

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._thread.start()

    def append(self, record: dict[str, Any], context: dict[str, Any] | None = None) -> None:
        """Queue one record; `context` (session, identity, ...) is merged in on the writer thread."""
        self._pending.append((time.time(), context, record))

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)

    def current_path(self) -> Path:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        return self.directory / f"audit-{day}-{self.gateway_id}-{os.getpid()}.jsonl"

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            batch = self._drain()
            if batch:
                try:
                    self._write(batch)
                except OSError as error:
                    self.error = error
                    log.error("audit log write failed: %s", error)
            if self._stopping and not self._pending:
                return

    def _drain(self) -> list[tuple[float, dict[str, Any] | None, dict[str, Any]]]:
        pending = self._pending
        batch = []
        while pending:
            batch.append(pending.popleft())
        return batch

    def _write(self, batch: list[tuple[float, dict[str, Any] | None, dict[str, Any]]]) -> None:
        lines = []
        gateway = self.gateway_id
        # A session's records share one context object: its JSON is made once per batch. (The batch holds
        # each context, so an id cannot be reused by another object while this runs.)
        heads: dict[int, tuple[str, frozenset[str]] | None] = {}
        for at, context, record in batch:
            key = id(context)
            if key not in heads:
                heads[key] = _context_head(gateway, context)
            head = heads[key]
            if head is None or not record or not head[1].isdisjoint(record):
                merged = {"at": at, "gateway": gateway, **(context or {}), **record}
                lines.append(_ENCODE(merged) + "\n")
                continue
            # The same line json.dumps makes of the merged dict, built from parts: a float is written
            # as its repr, and the record's own keys come after the context's.
            body = _statement_body(record, self._prefixes) or _ENCODE(record)
            lines.append(f'{{"at":{at!r},{head[0]}{body[1:]}\n')
        text = "".join(lines)
        with self.current_path().open("a", encoding="utf-8") as handle:
            handle.write(text)
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())
