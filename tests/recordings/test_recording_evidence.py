"""Evidence bundles re-verify from their own manifest, and a changed, added or missing member is caught."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from recordings.export.evidence import APPROVALS, MANIFEST, export_evidence, verify_evidence
from tests.recordings.helpers import sql_session, ssh_header, write_recording


@pytest.fixture
def bundle(tmp_path: Path, signing_key) -> Path:
    first = write_recording(tmp_path / "a.hrec", sql_session(40), signing_key)
    events = [
        [0, "ssh.exec", "uptime"],
        [5, "ssh.output", "stdout", b" 10:00 up 1 day\n"],
        [6, "ssh.exit", 0],
    ]
    second = write_recording(tmp_path / "b.hrec", events, signing_key, ssh_header())
    path = tmp_path / "evidence.zip"
    with path.open("wb") as out:
        summary = export_evidence([first, second], out, public_key=signing_key.public_key())
    assert [report.status for report in summary.recordings] == ["intact", "intact"]
    return path


def _rewrite(
    source: Path, target: Path, change: dict[str, bytes | None], extra: dict[str, bytes] | None = None
) -> None:
    """Copy a zip, replacing (or with None dropping) members, the way someone editing a bundle would."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change.get(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            new.writestr(name, data)


def test_a_fresh_bundle_verifies_and_holds_what_it_promises(bundle: Path, signing_key) -> None:
    report = verify_evidence(bundle, signing_key.public_key())
    assert report.status == "intact", report.problems
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"recordings/a.hrec", "recordings/b.hrec", "verification.json", APPROVALS, MANIFEST} <= names
        approvals = json.loads(archive.read(APPROVALS))
        manifest = json.loads(archive.read(MANIFEST))
        statements = archive.read("statements.csv").decode()
    held = [event for event in sql_session(40) if event[1] == "approval.requested"]
    assert sorted(record["id"] for record in approvals) == sorted(event[2]["id"] for event in held)
    assert all(record["decided"]["decider"] == "alice" for record in approvals)
    assert {entry["member"]: entry["status"] for entry in manifest["recordings"]} == {
        "recordings/a.hrec": "intact",
        "recordings/b.hrec": "intact",
    }
    assert "uptime" in statements


def test_a_modified_member_is_caught(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        approvals = json.loads(archive.read(APPROVALS))
    approvals[0]["decided"]["decider"] = "mallory"
    edited = tmp_path / "edited.zip"
    _rewrite(bundle, edited, {APPROVALS: json.dumps(approvals).encode()})
    report = verify_evidence(edited)
    assert report.status == "tampered"
    assert any(problem.startswith(APPROVALS) for problem in report.problems)


def test_a_modified_recording_is_caught_by_hash_and_by_its_chain(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        recording = bytearray(archive.read("recordings/a.hrec"))
    recording[len(recording) // 2] ^= 0x10
    edited = tmp_path / "edited.zip"
    _rewrite(bundle, edited, {"recordings/a.hrec": bytes(recording)})
    report = verify_evidence(edited)
    assert report.status == "tampered"
    problems = " ".join(report.problems)
    assert "recordings/a.hrec: now tampered" in problems and "SHA-256" in problems


def test_added_and_removed_members_are_caught(bundle: Path, tmp_path: Path) -> None:
    added = tmp_path / "added.zip"
    _rewrite(bundle, added, {}, {"recordings/c.hrec": b"planted"})
    assert "recordings/c.hrec: not in the manifest" in verify_evidence(added).problems
    removed = tmp_path / "removed.zip"
    _rewrite(bundle, removed, {"recordings/b.hrec": None})
    assert "recordings/b.hrec: listed in the manifest but missing" in verify_evidence(removed).problems


def test_bytes_changed_inside_the_zip_itself_are_caught(bundle: Path, tmp_path: Path) -> None:
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo("recordings/a.hrec")
    data[info.header_offset + 200] ^= 0x01  # inside the stored recording; the zip's CRC no longer matches
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    assert verify_evidence(damaged).status == "tampered"


def test_a_bundle_can_stream_to_a_pipe(tmp_path: Path, signing_key) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def write(self, chunk: bytes) -> int:
            self.data += chunk
            return len(chunk)

    recording = write_recording(tmp_path / "a.hrec", sql_session(10), signing_key)
    pipe = Pipe()
    export_evidence([recording], pipe)
    streamed = tmp_path / "streamed.zip"
    streamed.write_bytes(bytes(pipe.data))
    assert verify_evidence(streamed).status == "intact"
