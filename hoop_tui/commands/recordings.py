"""The headless recording commands: ``verify``, ``export`` and ``recordings prune``.

stdout carries data only (report lines, exported files); diagnostics, the progress bar and errors go to
stderr. No textual import anywhere on this path.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from recordings.errors import RecordingError
from recordings.export import FORMATS
from recordings.keys import PUBLIC_KEY_NAME, fingerprint, load_public_key
from recordings.layout import MAGIC
from recordings.verify import TAMPERED, UNSEALED

EXIT_INTACT = 0
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_UNSEALED = 3
_ZIP_MAGIC = b"PK\x03\x04"
_PATHS = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fail(command: str, message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"hoop-tui {command}: {message}", err=True)
    raise SystemExit(code)


# -- verify --------------------------------------------------------------------------------------------------


def _key_from_config(config_path: Path) -> Path:
    try:
        from proxy.config import load_config  # lazy: only --config needs the gateway's configuration
    except ImportError as exc:
        _fail("verify", f"cannot read gateway configuration ({exc})")
    try:
        config = load_config(config_path)
    except Exception as exc:  # ConfigError and friends: report the one line they carry
        _fail("verify", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return Path(config.gateway.state_dir) / "keys" / PUBLIC_KEY_NAME


def _pinned_key(key_path: Path | None, config_path: Path | None) -> Ed25519PublicKey | None:
    if key_path is not None and config_path is not None:
        _fail("verify", "use --key or --config, not both")
    if config_path is not None:
        key_path = _key_from_config(config_path)
    if key_path is None:
        return None
    try:
        return load_public_key(key_path)
    except RecordingError as exc:
        _fail("verify", str(exc))


def _file_kind(path: Path) -> str:
    with path.open("rb") as stream:
        start = stream.read(len(MAGIC))
    return "evidence" if start.startswith(_ZIP_MAGIC) else "recording"


@click.command("verify")
@click.argument("paths", nargs=-1, required=True, type=_PATHS)
@click.option(
    "--key", "key_path", type=_PATHS, help="Pin the gateway's recording public key (PEM or OpenSSH line)."
)
@click.option(
    "--config",
    "config_path",
    type=_PATHS,
    help=f"Pin the key at <state_dir>/keys/{PUBLIC_KEY_NAME} of this gateway configuration.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file instead of a text line.")
@click.option("--deep", is_flag=True, help="Also decompress every chunk and check its events.")
def verify_command(
    paths: tuple[Path, ...], key_path: Path | None, config_path: Path | None, as_json: bool, deep: bool
) -> None:
    """Check recordings (or evidence bundles) for tampering.

    Exit status: 0 all intact, 1 any tampered, 3 some unsealed (cut short) but none tampered.
    """
    from recordings.export.evidence import verify_evidence
    from recordings.verify import verify

    key = _pinned_key(key_path, config_path)
    if key is not None:
        click.echo(f"checking against pinned key {fingerprint(key)}", err=True)
    statuses = []
    for path in paths:
        try:
            if _file_kind(path) == "evidence":
                report: Any = verify_evidence(path, key)
            else:
                report = verify(path, key, deep=deep)
        except OSError as exc:
            _fail("verify", f"{path}: {exc.strerror or exc}")
        statuses.append(report.status)
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        else:
            click.echo(f"{path}: {report.summary()}")
    if TAMPERED in statuses:
        raise SystemExit(EXIT_TAMPERED)
    if UNSEALED in statuses:
        raise SystemExit(EXIT_UNSEALED)


# -- export --------------------------------------------------------------------------------------------------


class _ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal and only once an export takes a while."""

    _DELAY = 0.5
    _INTERVAL = 0.1
    _WIDTH = 30

    def __init__(self, total: int, stream: IO[str]) -> None:
        self._total = max(total, 1)
        self._stream = stream
        self._enabled = stream.isatty()
        self._done = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    def advance(self, amount: int) -> None:
        self._done += amount
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._started < self._DELAY or now - self._last_draw < self._INTERVAL:
            return
        self._last_draw = now
        fraction = min(self._done / self._total, 1.0)
        filled = int(fraction * self._WIDTH)
        bar = "#" * filled + "." * (self._WIDTH - filled)
        self._stream.write(f"\rexporting [{bar}] {fraction:4.0%} {self._done / 1e6:8.1f} MB")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r" + " " * (self._WIDTH + 32) + "\r")
            self._stream.flush()


@contextmanager
def _text_output(output: Path | None) -> Iterator[IO[str]]:
    """A UTF-8 text stream to ``output`` (written to a temporary name, renamed on success) or stdout."""
    if output is None:
        sys.stdout.flush()
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="backslashreplace", newline="")
        try:
            yield stream
            stream.flush()
        finally:
            stream.detach()
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", errors="backslashreplace", newline="") as stream:
            yield stream
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _binary_output(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        sys.stdout.flush()
        stdout = sys.stdout.buffer
        if stdout.isatty():
            _fail("export", "an evidence bundle is a zip file: use -o FILE or redirect stdout")
        yield stdout
        stdout.flush()
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("wb") as stream:
            yield stream
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def _run_text_export(
    paths: tuple[Path, ...], fmt: str, output: Path | None, on_progress: Callable[[int], None]
) -> None:
    from recordings.export.asciicast import export_asciicast
    from recordings.export.csvfile import export_csv_rows, new_csv_writer
    from recordings.export.jsonl import export_jsonl
    from recordings.reader import RecordingReader

    with _text_output(output) as stream:
        csv_writer = new_csv_writer(stream) if fmt == "csv" else None
        for path in paths:
            with RecordingReader(path) as reader:
                if fmt == "jsonl":
                    export_jsonl(reader, stream, on_progress)
                elif fmt == "asciicast":
                    export_asciicast(reader, stream, on_progress)
                else:
                    export_csv_rows(reader, csv_writer, on_progress)


@click.command("export")
@click.argument("paths", nargs=-1, required=True, type=_PATHS)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to write.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout."
)
@click.option("--key", "key_path", type=_PATHS, help="evidence: verify recordings against this public key.")
def export_command(paths: tuple[Path, ...], fmt: str, output: Path | None, key_path: Path | None) -> None:
    """Export recordings as JSON Lines, asciicast v2, CSV, or an evidence bundle (zip)."""
    from recordings.export.evidence import PASSES, export_evidence

    if fmt == "asciicast" and len(paths) != 1:
        _fail("export", "asciicast holds one session: export one recording at a time")
    if key_path is not None and fmt != "evidence":
        _fail("export", "--key only applies to --format evidence")
    key = _pinned_key(key_path, None)
    passes = PASSES if fmt == "evidence" else 1
    progress = _ProgressBar(passes * sum(path.stat().st_size for path in paths), sys.stderr)
    try:
        if fmt == "evidence":
            with _binary_output(output) as stream:
                summary = export_evidence(list(paths), stream, public_key=key, on_progress=progress.advance)
            progress.close()
            tampered = [r.path for r in summary.recordings if r.status == TAMPERED]
            click.echo(
                f"evidence: {len(summary.recordings)} recordings, {summary.statements} statements, "
                f"{summary.approvals} approvals" + (f"; TAMPERED: {', '.join(tampered)}" if tampered else ""),
                err=True,
            )
        else:
            _run_text_export(paths, fmt, output, progress.advance)
            progress.close()
    except BrokenPipeError:
        progress.close()
        _silence_stdout()
    except (RecordingError, OSError) as exc:
        progress.close()
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail("export", message, code=1)


def _silence_stdout() -> None:
    # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


# -- recordings prune ----------------------------------------------------------------------------------------


@click.group("recordings")
def recordings_group() -> None:
    """Manage recording files."""


@recordings_group.command("prune")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--older-than", "older_than", required=True, help="Age such as 90d, 12h or 30m.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
def prune_command(directory: Path, older_than: str, dry_run: bool) -> None:
    """Delete recordings under DIRECTORY that are older than --older-than."""
    from recordings.retention import parse_age, prune

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        _fail("recordings prune", str(exc))
    try:
        result = prune(directory, age, dry_run=dry_run)
    except RecordingError as exc:
        _fail("recordings prune", str(exc))
    verb = "would delete" if dry_run else "deleted"
    failed = dict(result.failed)
    for item in result.expired:
        if item.path in failed:
            continue
        click.echo(f"{verb}\t{item.path}\t{item.started_at.isoformat(timespec='seconds')}\t{item.size}")
    for path, reason in result.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    for path, reason in result.failed:
        click.echo(f"could not delete {path}: {reason}", err=True)
    count = len(result.expired) - len(result.failed)
    click.echo(f"{verb} {count} recordings, {result.bytes_freed / 1e6:.1f} MB", err=True)
    if result.failed:
        raise SystemExit(1)
