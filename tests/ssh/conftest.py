"""SSH fixtures: a real upstream SSH host (OpenSSH sshd, or the demo target without it) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ssh_targets import SshTarget, start_sshd


@pytest.fixture
def ssh_target(tmp_path: Path) -> Iterator[SshTarget]:
    with start_sshd(tmp_path / "upstream") as target:
        yield target
