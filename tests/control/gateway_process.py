"""A gateway run as `hoop-tui serve` in its own process on a shared PostgreSQL store (multi-gateway tests)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from proxy.identity.local_issuer import KEYS_DIR_NAME, PRIVATE_KEY_NAME, LocalIssuer
from tests.conftest import gateway_config_text
from tests.control.conftest import REPO_ROOT, REVIEW_POLICY, control_settings
from tests.pg_fixture import UpstreamPostgres
from tests.store.helpers import PostgresDatabase

_LISTENING = re.compile(r"postgres listener on (\S+):(\d+)")


def share_issuer(source_state: Path, target_state: Path) -> None:
    """Give another gateway the same local token issuer (as gateways behind one OIDC provider would share)."""
    LocalIssuer.load_or_create(source_state)
    keys = target_state / KEYS_DIR_NAME
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target_state, 0o700)
    shutil.copy2(source_state / KEYS_DIR_NAME / PRIVATE_KEY_NAME, keys / PRIVATE_KEY_NAME)


@dataclass
class GatewayProcess:
    directory: Path
    process: subprocess.Popen[bytes]
    port: int
    control: str
    log_path: Path

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    def token(self, subject: str, groups: tuple[str, ...]) -> str:
        issuer = LocalIssuer.load_or_create(self.state_dir)
        return issuer.mint(subject, list(groups), audience="hoop", ttl_seconds=600)

    def url(self, token: str) -> str:
        return f"postgresql://ci-bot:{token}@127.0.0.1:{self.port}/appdb"

    def dsn(self, token: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=appdb user=ci-bot password={token} sslmode=disable"

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def write_config(
    directory: Path,
    upstream: UpstreamPostgres,
    store: PostgresDatabase | None,
    gateway_id: str,
    *,
    listen: str = "127.0.0.1:0",
    extra: str = "",
) -> Path:
    """The gateway's config in `directory`; `store` None means the SQLite store in its state dir."""
    directory.mkdir(parents=True, exist_ok=True)
    control = f"unix:{directory}/control.sock"
    settings = f'store = "{store.url if store else "sqlite"}"\ngateway_id = "{gateway_id}"\n{extra}\n'
    extra_settings = settings + control_settings(control)
    text = gateway_config_text(directory, upstream, policies=REVIEW_POLICY, extra=extra_settings)
    config_path = directory / "hoop.toml"
    config_path.write_text(text.replace('postgres_listen = "127.0.0.1:0"', f'postgres_listen = "{listen}"'))
    return config_path


def start_gateway_process(
    directory: Path,
    upstream: UpstreamPostgres,
    store: PostgresDatabase | None,
    gateway_id: str,
    timeout: float = 30,
) -> GatewayProcess:
    """Start `hoop-tui serve` (config in `directory`) and wait until it listens."""
    config_path = directory / "hoop.toml"
    if not config_path.exists():
        write_config(directory, upstream, store, gateway_id)
    env = {
        **os.environ,
        "HOOP_TEST_APP_PASSWORD": upstream.roles["app"].password,
        "HOOP_TEST_APP_MD5_PASSWORD": upstream.roles["app_md5"].password,
        "HOOP_TEST_APP_CLEAR_PASSWORD": upstream.roles["app_clear"].password,
    }
    env.pop("HOOP_STORE_PASSWORD", None)
    if store is not None and store.password:
        env["HOOP_STORE_PASSWORD"] = store.password
    log_path = directory / f"gateway-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hoop_tui.cli", "serve", "--config", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = _LISTENING.search(text)
        if found:
            control = f"unix:{directory}/control.sock"
            return GatewayProcess(directory, process, int(found.group(2)), control, log_path)
        if process.poll() is not None:
            raise AssertionError(f"gateway {gateway_id} exited at start:\n{text}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"gateway {gateway_id} did not start:\n{log_path.read_text(errors='replace')}")
