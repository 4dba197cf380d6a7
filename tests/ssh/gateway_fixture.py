"""A real gateway whose SSH listener fronts a test's upstream SSH host (no PostgreSQL needed)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import mint_token
from tests.ssh_targets import SshTarget

# The DESIGN §6 example, with the lists the tests exercise; "oncall" approves.
SSH_POLICY = """
[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]
allow_commands = [
    "ls", "cat", "grep", "echo", "true", "printf", "head", "wc", "sleep", "stty", "sh", "bash", "tr", "exit",
]
review_commands = ["touch", "systemctl restart *"]
deny_commands = ["rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget", "python3", "perl"]
deny = ["opaque"]
mask = ["email", "secret", "us_ssn", "credit_card"]
review_timeout = "20s"
approvers = ["oncall"]
"""


@dataclass
class SshGateway:
    thread: object
    host: str
    port: int
    state_dir: Path
    recordings_dir: Path

    @property
    def gateway(self):
        return self.thread.gateway  # type: ignore[attr-defined]

    def token(
        self, subject: str = "ci-bot", groups: tuple[str, ...] = ("ci-agents",), ttl: float = 900
    ) -> str:
        return mint_token(self.state_dir, subject, groups, ttl)

    def stop(self) -> None:
        self.thread.stop()  # type: ignore[attr-defined]


def ssh_gateway_config(
    tmp: Path,
    target: SshTarget,
    policies: str = SSH_POLICY,
    extra: str = "",
    *,
    listen: str = "127.0.0.1:0",
    durability: str = "none",
) -> str:
    """A gateway config with one ssh connection, "web1", to `target` (also what bench/ssh_bench.py runs)."""
    return textwrap.dedent(
        f"""
        [gateway]
        state_dir = "{tmp}/state"
        recordings_dir = "{tmp}/recordings"
        postgres_listen = "off"
        ssh_listen = "{listen}"
        recording_durability = "{durability}"
        {extra}

        [identity]
        issuer = "local"

        [[connections]]
        name = "web1"
        type = "ssh"
        upstream = "{target.upstream}"
        key_file = "{target.key_file}"
        known_hosts = "{target.known_hosts}"
        """
    ) + textwrap.dedent(policies)


def start_ssh_gateway(
    tmp: Path, target: SshTarget, policies: str = SSH_POLICY, extra: str = ""
) -> SshGateway:
    from proxy.config import load_config
    from proxy.gateway_thread import GatewayThread

    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "hoop.toml"
    path.write_text(ssh_gateway_config(tmp, target, policies, extra))
    config = load_config(path)
    thread = GatewayThread(config)
    gateway = thread.start()
    assert gateway.ssh_address is not None
    host, port = gateway.ssh_address
    return SshGateway(thread, host, port, config.gateway.state_dir, config.gateway.recordings_dir)
