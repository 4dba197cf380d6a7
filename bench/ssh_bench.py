"""One-command SSH throughput benchmark: `cat` of a 100 MB file, direct ssh vs through the gateway.

Run from the repository root:  python bench/ssh_bench.py [--size-mb 100] [--repeat 3] [--json]

The upstream is Debian's OpenSSH server on loopback (the asyncssh target when sshd is absent); the client is
the real OpenSSH `ssh`. The gateway runs as `hoop-tui serve` (uvloop when installed) with recording on, once
with masking on (email, secret, us_ssn, credit_card) and once with masking off. The file is log-like text
where a third of the lines carry an email address.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from a checkout

from bench._cluster import ManagedProcess, tail, wait_for_port  # noqa: E402
from hoop_tui.embedded_postgres import free_port  # noqa: E402
from tests.ssh.gateway_fixture import ssh_gateway_config  # noqa: E402
from tests.ssh_targets import (  # noqa: E402
    SshTarget,
    openssh_key_login,
    ssh_command_line,
    ssh_environment,
    start_sshd,
)

TARGET_VS_DIRECT = 0.5  # issue #8
PROBE = "probe.person@example.com"
_READY = re.compile(r"ssh listener on ([0-9.]+):(\d+)")


def write_log_file(path: Path, size_mb: int) -> int:
    """Log lines, a third with an email address; returns how many lines carry the probe address."""
    rng = random.Random(8)
    target = size_mb * 1024 * 1024
    written = 0
    probes = 0
    with path.open("w") as out:
        while written < target:
            lines = []
            for _ in range(1000):
                ts = f"2026-11-28T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
                request = f"GET /api/v1/orders/{rng.randrange(10**9)} 200 {rng.randrange(5000)}ms"
                if rng.random() < 1 / 3:
                    lines.append(f"{ts} INFO user {PROBE} {request}\n")
                    probes += 1
                else:
                    lines.append(f"{ts} INFO anonymous {request} trace={rng.randrange(16**12):012x}\n")
            block = "".join(lines)
            out.write(block)
            written += len(block)
    return probes


BENCH_POLICY = """
[[policies]]
groups = ["bench"]
connections = ["web1"]
allow = ["exec"]
allow_commands = ["cat"]
mask = MASK
"""


def gateway_config(tmp: Path, target: SshTarget, port: int, masking: bool, durability: str = "chunk") -> str:
    mask = '["email", "secret", "us_ssn", "credit_card"]' if masking else "[]"
    policy = BENCH_POLICY.replace("MASK", mask)
    return ssh_gateway_config(tmp, target, policy, listen=f"127.0.0.1:{port}", durability=durability)


def start_gateway(
    tmp: Path, target: SshTarget, masking: bool, durability: str
) -> tuple[ManagedProcess, int, str]:
    tmp.mkdir(parents=True)
    config = tmp / "hoop.toml"
    port = free_port("127.0.0.1")
    config.write_text(gateway_config(tmp, target, port, masking, durability))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cli = [sys.executable, "-m", "hoop_tui.cli"]
    minted = subprocess.run(
        [*cli, "token", "mint", "--config", str(config), "--subject", "bench-agent", "--groups", "bench"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60, check=True,
    )  # fmt: skip
    log = tmp / "gateway.log"
    process = ManagedProcess([*cli, "serve", "--config", str(config)], log_path=log, env=env, cwd=REPO_ROOT)
    if not wait_for_port("127.0.0.1", port, process.process, timeout=60):
        process.stop()
        raise SystemExit(f"the gateway did not start:\n{tail(log)}")
    return process, port, minted.stdout.strip()


def timed(argv: list[str], env: dict[str, str], out: Path) -> float:
    started = time.perf_counter()
    with out.open("wb") as sink:
        result = subprocess.run(argv, stdout=sink, stderr=subprocess.PIPE, env=env, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--durability", default="chunk", choices=("chunk", "batch", "none"), help="recording_durability"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hoop-ssh-bench-") as root_name:
        root = Path(root_name)
        with start_sshd(root / "upstream") as target:
            data = target.workdir / "big.log"
            probes = write_log_file(data, args.size_mb)
            size = data.stat().st_size
            out = root / "out"
            results: dict[str, Any] = {"bytes": size, "upstream": target.kind}

            direct = openssh_key_login(target, [f"cat {data}"])
            results["direct_s"] = min(timed(direct, dict(os.environ), out) for _ in range(args.repeat))
            assert out.stat().st_size == size, "direct ssh did not deliver the whole file"

            for masking in (True, False):
                label = "gateway_masked" if masking else "gateway_unmasked"
                process, port, token = start_gateway(root / label, target, masking, args.durability)
                try:
                    argv = ssh_command_line([f"cat {data}"], port=port, user="web1")
                    env = ssh_environment(token)
                    results[f"{label}_s"] = min(timed(argv, env, out) for _ in range(args.repeat))
                    produced = out.read_bytes()
                    if masking:
                        assert PROBE.encode() not in produced, "a planted address came through unmasked"
                        assert produced.count(b"[EMAIL]") == probes, "masked output lost or gained lines"
                    else:
                        assert len(produced) == size, "the gateway did not deliver the whole file"
                finally:
                    process.stop()

    mb = size / 1e6
    rows = [("direct ssh", results["direct_s"])]
    rows += [("gateway, masking on", results["gateway_masked_s"])]
    rows += [("gateway, masking off", results["gateway_unmasked_s"])]
    if args.json:
        results["ratios"] = {name: results["direct_s"] / seconds for name, seconds in rows}
        print(json.dumps(results, indent=2))
        return 0
    print(f"cat of a {mb:.0f} MB log file (1/3 of lines with an email), best of {args.repeat}; upstream: "
          f"{results['upstream']}")  # fmt: skip
    print(f"{'path':<24}{'seconds':>10}{'MB/s':>10}{'vs direct':>12}")
    for name, seconds in rows:
        print(f"{name:<24}{seconds:>10.2f}{mb / seconds:>10.1f}{results['direct_s'] / seconds:>11.2f}x")
    for label, key in (("masking off", "gateway_unmasked_s"), ("masking on", "gateway_masked_s")):
        ratio = results["direct_s"] / results[key]
        verdict = "met" if ratio >= TARGET_VS_DIRECT else "MISSED"
        print(f"target (issue #8): gateway >= {TARGET_VS_DIRECT}x direct, {label}: {ratio:.2f}x {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
