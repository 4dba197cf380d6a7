"""`hoop-tui demo --headless` end to end: real embedded Postgres, gateway, demo agent, one round."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recordings.verify import verify


def test_headless_demo_round(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hoop_tui.cli", "demo", "--headless", "--state-dir", str(tmp_path / "demo"),
         "--port", "0", "--rounds", "1", "--review-timeout", "2s"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("psql 'host=127.0.0.1 port="), "stdout carries the psql command only"
    log = result.stderr
    assert "agent: read customers: ok (3 rows)" in log
    assert "[EMAIL]" in log and "@example.com" not in log.split("agent: read customers")[1].split("\n")[0]
    assert "agent: notice: hoop: statement held for review (request r" in log
    assert "agent: credit a balance: 42501 hoop: review timed out after 2s" in log
    assert "agent: drop a table: 42501 hoop: statement denied by policy (drop:" in log
    recordings = sorted((tmp_path / "demo" / "recordings").rglob("*.hrec"))
    assert recordings
    assert all(verify(path).status == "intact" for path in recordings)
