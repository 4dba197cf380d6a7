"""DESIGN §2: proxy/ and recordings/ never import textual, recordings/ never imports proxy/, and the headless
commands (serve, token, export, verify, approvals, sessions) load no UI framework."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "proxy", "recordings"))))
"""


def loaded_after_importing(*modules: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in json.loads(result.stdout)}


@pytest.mark.parametrize(
    "module",
    ["proxy.gateway", "proxy.serve", "proxy.postgres.relay", "proxy.control.server", "proxy.store.factory"],
)
def test_proxy_never_imports_textual(module: str) -> None:
    assert "textual" not in loaded_after_importing(module)


def test_recordings_imports_neither_proxy_nor_textual() -> None:
    loaded = loaded_after_importing(
        "recordings.writer", "recordings.reader", "recordings.verify", "recordings.export.evidence"
    )
    assert loaded == {"recordings"}


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--help"],
        ["token", "mint", "--help"],
        ["export", "--help"],
        ["verify", "--help"],
        ["approvals", "list", "--help"],
        ["sessions", "list", "--help"],
    ],
)
def test_headless_commands_do_not_load_textual(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from hoop_tui.cli import main\n"
        "try:\n"
        f"    main({argv!r}, standalone_mode=False)\n"
        "finally:\n"
        "    print('TEXTUAL' if any(m.startswith('textual') for m in sys.modules) else 'CLEAN')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "CLEAN", result.stdout + result.stderr
