"""`hoop-tui approvals` end to end: a psql agent held by a real gateway, released or refused via the CLI."""

from __future__ import annotations

import shutil

import pytest

from proxy.postgres.messages import NoticeResponse, Query
from tests.conftest import RunningGateway
from tests.control.conftest import cli, cli_json, control_address, pending_via_cli, start_psql
from tests.pg_fixture import UpstreamPostgres
from tests.postgres.rawclient import RawClient

needs_psql = pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")
CONTRACT_KEYS = {"id", "state", "requester", "connection", "statement", "created_at", "expires_at"}


@needs_psql
def test_held_statement_is_listed_then_approved_and_completes(
    controlled: RunningGateway, seeded: UpstreamPostgres
) -> None:
    address = control_address(controlled)
    oncall = controlled.token(subject="alice", groups=("oncall",))
    psql = start_psql(controlled, "INSERT INTO victims VALUES (10, 'approved') RETURNING id")
    (request,) = pending_via_cli(address, oncall)
    assert set(request) >= CONTRACT_KEYS
    assert request["state"] == "pending" and request["requester"] == "ci-bot"
    assert request["connection"] == "appdb"
    assert request["statement"] == "INSERT INTO victims VALUES (10, 'approved') RETURNING id"
    assert request["created_at"] < request["expires_at"]
    table = cli("approvals", "list", "--control", address, token=oncall)
    assert table.returncode == 0 and request["id"] in table.stdout and "STATEMENT" in table.stdout
    assert psql.poll() is None, "the agent waits while its statement is held"

    approved = cli("approvals", "approve", request["id"], "--control", address, token=oncall)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith(f"{request['id']} approved")
    out, err = psql.communicate(timeout=30)
    assert psql.returncode == 0, err
    assert out.split() == ["10", "INSERT", "0", "1"]
    assert seeded.execute("SELECT count(*) FROM victims WHERE id = 10") == [(1,)]
    (decided,) = cli_json("approvals", "list", "--state", "approved", "--control", address, token=oncall)
    assert decided["id"] == request["id"] and decided["decider"] == "alice"
    assert cli_json("approvals", "list", "--control", address, token=oncall) == []


@needs_psql
def test_deny_with_reason_reaches_the_agent_and_nothing_runs(
    controlled: RunningGateway, seeded: UpstreamPostgres
) -> None:
    address = control_address(controlled)
    oncall = controlled.token(subject="alice", groups=("oncall",))
    psql = start_psql(controlled, "UPDATE victims SET name = 'mallory' WHERE id = 1")
    (request,) = pending_via_cli(address, oncall)
    missing_reason = cli("approvals", "deny", request["id"], "--control", address, token=oncall)
    assert missing_reason.returncode == 2 and "--reason" in missing_reason.stderr
    denied = cli(
        "approvals", "deny", request["id"], "--reason", "not during the freeze", "--config",
        str(controlled.config_path), token=oncall,
    )  # fmt: skip
    assert denied.returncode == 0, denied.stderr
    _, err = psql.communicate(timeout=30)
    assert psql.returncode != 0
    assert f"hoop: statement denied by alice (request {request['id']}): not during the freeze" in err
    assert seeded.execute("SELECT name FROM victims WHERE id = 1") == [("alice",)]
    again = cli("approvals", "approve", request["id"], "--control", address, token=oncall)
    assert again.returncode == 1
    assert again.stderr.strip() == f"hoop-tui: request {request['id']} is already denied"


def test_self_approval_and_non_approvers_are_refused(
    controlled: RunningGateway, seeded: UpstreamPostgres
) -> None:
    address = control_address(controlled)
    agent = RawClient(controlled.host, controlled.port)
    try:
        # The agent's own token also makes it an approver: it still may not decide its own request.
        agent.login("appdb", controlled.token(subject="ci-bot", groups=("ci-agents", "oncall")))
        agent.send(Query("UPDATE victims SET name = 'x' WHERE id = 2").encode())
        notice = agent.read_message()
        assert isinstance(notice, NoticeResponse) and "held for review" in notice.message
        oncall = controlled.token(subject="alice", groups=("oncall",))
        (request,) = pending_via_cli(address, oncall)
        refusals = {
            "ci-bot": (("oncall",), "you cannot decide your own request"),
            "root": (("admins",), "only members of oncall may decide"),
            "audrey": (("auditors",), "only members of oncall may decide"),
        }
        for subject, (groups, message) in refusals.items():
            token = controlled.token(subject=subject, groups=groups)
            result = cli("approvals", "approve", request["id"], "--control", address, token=token)
            assert result.returncode == 1, subject
            assert message in result.stderr and result.stdout == ""
            assert len(result.stderr.strip().splitlines()) == 1
        (still,) = cli_json("approvals", "list", "--control", address, token=oncall)
        assert still["id"] == request["id"] and still["state"] == "pending"
    finally:
        agent.close()
    assert seeded.execute("SELECT name FROM victims WHERE id = 2") == [("bob",)]


def test_tokens_without_a_role_or_valid_signature_cannot_use_the_control_api(
    controlled: RunningGateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    address = control_address(controlled)
    developer = controlled.token(subject="dev", groups=("developers", "ci-agents"))
    result = cli("approvals", "list", "--control", address, token=developer)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "hoop-tui: this token's groups hold no control role (approver, auditor or admin)"
    )
    for bad in ("not-a-token", controlled.token(subject="x", groups=("oncall",))[:-4] + "AAAA"):
        result = cli("sessions", "list", "--control", address, token=bad)
        assert result.returncode == 1 and result.stderr.strip() == "hoop-tui: invalid or expired token"
    # A token from another gateway's local issuer is a different issuer.
    from proxy.identity.local_issuer import LocalIssuer

    stranger = LocalIssuer.load_or_create(tmp_path_factory.mktemp("other")).mint(
        "alice", ["oncall"], audience="hoop", ttl_seconds=60
    )
    result = cli("approvals", "list", "--control", address, token=stranger)
    assert result.returncode == 1 and "invalid or expired token" in result.stderr
    no_token = cli("approvals", "list", "--control", address)
    assert no_token.returncode == 2 and "HOOP_TOKEN" in no_token.stderr
    no_address = cli("approvals", "list", token=developer)
    assert no_address.returncode == 2 and "--control" in no_address.stderr
