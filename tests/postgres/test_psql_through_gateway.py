"""Real psql through a real gateway to a real PostgreSQL: the client changes only host, port and password."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import RunningGateway
from tests.pg_fixture import UpstreamPostgres

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")


def psql(
    dsn: str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", dsn, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"psql failed ({result.returncode}): {result.stderr}")
    return result


def test_simple_and_multi_statement_queries(gateway: RunningGateway) -> None:
    assert psql(gateway.dsn(), "-c", "SELECT 40 + 2").stdout.strip() == "42"
    out = psql(gateway.dsn(), "-c", "SELECT 1 AS a; SELECT 'two' AS b; SELECT current_user").stdout.split()
    assert out == ["1", "two", "app"]  # the upstream login is the gateway's, not the client's claimed user


def test_transaction_rollback_and_commit_reach_the_database(
    gateway: RunningGateway, upstream: UpstreamPostgres
) -> None:
    upstream.execute(
        "DROP TABLE IF EXISTS tx_probe; CREATE TABLE tx_probe (id int); GRANT ALL ON tx_probe TO app"
    )
    script = (
        "BEGIN; INSERT INTO tx_probe VALUES (1); ROLLBACK; BEGIN; INSERT INTO tx_probe VALUES (2); COMMIT;"
    )
    psql(gateway.dsn(), "-c", script)
    assert upstream.execute("SELECT id FROM tx_probe ORDER BY id") == [(2,)]


def test_copy_from_stdin_and_to_stdout(gateway: RunningGateway, upstream: UpstreamPostgres) -> None:
    upstream.execute("DROP TABLE IF EXISTS copy_probe; CREATE TABLE copy_probe (id int, name text)")
    upstream.execute("GRANT ALL ON copy_probe TO app")
    rows = "".join(f"{i}\tname-{i}\n" for i in range(5000))
    psql(gateway.dsn(), "-c", "\\copy copy_probe FROM STDIN", stdin=rows)
    assert upstream.execute("SELECT count(*), sum(id) FROM copy_probe") == [(5000, sum(range(5000)))]
    out = psql(gateway.dsn(), "-c", "\\copy (SELECT id, name FROM copy_probe ORDER BY id) TO STDOUT").stdout
    assert out == rows


def test_large_result_of_100k_rows(gateway: RunningGateway) -> None:
    out = psql(gateway.dsn(), "-c", "SELECT g, md5(g::text) FROM generate_series(1, 100000) g").stdout
    lines = out.splitlines()
    assert len(lines) == 100000
    assert lines[-1].startswith("100000|")


def test_client_tls_with_sslmode_require_and_verify_ca(gateway: RunningGateway) -> None:
    assert psql(gateway.dsn(sslmode="require"), "-c", "SELECT 'over tls'").stdout.strip() == "over tls"
    cert = gateway.state_dir / "tls" / "gateway.crt"
    assert cert.exists(), "the gateway generated its self-signed certificate in the state dir"
    verified = psql(gateway.dsn(sslmode="verify-ca", sslrootcert=str(cert)), "-c", "SELECT 1")
    assert verified.stdout.strip() == "1"


@pytest.mark.parametrize("connection", ["appdb_md5", "appdb_clear"])
def test_upstream_md5_and_cleartext_logins(gateway: RunningGateway, connection: str) -> None:
    assert psql(gateway.dsn(connection=connection), "-c", "SELECT current_user").stdout.strip() in (
        "app_md5",
        "app_clear",
    )


def test_bad_token_is_refused_without_detail(gateway: RunningGateway) -> None:
    result = psql(gateway.dsn(token="not-a-token"), "-c", "SELECT 1", check=False)
    assert result.returncode != 0
    assert 'password authentication failed for user "ci-bot"' in result.stderr
    assert "token" not in result.stderr.lower().replace("password", "")


def test_token_of_wrong_group_gets_default_deny(gateway: RunningGateway) -> None:
    token = gateway.token(subject="intruder", groups=("marketing",))
    result = psql(gateway.dsn(token=token), "-c", "SELECT 1", check=False)
    assert result.returncode != 0
    assert 'no policy allows "intruder"' in result.stderr
    assert '"appdb"' in result.stderr


def test_unknown_connection_and_upstream_down(gateway: RunningGateway) -> None:
    unknown = psql(gateway.dsn(connection="nosuchdb"), "-c", "SELECT 1", check=False)
    assert unknown.returncode != 0
    assert 'connection "nosuchdb" is not configured' in unknown.stderr
    down = psql(gateway.dsn(connection="downdb"), "-c", "SELECT 1", check=False)
    assert down.returncode != 0
    assert 'upstream of connection "downdb" is unavailable' in down.stderr
    # ...and the gateway carries on serving everyone else.
    assert psql(gateway.dsn(), "-c", "SELECT 7").stdout.strip() == "7"
