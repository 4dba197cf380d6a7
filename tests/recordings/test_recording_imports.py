"""The recording package stays below the proxy and the UI: importing it never pulls in either."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "recordings.writer",
    "recordings.reader",
    "recordings.verify",
    "recordings.retention",
    "recordings.keys",
    "recordings.export.jsonl",
    "recordings.export.asciicast",
    "recordings.export.csvfile",
    "recordings.export.evidence",
]


def _loaded_after_importing(*modules: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_recordings_imports_neither_proxy_nor_textual() -> None:
    loaded = _loaded_after_importing(*MODULES)
    assert not {name for name in loaded if name.split(".")[0] in {"proxy", "textual", "hoop_tui"}}


def test_the_headless_commands_do_not_import_textual() -> None:
    loaded = _loaded_after_importing("hoop_tui.commands.recordings")
    assert not {name for name in loaded if name.split(".")[0] == "textual"}
