"""Valid configs load into typed settings: DESIGN §6 example, every key, defaults, paths, secrets at use."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from proxy.config import (
    Config,
    ConfigError,
    CredentialError,
    GatewaySettings,
    PostgresUpstream,
    SshUpstream,
    is_loopback_host,
    load_config,
    parse_config,
    split_host_port,
    starter_config_text,
)

# DESIGN.md §6, verbatim: the documented example must always load.
DESIGN_EXAMPLE = """\
[gateway]
state_dir = "./hoop-state"        # keys, local issuer, sqlite store
recordings_dir = "./recordings"
store = "sqlite"                  # or "postgresql://user@host/db" for several gateways
control = "unix:./hoop-state/control.sock"   # or "tcp://127.0.0.1:7443"
postgres_listen = "127.0.0.1:15432"
ssh_listen = "127.0.0.1:2222"

[identity]
issuer = "local"                  # or an https issuer URL with OIDC discovery
audience = "hoop"
groups_claim = "groups"

[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgresql://app@127.0.0.1:5432/app?sslmode=prefer"
password_env = "APPDB_PASSWORD"   # or password_file

[[connections]]
name = "web1"
type = "ssh"
upstream = "deploy@10.0.0.5:22"
key_file = "./keys/web1"          # the gateway's private key for the upstream host
known_hosts = "./keys/known_hosts"  # the upstream's host key is checked against this

[[policies]]
groups = ["ci-agents"]
connections = ["appdb"]
allow = ["read", "transaction", "session"]
review = ["write", "ddl"]
deny = ["drop", "truncate", "copy_program", "dangerous_function", "opaque"]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret"]
review_timeout = "5m"
approvers = ["oncall"]            # groups whose members may decide

[[policies]]
groups = ["ci-agents"]
connections = ["web1"]
allow = ["exec"]  # SSH kinds: exec, shell (pty), file_write, port_forward, agent_forward, sftp
allow_commands = ["ls", "cat", "grep", "systemctl status *"]
review_commands = ["systemctl restart *", "kill"]
deny_commands = ["rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget"]
mask = ["email", "secret"]
approvers = ["oncall"]
"""

# Every key the config knows, each set to something other than its default.
EVERY_KEY = """\
[gateway]
state_dir = "state"
recordings_dir = "/srv/hoop/recordings"
store = "postgresql://hoop@db.internal:5433/hoop?sslmode=require"
control = "tcp://127.0.0.1:7443"
postgres_listen = "0.0.0.0:6432"
ssh_listen = "[::1]:2022"
workers = 4
gateway_id = "gw-eu-1"
tls_cert = "tls/gw.crt"
tls_key = "tls/gw.key"
require_tls = true
max_message_size = "16MiB"
recording_durability = "batch"
strict = false

[identity]
audience = "hoop-prod"
groups_claim = "roles"
ca_file = "ca/corp.pem"
leeway = "10s"
expiry_grace = "2m"

[[identity.issuers]]
issuer = "local"

[[identity.issuers]]
issuer = "https://login.example.com/realms/ops"
audience = "gateway"
groups_claim = "groups"
ca_file = "ca/okta.pem"

[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgres://app%40corp@[2001:db8::5]/app%2Fmain?sslmode=verify-full&sslrootcert=ca/pg.pem&application_name=hoop&sslcert=c.pem"
password_file = "secrets/appdb"

[[connections]]
name = "web1"
type = "ssh"
upstream = "ssh://deploy@web1.internal"
key_file = "~/keys/web1"
known_hosts = "keys/known_hosts"

[[policies]]
groups = ["dba", "ci-agents"]
connections = ["*"]
allow = ["read", "exec", "write"]
review = ["ddl", "shell", "sftp"]
deny = [
  "drop",
  "write:no_where",
  "file_write",
]
mask = ["email", "credit_card", "custom:order_ref"]
mask_columns = ["*.email", "users.ssn"]
mask_strategies = { email = "hash", credit_card = "partial:4" }
mask_rules = { order_ref = "ORD-[0-9]{8}" }
review_timeout = "1h30m"
approvers = ["oncall", "dba-leads"]
allow_commands = ["ls", "systemctl   status *"]
review_commands = ["kill"]
deny_commands = ["rm"]
"""


def load_text(tmp_path: Path, text: str, name: str = "hoop.toml") -> Config:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_design_example_loads(tmp_path: Path) -> None:
    config = load_text(tmp_path, DESIGN_EXAMPLE)
    assert config.path == tmp_path / "hoop.toml"
    assert config.gateway.state_dir == tmp_path / "hoop-state"
    assert config.gateway.control == f"unix:{tmp_path / 'hoop-state' / 'control.sock'}"
    assert [issuer.issuer for issuer in config.identity.issuers] == ["local"]
    appdb = config.connections["appdb"]
    assert appdb.upstream == PostgresUpstream("127.0.0.1", 5432, "app", "app", "prefer")
    assert appdb.password_env == "APPDB_PASSWORD"
    web1 = config.connections["web1"]
    assert web1.upstream == SshUpstream("10.0.0.5", 22, "deploy")
    assert web1.key_file == tmp_path / "keys" / "web1"
    assert web1.known_hosts == tmp_path / "keys" / "known_hosts"
    first, second = config.policies
    assert first.deny == {"drop", "truncate", "copy_program", "dangerous_function", "opaque"}
    assert first.review_timeout_seconds == 300.0
    assert first.line == 27
    assert second.deny_commands == ("rm", "shutdown", "reboot", "dd", "mkfs*", "curl", "wget")
    assert second.review_timeout_seconds == 300.0  # the default when not written
    assert second.line == 37


def test_every_key_parses(tmp_path: Path) -> None:
    config = load_text(tmp_path, EVERY_KEY)
    gateway = config.gateway
    assert gateway == GatewaySettings(
        state_dir=tmp_path / "state",
        recordings_dir=Path("/srv/hoop/recordings"),
        store="postgresql://hoop@db.internal:5433/hoop?sslmode=require",
        control="tcp://127.0.0.1:7443",
        postgres_listen="0.0.0.0:6432",
        ssh_listen="[::1]:2022",
        workers=4,
        gateway_id="gw-eu-1",
        tls_cert=tmp_path / "tls" / "gw.crt",
        tls_key=tmp_path / "tls" / "gw.key",
        require_tls=True,
        max_message_size=16 * 1024 * 1024,
        recording_durability="batch",
        strict=False,
    )
    identity = config.identity
    assert (identity.audience, identity.groups_claim) == ("hoop-prod", "roles")
    assert (identity.leeway_seconds, identity.expiry_grace_seconds) == (10.0, 120.0)
    local, remote = identity.issuers
    # Issuers inherit [identity] defaults unless they set their own.
    assert (local.issuer, local.audience, local.groups_claim) == ("local", "hoop-prod", "roles")
    assert local.ca_file == tmp_path / "ca" / "corp.pem"
    assert (remote.audience, remote.groups_claim) == ("gateway", "groups")
    assert remote.ca_file == tmp_path / "ca" / "okta.pem"

    appdb = config.connections["appdb"]
    assert isinstance(appdb.upstream, PostgresUpstream)
    assert appdb.upstream.host == "2001:db8::5"
    assert appdb.upstream.port == 5432
    assert appdb.upstream.user == "app@corp"
    assert appdb.upstream.database == "app/main"
    assert appdb.upstream.sslmode == "verify-full"
    assert appdb.upstream.sslrootcert == tmp_path / "ca" / "pg.pem"
    assert dict(appdb.upstream.options) == {"application_name": "hoop", "sslcert": str(tmp_path / "c.pem")}
    assert appdb.password_file == tmp_path / "secrets" / "appdb"
    web1 = config.connections["web1"]
    assert web1.upstream == SshUpstream("web1.internal", 22, "deploy")
    assert web1.key_file == Path.home() / "keys" / "web1"

    (policy,) = config.policies
    assert policy.groups == ("dba", "ci-agents")
    assert policy.connections == ("*",)
    assert policy.allow == {"read", "exec", "write"}
    assert policy.review == {"ddl", "shell", "sftp"}
    assert policy.deny == {"drop", "write:no_where", "file_write"}
    assert policy.mask == ("email", "credit_card", "custom:order_ref")
    assert policy.mask_columns == ("*.email", "users.ssn")
    assert dict(policy.mask_strategies) == {"email": "hash", "credit_card": "partial:4"}
    assert dict(policy.mask_rules) == {"order_ref": "ORD-[0-9]{8}"}
    assert policy.review_timeout_seconds == 5400.0
    assert policy.approvers == ("oncall", "dba-leads")
    assert policy.allow_commands == ("ls", "systemctl status *")  # whitespace runs collapse
    assert policy.review_commands == ("kill",)
    assert policy.deny_commands == ("rm",)


def test_empty_config_uses_documented_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "")
    gateway = config.gateway
    assert gateway.state_dir == tmp_path / "hoop-state"
    assert gateway.recordings_dir == tmp_path / "recordings"
    assert gateway.store == "sqlite"
    assert gateway.control == f"unix:{tmp_path / 'hoop-state' / 'control.sock'}"
    assert gateway.postgres_listen == "127.0.0.1:15432"
    assert gateway.ssh_listen == "127.0.0.1:2222"
    assert gateway.workers == 1
    assert gateway.gateway_id == socket.gethostname()
    assert (gateway.tls_cert, gateway.tls_key, gateway.require_tls) == (None, None, None)
    assert gateway.max_message_size == 64 * 1024 * 1024
    assert (gateway.recording_durability, gateway.strict) == ("chunk", True)
    assert [issuer.issuer for issuer in config.identity.issuers] == ["local"]
    assert (config.identity.leeway_seconds, config.identity.expiry_grace_seconds) == (30.0, 0.0)
    assert dict(config.connections) == {}
    assert config.policies == ()


@pytest.mark.parametrize("value", ['""', '"off"'])
def test_listeners_can_be_disabled(tmp_path: Path, value: str) -> None:
    config = load_text(tmp_path, f"[gateway]\npostgres_listen = {value}\nssh_listen = {value}\n")
    assert (config.gateway.postgres_listen, config.gateway.ssh_listen) == (None, None)


def test_relative_paths_resolve_against_the_config_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "etc" / "hoop"
    config_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = '[gateway]\nstate_dir = "../state"\ncontrol = "unix:run/ctl.sock"\n'
    config = load_text(config_dir, text)
    assert config.gateway.state_dir == tmp_path / "etc" / "state"
    assert config.gateway.recordings_dir == config_dir / "recordings"
    assert config.gateway.control == f"unix:{config_dir / 'run' / 'ctl.sock'}"
    # A relative config path given on the command line anchors at its own directory too.
    monkeypatch.chdir(tmp_path)
    relative = load_config(Path("etc/hoop/hoop.toml"))
    assert relative.gateway.state_dir == tmp_path / "etc" / "state"


def test_issuer_may_be_a_list(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[identity]\nissuer = ["local", "http://127.0.0.1:8080/realm"]\n')
    assert [issuer.issuer for issuer in config.identity.issuers] == ["local", "http://127.0.0.1:8080/realm"]


def test_max_message_size_accepts_integers(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[gateway]\nmax_message_size = 1048576\n")
    assert config.gateway.max_message_size == 1024 * 1024


def test_unix_socket_upstream(tmp_path: Path) -> None:
    text = (
        '[[connections]]\nname = "local"\ntype = "postgres"\n'
        'upstream = "postgresql://postgres@/postgres?host=/run/postgresql&port=5433"\n'
    )
    with pytest.raises(ConfigError):  # port belongs in the URL, even for Unix sockets
        load_text(tmp_path, text)
    fixed = text.replace("@/postgres?host=/run/postgresql&port=5433", "@:5433/postgres?host=/run/postgresql")
    upstream = load_text(tmp_path, fixed).connections["local"].upstream
    assert upstream == PostgresUpstream("/run/postgresql", 5433, "postgres", "postgres", "prefer")


def test_an_empty_password_in_the_url_is_no_secret(tmp_path: Path) -> None:
    text = '[[connections]]\nname = "x"\ntype = "postgres"\nupstream = "postgresql://app:@db/app"\n'
    upstream = load_text(tmp_path, text).connections["x"].upstream
    assert isinstance(upstream, PostgresUpstream)
    assert upstream.user == "app"


def test_requires_tls_follows_listener_address_unless_forced(tmp_path: Path) -> None:
    gateway = load_text(tmp_path, "").gateway
    assert gateway.requires_tls("127.0.0.1:15432") is False
    assert gateway.requires_tls("[::1]:15432") is False
    assert gateway.requires_tls("localhost:15432") is False
    assert gateway.requires_tls("0.0.0.0:15432") is True
    assert gateway.requires_tls("10.1.2.3:15432") is True
    forced = load_text(tmp_path, "[gateway]\nrequire_tls = true\n").gateway
    assert forced.requires_tls("127.0.0.1:15432") is True


def test_split_host_port_and_loopback() -> None:
    assert split_host_port("127.0.0.1:15432") == ("127.0.0.1", 15432)
    assert split_host_port("[::1]:0") == ("::1", 0)
    assert split_host_port("gw.example.com:2222") == ("gw.example.com", 2222)
    for bad in ("15432", ":15432", "::1:5432", "host:port", "[::1]5432", "h:70000", "bad_host!:1"):
        with pytest.raises(ValueError):
            split_host_port(bad)
    assert is_loopback_host("127.8.0.1") and is_loopback_host("LOCALHOST")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("example.com")


def test_starter_config_is_valid_and_commented(tmp_path: Path) -> None:
    text = starter_config_text()
    assert text.count("#") > 20
    config = load_text(tmp_path, text)
    assert [issuer.issuer for issuer in config.identity.issuers] == ["local"]
    assert [c.type for c in config.connections.values()] == ["postgres"]
    (policy,) = config.policies
    assert {"read", "transaction", "session"} <= policy.allow
    assert {"drop", "opaque"} <= policy.deny
    assert policy.approvers == ("oncall",)
    assert config.gateway.control == f"unix:{tmp_path / 'hoop-state' / 'control.sock'}"


def test_starter_config_with_an_awkward_state_dir(tmp_path: Path) -> None:
    config = load_text(tmp_path, starter_config_text('state "dir"\\x'))
    assert config.gateway.state_dir == tmp_path / 'state "dir"\\x'


def test_parse_config_uses_the_given_path_for_messages_and_anchoring(tmp_path: Path) -> None:
    config = parse_config('[gateway]\nstate_dir = "s"\n', tmp_path / "virtual.toml")
    assert config.gateway.state_dir == tmp_path / "s"
    assert config.path == tmp_path / "virtual.toml"


class TestReadPassword:
    def make(self, tmp_path: Path, source: str) -> Config:
        text = f'[[connections]]\nname = "appdb"\ntype = "postgres"\nupstream = "postgresql://app@db/app"\n{source}\n'
        return load_text(tmp_path, text)

    def test_reads_the_environment_at_call_time(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connection = self.make(tmp_path, 'password_env = "HOOP_TEST_APPDB_PW"').connections["appdb"]
        monkeypatch.setenv("HOOP_TEST_APPDB_PW", "first-secret")
        assert connection.read_password() == "first-secret"
        monkeypatch.setenv("HOOP_TEST_APPDB_PW", "rotated-secret")
        assert connection.read_password() == "rotated-secret"

    def test_missing_env_names_the_variable_not_a_value(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        connection = self.make(tmp_path, 'password_env = "HOOP_TEST_APPDB_PW"').connections["appdb"]
        monkeypatch.delenv("HOOP_TEST_APPDB_PW", raising=False)
        with pytest.raises(CredentialError) as caught:
            connection.read_password()
        assert str(caught.value) == (
            f"{tmp_path / 'hoop.toml'}:1: connections.appdb.password_env: environment variable "
            "HOOP_TEST_APPDB_PW is not set; export it with the upstream password"
        )
        monkeypatch.setenv("HOOP_TEST_APPDB_PW", "")
        with pytest.raises(CredentialError, match="is empty"):
            connection.read_password()

    def test_reads_the_file_at_call_time_without_its_newline(self, tmp_path: Path) -> None:
        connection = self.make(tmp_path, 'password_file = "appdb.pw"').connections["appdb"]
        secret_file = tmp_path / "appdb.pw"
        secret_file.write_text("s3cret value\n")
        assert connection.read_password() == "s3cret value"
        secret_file.write_text("rotated")
        assert connection.read_password() == "rotated"

    def test_missing_or_empty_file_names_the_file_not_a_value(self, tmp_path: Path) -> None:
        connection = self.make(tmp_path, 'password_file = "appdb.pw"').connections["appdb"]
        with pytest.raises(CredentialError) as caught:
            connection.read_password()
        assert "connections.appdb.password_file: cannot read password file" in str(caught.value)
        assert str(tmp_path / "appdb.pw") in str(caught.value)
        (tmp_path / "appdb.pw").write_text("\n")
        with pytest.raises(CredentialError, match="is empty"):
            connection.read_password()
        (tmp_path / "appdb.pw").write_bytes(b"\xff\xfe secret-ish")
        with pytest.raises(CredentialError) as caught:
            connection.read_password()
        assert "secret-ish" not in str(caught.value)

    def test_no_password_configured_is_none(self, tmp_path: Path) -> None:
        assert self.make(tmp_path, "").connections["appdb"].read_password() is None

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
    def test_unreadable_file(self, tmp_path: Path) -> None:
        connection = self.make(tmp_path, 'password_file = "appdb.pw"').connections["appdb"]
        secret_file = tmp_path / "appdb.pw"
        secret_file.write_text("hidden")
        secret_file.chmod(0)
        with pytest.raises(CredentialError, match="Permission denied"):
            connection.read_password()
