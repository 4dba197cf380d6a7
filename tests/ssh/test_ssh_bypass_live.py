"""The bypass corpus against a live upstream: every line tries to run a denied program through the gateway,
and the proof is on the upstream host (the file it would delete is still there), not only the exit status.

The denied program is `rm`, aimed at one victim file per line, so a bypass would do no harm beyond that file.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.ssh.gateway_fixture import SSH_POLICY, SshGateway, start_ssh_gateway
from tests.ssh_targets import SshTarget, ssh_client, start_sshd

# Reviews time out fast here: a line the gateway holds instead of denying must still never run.
POLICY = SSH_POLICY.replace('review_timeout = "20s"', 'review_timeout = "1s"')


def _payload(victim: str) -> str:
    return base64.b64encode(f"rm -f {victim}\n".encode()).decode()


# `{v}` is the victim file's name (in the upstream's working directory); `{b64}` the base64 of `rm -f {v}`.
TEMPLATES = [
    "rm -f {v}",
    "r''m -f {v}",
    '"r"m -f {v}',
    "'rm' -f {v}",
    "\\rm -f {v}",
    "$'\\x72\\x6d' -f {v}",
    "$'\\162\\155' -f {v}",
    "/bin/rm -f {v}",
    "/usr/bin//rm -f {v}",
    "./../../../../../../bin/rm -f {v}",
    "env rm -f {v}",
    "env -i FOO=1 rm -f {v}",
    "nice -n 19 rm -f {v}",
    "timeout 5 rm -f {v}",
    "command rm -f {v}",
    "exec rm -f {v}",
    "nohup rm -f {v}",
    "setsid rm -f {v}",
    "echo {v} | xargs rm -f",
    "echo {v} | xargs -I{{}} rm -f {{}}",
    "find . -name {v} -exec rm -f {{}} \\;",
    "ls; rm -f {v}",
    "ls && rm -f {v}",
    "false || rm -f {v}",
    "ls | rm -f {v}",
    "ls\nrm -f {v}",
    "ls # harmless\nrm -f {v}",
    "(rm -f {v})",
    "{{ rm -f {v}; }}",
    "if true; then rm -f {v}; fi",
    "for i in 1; do rm -f {v}; done",
    "f() {{ rm -f {v}; }}; f",
    "ls $(rm -f {v})",
    "ls `rm -f {v}`",
    'echo "$(echo "$(rm -f {v})")"',
    "echo ${{X:-$(rm -f {v})}}",
    "cat <<EOF\n$(rm -f {v})\nEOF",
    "sh -c 'rm -f {v}'",
    "bash -c 'rm -f {v}'",
    "sh -c \"sh -c 'rm -f {v}'\"",
    "bash -lc 'ls; rm -f {v}'",
    "eval 'rm -f {v}'",
    "eval r''m -f {v}",
    "echo 'rm -f {v}' | sh",
    "printf 'rm -f {v}\\n' | bash",
    "bash <<< 'rm -f {v}'",
    "sh <<'EOF'\nrm -f {v}\nEOF",
    "echo {b64} | base64 -d | sh",
    "base64 -d <<< {b64} | bash",
    'eval "$(echo {b64} | base64 -d)"',
    "x=rm; $x -f {v}",
    "r? -f {v}",
    "[r]m -f {v}",
    "{{rm,ls}} -f {v}",
    "python3 -c 'import os; os.remove(\"{v}\")'",
    "perl -e 'unlink \"{v}\"'",
    "cat <(rm -f {v})",
    "ls > >(rm -f {v})",
    "trap 'rm -f {v}' EXIT",
    "echo $((1 + 2)); rm -f {v}",
]


def corpus() -> list[tuple[str, str]]:
    lines = []
    for index, template in enumerate(TEMPLATES):
        victim = f"victim-{index:02d}"
        lines.append((victim, template.format(v=victim, b64=_payload(victim))))
    return lines


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshTarget, SshGateway]]:
    with start_sshd(tmp_path_factory.mktemp("upstream")) as target:
        running = start_ssh_gateway(tmp_path_factory.mktemp("gateway"), target, policies=POLICY)
        try:
            yield target, running
        finally:
            running.stop()


def test_the_corpus_is_big_enough_and_every_line_is_distinct() -> None:
    lines = [line for _victim, line in corpus()]
    assert len(lines) >= 40
    assert len(set(lines)) == len(lines)


def test_no_denied_program_runs_on_the_upstream_host(
    live: tuple[SshTarget, SshGateway], tmp_path: Path
) -> None:
    target, running = live
    lines = corpus()
    for victim, _line in lines:
        (target.workdir / victim).write_text("must survive")
    token = running.token()

    def attempt(line: str):
        return ssh_client([line], token=token, port=running.port, user="web1", timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, [line for _victim, line in lines]))

    survivors = {victim for victim, _line in lines if (target.workdir / victim).exists()}
    ran = [line for (victim, line) in lines if victim not in survivors]
    assert not ran, f"denied program ran on the upstream for: {ran!r}"
    for (_victim, line), result in zip(lines, results, strict=True):
        assert result.returncode == 126, (line, result.returncode, result.stderr)
        assert result.stderr.startswith(b"hoop: "), (line, result.stderr)


def test_a_control_line_with_an_allowed_program_does_run(live: tuple[SshTarget, SshGateway]) -> None:
    """The corpus would pass vacuously if nothing ran at all: an allowed line does run on the upstream."""
    target, running = live
    (target.workdir / "control-file").write_text("x")
    result = ssh_client(["cat control-file && ls"], token=running.token(), port=running.port, user="web1")
    assert result.returncode == 0, result.stderr
    assert b"control-file" in result.stdout
