"""Roles from token groups, and the `admin_groups` / `auditor_groups` settings they come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, parse_config, starter_config_text
from proxy.control.errors import ControlError
from proxy.control.roles import ADMIN, ANY_ROLE, APPROVER, AUDITOR, require, roles_for

CONFIG = """
[gateway]
admin_groups = ["platform"]
auditor_groups = ["audit", "compliance"]

[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgresql://app@127.0.0.1/app"

[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
review = ["write"]
approvers = ["oncall", "dba"]
"""


def test_roles_follow_groups(tmp_path: Path) -> None:
    config = parse_config(CONFIG, tmp_path / "hoop.toml")
    assert roles_for(["oncall"], config) == {APPROVER}
    assert roles_for(["dba", "compliance"], config) == {APPROVER, AUDITOR}
    assert roles_for(["platform"], config) == {ADMIN, AUDITOR}
    assert roles_for(["ci-agents", "developers"], config) == frozenset()
    assert roles_for([], config) == frozenset()
    require(frozenset({AUDITOR}), ANY_ROLE, "listing")
    with pytest.raises(ControlError, match=r"^killing needs the admin role$"):
        require(frozenset({APPROVER, AUDITOR}), frozenset({ADMIN}), "killing")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('admin_groups = ["*"]', "hoop.toml:3: gateway.admin_groups[0]: '*' would give everyone this role"),
        (
            'auditor_groups = "audit"',
            'gateway.auditor_groups: expected an array of strings, e.g. auditor_groups = ["audit"]',
        ),
        ('admin_groups = ["a", "a"]', "gateway.admin_groups[1]: 'a' is listed twice"),
        ("admin_groups = [1]", "gateway.admin_groups[0]: expected a string, got an integer"),
    ],
)
def test_bad_role_settings_name_file_line_and_key(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f'[gateway]\nstate_dir = "s"\n{setting}\n', tmp_path / "hoop.toml")
    assert message in str(raised.value)


def test_defaults_and_the_starter_config(tmp_path: Path) -> None:
    config = parse_config('[gateway]\nstate_dir = "s"\n', tmp_path / "hoop.toml")
    assert config.gateway.admin_groups == () and config.gateway.auditor_groups == ()
    text = starter_config_text()
    assert "admin_groups = []" in text and "auditor_groups = []" in text
    starter = parse_config(text, tmp_path / "hoop.toml")
    assert starter.gateway.admin_groups == () and roles_for(["oncall"], starter) == {APPROVER}
