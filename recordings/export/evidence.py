"""Evidence bundles: a zip of recordings with a SHA-256 manifest, verification reports and approval records.

Layout of the zip:

- ``recordings/<file>.hrec`` -- the recordings, byte for byte (stored, not recompressed)
- ``verification.json``      -- a :class:`~recordings.verify.VerifyReport` per recording
- ``approvals.json``         -- every approval request found in the recordings, with its decision
- ``statements.csv``         -- the CSV export of the same recordings
- ``manifest.json``          -- SHA-256 and size of every other member, and each recording's status

Each recording is verified from the very bytes copied into the zip, so the report describes what the bundle
holds. :func:`verify_evidence` re-checks a bundle from its own manifest. The manifest itself is not signed:
the recordings' seals carry the authenticity; the manifest catches members changed, added or removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recordings import events as ev
from recordings.errors import RecordingError
from recordings.export.csvfile import export_csv_rows, new_csv_writer
from recordings.export.jsonvalue import to_json
from recordings.export.source import ProgressCallback, iter_events
from recordings.reader import RecordingReader
from recordings.verify import INTACT, TAMPERED, UNSEALED, VerifyReport, verify_stream

BUNDLE_FORMAT = "hoop-evidence/1"
MANIFEST = "manifest.json"
VERIFICATION = "verification.json"
APPROVALS = "approvals.json"
STATEMENTS = "statements.csv"
RECORDINGS_DIR = "recordings/"
# Evidence reads each recording twice (copy-and-verify, then events); progress counts both passes.
PASSES = 2
_COPY_BLOCK = 1 << 20


class _TeeReader(io.RawIOBase):
    """A read-only, forward-only stream that hashes what passes through and optionally copies it."""

    def __init__(
        self, source: BinaryIO, sink: BinaryIO | None = None, on_progress: ProgressCallback | None = None
    ) -> None:
        self._source = source
        self._sink = sink
        self._on_progress = on_progress
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.digest.update(data)
            self.size += len(data)
            if self._sink is not None:
                self._sink.write(data)
            if self._on_progress is not None:
                self._on_progress(len(data))
        return data

    def drain(self) -> None:
        while self.read(_COPY_BLOCK):
            pass


def _unique_member(directory: str, name: str, taken: set[str]) -> str:
    candidate = directory + name
    number = 1
    while candidate in taken:
        number += 1
        candidate = f"{directory}{number}-{name}"
    taken.add(candidate)
    return candidate


def _collect_approvals(
    events: Iterable[list], session_id: Any, records: dict[tuple[Any, str], dict[str, Any]]
) -> Iterator[list]:
    """Pass ``events`` through, pairing approval requests with their decisions into ``records``."""
    for event in events:
        kind = event[1]
        detail = ev.event_field(event, 0)
        if kind in (ev.APPROVAL_REQUESTED, ev.APPROVAL_DECIDED) and isinstance(detail, dict):
            request_id = str(detail.get("id"))
            record = records.setdefault(
                (session_id, request_id), {"session_id": session_id, "id": request_id}
            )
            phase = "requested" if kind == ev.APPROVAL_REQUESTED else "decided"
            record[phase] = to_json(detail)
            record[f"{phase}_t_us"] = event[0]
        yield event


@dataclass(frozen=True)
class EvidenceSummary:
    """What an export put in a bundle."""

    recordings: list[VerifyReport]
    approvals: int
    statements: int


def export_evidence(
    paths: list[Path],
    out: BinaryIO,
    *,
    public_key: Ed25519PublicKey | None = None,
    on_progress: ProgressCallback | None = None,
) -> EvidenceSummary:
    """Write an evidence bundle of ``paths`` as a zip to ``out`` (seekable or not)."""
    taken = {MANIFEST, VERIFICATION, APPROVALS, STATEMENTS}
    members: list[dict[str, Any]] = []
    manifest_recordings: list[dict[str, Any]] = []
    reports: list[VerifyReport] = []
    approvals: dict[tuple[Any, str], dict[str, Any]] = {}
    statements_text = io.StringIO()
    csv_writer = new_csv_writer(statements_text)
    statement_count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as bundle:
        for path in paths:
            member = _unique_member(RECORDINGS_DIR, path.name, taken)
            info = zipfile.ZipInfo(member, date_time=_zip_time())
            info.compress_type = zipfile.ZIP_STORED
            with path.open("rb") as source, bundle.open(info, "w", force_zip64=True) as sink:
                tee = _TeeReader(source, sink, on_progress)
                report = verify_stream(tee, name=member, public_key=public_key)
                tee.drain()
            reports.append(report)
            members.append({"name": member, "sha256": tee.digest.hexdigest(), "size": tee.size})
            manifest_recordings.append(
                {
                    "member": member,
                    "source": path.name,
                    "session_id": report.session_id,
                    "status": report.status,
                    "chunks_intact": report.chunks_intact,
                    "key_fingerprint": report.key_fingerprint,
                }
            )
            with RecordingReader(path) as reader:
                session_id = to_json(reader.header.get("session_id"))
                events = _collect_approvals(iter_events(reader, on_progress), session_id, approvals)
                statement_count += export_csv_rows(reader, csv_writer, events=events)
        documents = {
            VERIFICATION: json.dumps([report.to_dict() for report in reports], indent=2).encode(),
            APPROVALS: json.dumps(list(approvals.values()), indent=2, ensure_ascii=False).encode(
                "utf-8", "backslashreplace"
            ),
            STATEMENTS: statements_text.getvalue().encode("utf-8", "backslashreplace"),
        }
        for name, data in documents.items():
            bundle.writestr(
                zipfile.ZipInfo(name, date_time=_zip_time()), data, compress_type=zipfile.ZIP_DEFLATED
            )
            members.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        manifest = {
            "format": BUNDLE_FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "key_pinned": public_key is not None,
            "members": members,
            "recordings": manifest_recordings,
        }
        bundle.writestr(
            zipfile.ZipInfo(MANIFEST, date_time=_zip_time()), json.dumps(manifest, indent=2) + "\n"
        )
    return EvidenceSummary(reports, len(approvals), statement_count)


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now(UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


@dataclass(frozen=True)
class EvidenceReport:
    """The outcome of re-verifying an evidence bundle."""

    path: str
    status: str
    problems: list[str] = field(default_factory=list)
    recordings: list[VerifyReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == INTACT

    def summary(self) -> str:
        count = len(self.recordings)
        keys = sorted({report.key_fingerprint or "unknown" for report in self.recordings})
        pinned = any(report.key_pinned for report in self.recordings)
        key_note = f"; key {', '.join(keys)} ({'pinned' if pinned else 'from headers'})" if keys else ""
        if self.problems:
            return f"{self.status}: evidence bundle, {count} recordings; {self.problems[0]}{key_note}"
        return (
            f"{self.status}: evidence bundle, {count} recordings, every member matches its manifest{key_note}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "problems": self.problems,
            "recordings": [report.to_dict() for report in self.recordings],
        }


def verify_evidence(zip_path: Path | str, public_key: Ed25519PublicKey | None = None) -> EvidenceReport:
    """Re-verify a bundle: every member against the manifest, every recording against its seal."""
    problems: list[str] = []
    reports: list[VerifyReport] = []
    try:
        bundle = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        return EvidenceReport(str(zip_path), TAMPERED, [f"not a readable zip: {exc}"])
    with bundle:
        names = bundle.namelist()
        if len(names) != len(set(names)):
            problems.append("the zip holds two members with the same name")
        try:
            manifest = json.loads(bundle.read(MANIFEST))
            listed = {entry["name"]: entry for entry in manifest["members"]}
            recordings = {entry["member"]: entry for entry in manifest["recordings"]}
            if manifest.get("format") != BUNDLE_FORMAT:
                problems.append(f"unknown bundle format {manifest.get('format')!r}")
        except (KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
            return EvidenceReport(str(zip_path), TAMPERED, [f"manifest is missing or unreadable: {exc}"])
        for name in sorted(set(names) - set(listed) - {MANIFEST}):
            problems.append(f"{name}: not in the manifest")
        for name, entry in listed.items():
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing")
                continue
            try:
                with bundle.open(name) as member:
                    tee = _TeeReader(member)
                    if name in recordings:
                        report = verify_stream(tee, name=name, public_key=public_key)
                        reports.append(report)
                        stated = recordings[name].get("status")
                        if report.status != stated:
                            problems.append(f"{name}: now {report.status}, the manifest says {stated}")
                        elif report.status == TAMPERED:
                            problems.append(f"{name}: {report.problem}")
                    tee.drain()
            except (zipfile.BadZipFile, OSError, RecordingError) as exc:
                problems.append(f"{name}: cannot be read ({exc})")
                continue
            if tee.digest.hexdigest() != entry.get("sha256") or tee.size != entry.get("size"):
                problems.append(f"{name}: SHA-256 does not match the manifest")
    if problems:
        status = TAMPERED
    elif any(report.status == UNSEALED for report in reports):
        status = UNSEALED
    else:
        status = INTACT
    return EvidenceReport(str(zip_path), status, problems, reports)
