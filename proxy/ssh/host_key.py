"""The gateway's own SSH host key: the configured one, or an Ed25519 key generated once in the state dir."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

GENERATED_NAME = "ssh_host_ed25519_key"


def load_or_create_host_key(state_dir: Path, configured: Path | None = None) -> asyncssh.SSHKey:
    """The listener's host key. A configured key must exist; a generated one is kept (0600) across restarts,
    so agents' known_hosts entries stay valid."""
    if configured is not None:
        return asyncssh.read_private_key(str(configured))
    keys = state_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keys / GENERATED_NAME
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment="hoop-tui gateway")
    # Written to a temporary name and renamed, so a crash never leaves half a key that fails the next start.
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.export_private_key())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    (keys / f"{GENERATED_NAME}.pub").write_bytes(key.export_public_key())
    return key
