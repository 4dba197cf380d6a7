"""Retention: find the recordings in a directory older than a given age, and delete them.

A recording counts as old only when both its header's ``started_at`` and the file's last modification are
older than the cutoff, so a long session that is still being written is never pruned. Files that are not
readable recordings, and symbolic links, are skipped and reported, never deleted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recordings.errors import RecordingError
from recordings.reader import read_header

RECORDING_SUFFIX = ".hrec"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"(\d+)([smhdw])")


def parse_age(text: str) -> timedelta:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` or combinations such as ``"1d12h"``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _AGE.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90d, 12h or 30m")
    return timedelta(seconds=sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts))


@dataclass(frozen=True)
class RecordingFile:
    """A recording found in the directory."""

    path: Path
    started_at: datetime
    modified_at: datetime
    size: int


@dataclass
class PruneResult:
    """What a prune deleted (or would delete) and what it left alone, with why."""

    dry_run: bool
    expired: list[RecordingFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        failed = {path for path, _ in self.failed}
        return sum(item.size for item in self.expired if item.path not in failed)


def _parse_started_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _candidate_paths(directory: Path) -> list[Path]:
    found = []
    for root, _dirs, files in os.walk(directory, followlinks=False):
        found.extend(Path(root) / name for name in files if name.endswith(RECORDING_SUFFIX))
    return sorted(found)


def find_expired(
    directory: Path, older_than: timedelta, *, now: datetime | None = None
) -> tuple[list[RecordingFile], list[tuple[Path, str]]]:
    """``(expired recordings, skipped files with the reason)`` under ``directory``."""
    if not directory.is_dir():
        raise RecordingError(f"{directory} is not a directory")
    cutoff = (now or datetime.now(UTC)) - older_than
    expired: list[RecordingFile] = []
    skipped: list[tuple[Path, str]] = []
    for path in _candidate_paths(directory):
        if path.is_symlink():
            skipped.append((path, "symbolic link"))
            continue
        try:
            stat = path.stat()
            header = read_header(path)
        except (OSError, RecordingError) as exc:
            skipped.append((path, f"not a readable recording: {exc}"))
            continue
        started = _parse_started_at(header.get("started_at"))
        if started is None:
            skipped.append((path, "header has no valid started_at"))
            continue
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        if started <= cutoff and modified <= cutoff:
            expired.append(RecordingFile(path, started, modified, stat.st_size))
    return expired, skipped


def prune(
    directory: Path, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> PruneResult:
    """Delete (or with ``dry_run`` only list) the recordings under ``directory`` older than ``older_than``."""
    expired, skipped = find_expired(directory, older_than, now=now)
    result = PruneResult(dry_run=dry_run, expired=expired, skipped=skipped)
    if not dry_run:
        for item in expired:
            try:
                item.path.unlink()
            except OSError as exc:
                result.failed.append((item.path, exc.strerror or str(exc)))
    return result
