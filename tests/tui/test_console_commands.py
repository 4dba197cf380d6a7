"""The console commands fail with one clear line before any UI starts, and load textual only to run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hoop_tui.cli import main


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"HOOP_TOKEN": "", **(env or {})})
    return result.exit_code, result.output


@pytest.mark.parametrize("argv", [["attach", "unix:/nowhere.sock"], ["run", "--config", "{config}"]])
def test_no_operator_token_is_a_usage_error(tmp_path: Path, argv: list[str]) -> None:
    config = tmp_path / "hoop.toml"
    config.write_text("")
    code, output = invoke(*(arg.format(config=config) for arg in argv))
    assert code == 2
    assert output.strip() == "hoop-tui: no operator token: pass --token or set HOOP_TOKEN"


def test_run_with_a_broken_config_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "hoop.toml"
    config.write_text("[gateway\n")
    code, output = invoke("run", "--config", str(config), "--token", "secret-token-value")
    assert code == 2
    assert output.startswith("hoop-tui: ") and output.count("\n") == 1
    assert "secret-token-value" not in output


def test_replay_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    code, output = invoke("replay", str(tmp_path / "missing.hoop"))
    assert code == 2 and "does not exist" in output


@pytest.mark.parametrize("command", ["run", "attach", "replay"])
def test_console_commands_load_textual_only_when_they_run(command: str) -> None:
    probe = (
        "import sys\n"
        "from hoop_tui.cli import main\n"
        "try:\n"
        f"    main([{command!r}, '--help'], standalone_mode=False)\n"
        "finally:\n"
        "    print('TEXTUAL' if any(m.startswith('textual') for m in sys.modules) else 'CLEAN')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("CLEAN")


def test_replay_with_an_unknown_mask_entity_names_the_known_ones(tmp_path: Path) -> None:
    recording = tmp_path / "any.hoop"
    recording.write_bytes(b"")
    code, output = invoke("replay", str(recording), "--mask", "email,nonsense")
    assert code == 2
    assert output.startswith("hoop-tui: unknown masking entity 'nonsense'") and output.count("\n") == 1
