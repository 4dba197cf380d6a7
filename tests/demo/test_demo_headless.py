"""`hoop-tui demo --headless` end to end: real embedded Postgres, gateway, demo agent, one round."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from recordings.verify import verify


def test_headless_demo_round(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hoop_tui.cli", "demo", "--headless", "--state-dir", str(tmp_path / "demo"),
         "--port", "0", "--ssh-port", "0", "--rounds", "1", "--review-timeout", "2s"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    psql_line, ssh_line = result.stdout.splitlines()  # stdout carries the two commands to try, nothing else
    assert psql_line.startswith("psql 'host=127.0.0.1 port=")
    assert ssh_line.startswith("ssh -p ") and " web1@127.0.0.1 " in ssh_line
    log = result.stderr
    assert "agent: read customers: ok (3 rows)" in log
    assert "[EMAIL]" in log and "@example.com" not in log.split("agent: read customers")[1].split("\n")[0]
    assert "agent: notice: hoop: statement held for review (request r" in log
    assert "agent: credit a balance: 42501 hoop: review timed out after 2s" in log
    assert "agent: drop a table: 42501 hoop: statement denied by policy (drop:" in log
    assert "agent: ssh tail the app log: exit 0: " in log
    tail_line = log.split("agent: ssh tail the app log")[1].split("\n")[0]
    assert "[EMAIL]" in tail_line and "@example" not in tail_line
    assert "agent: ssh count errors: exit 0: 2" in log
    assert "agent: ssh flag maintenance: exit 126: hoop: command held for review (request r" in log
    assert "review timed out after 2s" in log.split("agent: ssh flag maintenance")[1].split("\n")[0]
    assert "agent: ssh clean old releases: exit 126: hoop: command denied by policy" in log
    assert (tmp_path / "demo" / "ssh-host" / "releases" / "v1.4.1").is_dir()  # the denied rm never ran
    assert not (tmp_path / "demo" / "ssh-host" / "releases" / "maintenance.flag").exists()
    recordings = sorted((tmp_path / "demo" / "recordings").rglob("*.hrec"))
    assert recordings
    assert all(verify(path).status == "intact" for path in recordings)
