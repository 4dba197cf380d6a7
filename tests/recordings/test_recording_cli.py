"""The `verify`, `export` and `recordings prune` commands: data on stdout, one-line errors, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from hoop_tui.commands.recordings import export_command, recordings_group, verify_command
from recordings.keys import load_or_create_signing_key
from tests.recordings.helpers import sql_header, sql_session, write_recording


@pytest.fixture
def files(tmp_path: Path, signing_key) -> dict[str, Path]:
    intact = write_recording(tmp_path / "intact.hrec", sql_session(30), signing_key, chunk_max_bytes=800)
    data = intact.read_bytes()
    unsealed = tmp_path / "unsealed.hrec"
    unsealed.write_bytes(data[: len(data) - 200])
    tampered = tmp_path / "tampered.hrec"
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x04
    tampered.write_bytes(bytes(changed))
    return {"intact": intact, "unsealed": unsealed, "tampered": tampered}


def _run(command: click.Command, *args: object) -> Result:
    return CliRunner().invoke(command, [str(arg) for arg in args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("names", "code"),
    [
        (["intact"], 0),
        (["unsealed"], 3),
        (["intact", "unsealed"], 3),
        (["tampered"], 1),
        (["intact", "unsealed", "tampered"], 1),
    ],
)
def test_verify_exit_codes(files: dict[str, Path], names: list[str], code: int) -> None:
    result = _run(verify_command, *(files[name] for name in names))
    assert result.exit_code == code
    lines = result.stdout.splitlines()
    assert len(lines) == len(names)
    for line, name in zip(lines, names, strict=True):
        assert line.startswith(f"{files[name]}: {name}")
        assert "SHA256:" in line


def test_verify_json_is_one_object_per_file(files: dict[str, Path]) -> None:
    result = _run(verify_command, "--json", files["intact"], files["tampered"])
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [report["status"] for report in reports] == ["intact", "tampered"]
    assert reports[1]["failed_part"] == "chunk" and isinstance(reports[1]["first_bad_chunk"], int)


def test_verify_with_a_pinned_key(tmp_path: Path, files: dict[str, Path], signing_key, other_key) -> None:
    keys = tmp_path / "keys"
    gateway_key = load_or_create_signing_key(keys)
    genuine = write_recording(tmp_path / "genuine.hrec", sql_session(5), gateway_key)
    pinned = _run(verify_command, "--key", keys / "recording.pub", genuine)
    assert pinned.exit_code == 0 and "(pinned)" in pinned.stdout
    assert "checking against pinned key SHA256:" in pinned.stderr
    forged = _run(verify_command, "--key", keys / "recording.pub", files["intact"])
    assert forged.exit_code == 1 and "tampered: signature" in forged.stdout


def test_verify_with_the_key_of_a_gateway_config(tmp_path: Path, files: dict[str, Path]) -> None:
    pytest.importorskip("proxy.config")
    config = tmp_path / "hoop.toml"
    config.write_text('[gateway]\nstate_dir = "state"\n')
    gateway_key = load_or_create_signing_key(tmp_path / "state" / "keys")
    genuine = write_recording(tmp_path / "genuine.hrec", sql_session(5), gateway_key)
    assert _run(verify_command, "--config", config, genuine).exit_code == 0
    assert _run(verify_command, "--config", config, files["intact"]).exit_code == 1


def test_verify_refuses_two_key_sources(tmp_path: Path, files: dict[str, Path]) -> None:
    load_or_create_signing_key(tmp_path / "k")
    config = tmp_path / "hoop.toml"
    config.write_text("")
    result = _run(
        verify_command, "--key", tmp_path / "k" / "recording.pub", "--config", config, files["intact"]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "hoop-tui verify: use --key or --config, not both"


def test_verify_checks_evidence_bundles(tmp_path: Path, files: dict[str, Path]) -> None:
    bundle = tmp_path / "bundle.zip"
    assert _run(export_command, files["intact"], "--format", "evidence", "-o", bundle).exit_code == 0
    result = _run(verify_command, bundle)
    assert result.exit_code == 0 and "evidence bundle" in result.stdout and "SHA256:" in result.stdout


def test_export_jsonl_writes_only_data_to_stdout(files: dict[str, Path]) -> None:
    result = _run(export_command, files["intact"], "--format", "jsonl")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["kind"] == "recording.header"
    assert len(lines) == 1 + len(sql_session(30))
    assert result.stderr == ""


def test_export_csv_to_a_file_for_several_recordings(
    tmp_path: Path, files: dict[str, Path], signing_key
) -> None:
    other = write_recording(tmp_path / "other.hrec", sql_session(4), signing_key, sql_header(session_id="s2"))
    out = tmp_path / "out.csv"
    result = _run(export_command, files["intact"], other, "--format", "csv", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {row["session_id"] for row in rows} == {"sess-sql-1", "s2"}
    assert not (tmp_path / "out.csv.partial").exists()


def test_export_evidence_to_a_pipe(files: dict[str, Path]) -> None:
    result = _run(export_command, files["intact"], files["unsealed"], "--format", "evidence")
    assert result.exit_code == 0
    with zipfile.ZipFile(io.BytesIO(result.stdout_bytes)) as bundle:
        assert "recordings/unsealed.hrec" in bundle.namelist()
    assert "evidence: 2 recordings" in result.stderr


def test_export_errors_are_one_line(tmp_path: Path, files: dict[str, Path]) -> None:
    junk = tmp_path / "junk.hrec"
    junk.write_bytes(b"not a recording at all")
    result = _run(export_command, junk, "--format", "jsonl")
    assert result.exit_code == 1
    assert result.stderr.strip() == "hoop-tui export: not a hoop recording (bad magic)"
    two = _run(export_command, files["intact"], files["intact"], "--format", "asciicast")
    assert two.exit_code == 2 and len(two.stderr.strip().splitlines()) == 1


def test_prune_lists_then_deletes_old_recordings(tmp_path: Path, signing_key) -> None:
    directory = tmp_path / "recs"
    (directory / "2020").mkdir(parents=True)
    old = write_recording(directory / "2020" / "old.hrec", sql_session(3), signing_key,
                          sql_header(started_at="2020-01-01T00:00:00Z"))  # fmt: skip
    recent = write_recording(directory / "new.hrec", sql_session(3), signing_key)
    stale_mtime = time.time() - 200 * 86400
    os.utime(old, (stale_mtime, stale_mtime))
    (directory / "notes.hrec").write_text("not a recording")

    dry = _run(recordings_group, "prune", directory, "--older-than", "90d", "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.splitlines()[0].startswith(f"would delete\t{old}\t")
    assert len(dry.stdout.splitlines()) == 1 and old.exists()
    assert "skipped" in dry.stderr and "notes.hrec" in dry.stderr

    done = _run(recordings_group, "prune", directory, "--older-than", "90d")
    assert done.exit_code == 0 and done.stdout.startswith(f"deleted\t{old}")
    assert not old.exists() and recent.exists()

    bad = _run(recordings_group, "prune", directory, "--older-than", "ninety days")
    assert bad.exit_code == 2 and "90d" in bad.stderr


def test_the_installed_cli_runs_verify_without_textual(files: dict[str, Path]) -> None:
    pytest.importorskip("hoop_tui.cli")
    code = (
        "import sys\n"
        "from hoop_tui.cli import main\n"
        "try:\n"
        "    main(['verify', sys.argv[1]])\n"
        "finally:\n"
        "    assert 'textual' not in sys.modules, 'verify imported textual'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(files["unsealed"])], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"{files['unsealed']}: unsealed, ")
