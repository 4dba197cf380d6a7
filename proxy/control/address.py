"""Control API addresses: "unix:PATH" (the default, a private socket file) or "tcp://HOST:PORT" (TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from proxy.config import split_host_port


@dataclass(frozen=True, slots=True)
class ControlAddress:
    """Where a control API listens; exactly one of `path` (unix) or `host`/`port` (tcp) is set."""

    kind: str  # "unix" | "tcp"
    path: Path | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_control_address(text: str) -> ControlAddress:
    """Read "unix:PATH" or "tcp://HOST:PORT"; ValueError with one line saying what to write otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('no control address: use "unix:PATH" or "tcp://HOST:PORT"')
    text = text.strip()
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise ValueError('name the socket file, e.g. "unix:./hoop-state/control.sock"')
        return ControlAddress("unix", path=Path(path).expanduser())
    if text.startswith("tcp://"):
        try:
            host, port = split_host_port(text.removeprefix("tcp://"))
        except ValueError as error:
            raise ValueError(f"bad control address {text!r}: {error}") from None
        return ControlAddress("tcp", host=host, port=port)
    raise ValueError(f'bad control address {text!r}: use "unix:PATH" or "tcp://HOST:PORT"')
