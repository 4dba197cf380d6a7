"""Retention: ages parse, and only recordings old by both their header and their file are pruned."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recordings.retention import parse_age, prune
from tests.recordings.helpers import sql_header, sql_session, write_recording

NOW = datetime(2031, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_ages_parse(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "90 days", "-5d", "1.5h", "3y"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="90d"):
        parse_age(text)


def _recording(directory: Path, name: str, started: datetime, modified: datetime, key) -> Path:
    header = sql_header(started_at=started.isoformat().replace("+00:00", "Z"))
    path = write_recording(directory / name, sql_session(2), key, header)
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


def test_prune_removes_only_recordings_old_by_start_and_by_last_write(tmp_path: Path, signing_key) -> None:
    old = NOW - timedelta(days=100)
    expired = _recording(tmp_path, "expired.hrec", old, old, signing_key)
    still_written = _recording(tmp_path, "long-session.hrec", old, NOW - timedelta(hours=1), signing_key)
    recent = _recording(
        tmp_path, "recent.hrec", NOW - timedelta(days=3), NOW - timedelta(days=3), signing_key
    )
    stranger = tmp_path / "stranger.hrec"
    stranger.write_text("keep me")
    os.utime(stranger, (old.timestamp(), old.timestamp()))
    link = tmp_path / "link.hrec"
    link.symlink_to(expired)

    dry = prune(tmp_path, timedelta(days=90), dry_run=True, now=NOW)
    assert [item.path for item in dry.expired] == [expired]
    assert expired.exists()
    assert {path for path, _ in dry.skipped} == {stranger, link}

    done = prune(tmp_path, timedelta(days=90), now=NOW)
    assert [item.path for item in done.expired] == [expired] and done.bytes_freed > 0
    assert not expired.exists()
    assert still_written.exists() and recent.exists() and stranger.exists()
