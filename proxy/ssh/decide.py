"""Policy decisions for SSH: an exec command line (each simple command and each kind it has), and channels."""

from __future__ import annotations

from typing import Protocol

from proxy.policy.engine import Decision
from proxy.ssh.commands import CommandAnalysis

# Session-level SSH kinds a policy names (DESIGN §6). x11 is ours: DESIGN denies X11 unless named.
SHELL = "shell"
SFTP = "sftp"
PORT_FORWARD = "port_forward"
AGENT_FORWARD = "agent_forward"
X11 = "x11"


class CommandPolicy(Protocol):
    def decide(self, kind: str, flags: frozenset[str] = ...) -> Decision: ...

    def decide_command(self, argv_list: list[tuple[str, ...]]) -> Decision: ...


_SEVERITY = {"allow": 0, "review": 1, "deny": 2}


def _stricter(current: Decision, candidate: Decision) -> Decision:
    return candidate if _SEVERITY[candidate.action] > _SEVERITY[current.action] else current


def decide_exec(policy: CommandPolicy, analysis: CommandAnalysis) -> Decision:
    """The strictest of: the `exec` kind itself, each simple command against the command lists, and each
    further kind the line has (`file_write` for a redirection, `opaque` for what could not be analysed).

    An opaque line is never allowed by its commands alone: the parts that were understood cannot vouch for
    the part that was not, so the `opaque` kind's own decision (review when no list names it) applies.
    """
    decision = policy.decide("exec")
    if decision.action == "deny":
        return decision
    if analysis.commands:
        decision = _stricter(decision, policy.decide_command(list(analysis.commands)))
    # An empty line (or only assignments) runs nothing the lists could judge: `exec` decides alone.
    for kind in sorted(analysis.kinds - {"exec"}):
        if decision.action == "deny":
            break
        decision = _stricter(decision, policy.decide(kind))
    return decision


def allowed_by_name(policy: CommandPolicy, kind: str) -> tuple[bool, Decision]:
    """Forwarding, X11 and subsystems: allowed only when a list allows them by name (review is a deny here:
    a tunnel or file transfer has no single statement an approver could judge)."""
    decision = policy.decide(kind)
    return decision.action == "allow", decision
