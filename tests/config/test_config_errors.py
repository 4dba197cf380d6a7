"""Bad configs fail with one line naming the file, the line and the dotted key, and never echo a secret."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config, parse_config

CONFIG_PATH = Path("conf/hoop.toml")

# Lines 1-4: a valid postgres connection the policy cases can refer to.
APPDB = """\
[[connections]]
name = "appdb"
type = "postgres"
upstream = "postgresql://app@db/app"
"""


def policy_with(*lines: str) -> str:
    """APPDB, a policy for group a on appdb (lines 5-7), then `lines` from line 8 on."""
    policy = '[[policies]]\ngroups = ["a"]\nconnections = ["appdb"]\n'
    return APPDB + policy + "".join(f"{line}\n" for line in lines)


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONFIG_PATH)
    error = caught.value
    assert "\n" not in str(error)
    return error


def assert_error(text: str, prefix: str, *fragments: str) -> ConfigError:
    error = config_error(text)
    assert str(error).startswith(f"{CONFIG_PATH}:{prefix}"), str(error)
    for fragment in fragments:
        assert fragment in error.message, str(error)
    return error


def test_error_carries_its_parts_and_survives_pickling() -> None:
    error = assert_error("[gateway]\nworkers = 0\n", "2: gateway.workers: must be between 1 and 64")
    assert (error.path, error.line, error.key) == (CONFIG_PATH, 2, "gateway.workers")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)


class TestTomlSyntax:
    def test_reports_the_line(self) -> None:
        text = '[gateway]\nstate_dir = "x"\nworkers = \n'
        assert_error(text, "3: invalid TOML: Invalid value at column 11; fix the syntax")

    def test_at_the_end_of_the_document(self) -> None:
        assert_error('[gateway]\nstate_dir = "x', "2: invalid TOML:", "end of the file")

    def test_duplicate_key(self) -> None:
        assert_error("[gateway]\nworkers = 1\nworkers = 2\n", "3: invalid TOML:")


class TestUnknownKeys:
    def test_top_level_with_hint(self) -> None:
        assert_error("[gatewey]\n", "1: gatewey: unknown key 'gatewey'; did you mean 'gateway'?")

    def test_gateway_key_with_hint(self) -> None:
        text = '[gateway]\nstate_dir = "s"\nrecording_dir = "r"\n'
        assert_error(
            text, "3: gateway.recording_dir: unknown key 'recording_dir'; did you mean 'recordings_dir'?"
        )

    def test_without_a_close_match_lists_the_keys(self) -> None:
        assert_error(
            "[identity]\nzzz = 1\n", "2: identity.zzz: unknown key 'zzz'; expected one of: audience,"
        )

    def test_in_an_array_of_tables(self) -> None:
        second = '[[connections]]\nname = "b"\ntype = "postgres"\nupstream = "postgresql://b@db/b"\n'
        text = APPDB + "\n" + second + 'pasword_env = "X"\n'
        assert_error(text, "10: connections[1].pasword_env: unknown key", "did you mean 'password_env'?")

    def test_in_a_policy(self) -> None:
        text = policy_with('review_timeuot = "5m"')
        assert_error(text, "8: policies[0].review_timeuot: unknown key", "did you mean 'review_timeout'?")

    def test_in_an_issuer_table(self) -> None:
        first = '[identity]\n[[identity.issuers]]\nissuer = "local"\n'
        text = first + '[[identity.issuers]]\nissuer = "https://a.example"\naudiance = "x"\n'
        assert_error(text, "6: identity.issuers[1].audiance: unknown key", "did you mean 'audience'?")

    def test_key_of_the_other_connection_type(self) -> None:
        text = '[[connections]]\nname = "web1"\ntype = "ssh"\nupstream = "deploy@h:22"\npassword_env = "X"\n'
        assert_error(text, "5: connections[0].password_env: password_env does not apply to a ssh connection")


class TestTypes:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ('workers = "two"', "gateway.workers: expected an integer, got a string"),
            ("workers = true", "gateway.workers: expected an integer, got a boolean"),
            ('strict = "yes"', "gateway.strict: expected a boolean, got a string"),
            ("state_dir = 3", "gateway.state_dir: expected a string, got an integer"),
            ("require_tls = 1", "gateway.require_tls: expected a boolean, got an integer"),
            ('state_dir = ""', "gateway.state_dir: must not be empty"),
            ("max_message_size = 1.5", "gateway.max_message_size: expected a byte count"),
        ],
    )
    def test_gateway_value_types(self, line: str, expected: str) -> None:
        assert_error(f"[gateway]\n{line}\n", f"2: {expected}")

    def test_section_that_is_not_a_table(self) -> None:
        assert_error('gateway = "x"\n', "1: gateway: expected a [gateway] table, got a string")

    def test_connections_written_as_a_single_table(self) -> None:
        assert_error(
            '[connections]\nname = "a"\n', "1: connections: write [[connections]] (an array of tables)"
        )

    def test_string_where_an_array_is_expected(self) -> None:
        text = APPDB + '[[policies]]\ngroups = "ci-agents"\nconnections = ["appdb"]\n'
        assert_error(text, '6: policies[0].groups: expected an array of strings, e.g. groups = ["ci-agents"]')

    def test_non_string_array_element(self) -> None:
        text = policy_with("allow = [", '  "read",', "  7,", "]")
        assert_error(text, "10: policies[0].allow[1]: expected a string, got an integer")

    def test_missing_required_key_points_at_the_table(self) -> None:
        assert_error(
            '[[connections]]\ntype = "postgres"\n', "1: connections[0].name: missing required key 'name'"
        )


class TestPolicyKinds:
    def test_unknown_kind_on_its_own_line_with_hint(self) -> None:
        text = policy_with("allow = [", '  "read",', '  "reed",', "]")
        assert_error(text, "10: policies[0].allow[1]: unknown kind 'reed'; did you mean 'read'?")

    def test_unknown_kind_inside_a_flag_entry(self) -> None:
        text = policy_with('deny = ["wirte:no_where"]')
        assert_error(text, "8: policies[0].deny[0]: unknown kind 'wirte'; did you mean 'write'?")

    def test_malformed_flag(self) -> None:
        text = policy_with('deny = ["write:No-Where"]')
        assert_error(text, "8: policies[0].deny[0]: 'write:No-Where' is not 'kind' or 'kind:flag'")

    def test_kind_in_two_lists(self) -> None:
        text = policy_with('allow = ["read", "write"]', 'review = ["ddl"]', 'deny = ["drop",', ' "write"]')
        assert_error(text, "11: policies[0].deny[1]: 'write' is in both allow and deny; keep it in one list")

    def test_flag_entry_in_two_lists(self) -> None:
        text = policy_with('review = ["write:no_where"]', 'deny = ["write:no_where"]')
        assert_error(text, "9: policies[0].deny[0]: 'write:no_where' is in both review and deny")

    def test_command_in_two_lists(self) -> None:
        text = policy_with('allow_commands = ["ls"]', 'deny_commands = ["rm", "ls"]')
        assert_error(
            text, "9: policies[0].deny_commands[1]: 'ls' is in both allow_commands and deny_commands"
        )

    def test_command_with_a_path(self) -> None:
        text = policy_with('deny_commands = ["/usr/bin/rm -rf *"]')
        assert_error(text, "8: policies[0].deny_commands[0]: commands match by program basename; write 'rm'")

    def test_duplicate_entry_in_one_list(self) -> None:
        text = policy_with('allow = ["read", "read"]')
        assert_error(text, "8: policies[0].allow[1]: 'read' is listed twice")


class TestPolicyScope:
    def test_unknown_connection_with_hint(self) -> None:
        text = APPDB + '[[policies]]\ngroups = ["a"]\nconnections = ["appbd"]\n'
        assert_error(text, "7: policies[0].connections[0]: unknown connection 'appbd'; did you mean 'appdb'?")

    def test_unknown_connection_when_none_exist(self) -> None:
        text = '[[policies]]\ngroups = ["a"]\nconnections = ["appdb"]\n'
        assert_error(text, "3: policies[0].connections[0]: unknown connection 'appdb'; no [[connections]]")

    def test_groups_required(self) -> None:
        text = APPDB + '[[policies]]\nconnections = ["appdb"]\n'
        assert_error(text, "5: policies[0].groups: missing required key 'groups'")

    def test_empty_groups(self) -> None:
        text = APPDB + '[[policies]]\ngroups = []\nconnections = ["appdb"]\n'
        assert_error(text, '6: policies[0].groups: name at least one group, or "*"')

    def test_anyone_may_approve_is_refused(self) -> None:
        text = policy_with('approvers = ["oncall", "*"]')
        assert_error(text, "8: policies[0].approvers[1]: '*' would let anyone approve")

    def test_bad_duration(self) -> None:
        text = policy_with('review_timeout = "5 minutes"')
        assert_error(text, "8: policies[0].review_timeout: cannot read duration '5 minutes'")

    def test_zero_review_timeout(self) -> None:
        text = policy_with('review_timeout = "0s"')
        assert_error(text, "8: policies[0].review_timeout: must be longer than zero")


class TestMasking:
    def test_unknown_strategy_inside_an_inline_table(self) -> None:
        text = policy_with('mask = ["email"]', 'mask_strategies = { email = "blur" }')
        assert_error(
            text, '9: policies[0].mask_strategies.email: use "redact", "hash", "partial" or "partial:N"'
        )

    def test_strategy_for_an_entity_not_masked(self) -> None:
        text = policy_with('mask = ["email"]', 'mask_strategies = { iban = "hash" }')
        assert_error(text, "9: policies[0].mask_strategies.iban: 'iban' is not in mask")

    def test_custom_entity_needs_a_rule(self) -> None:
        text = policy_with('mask = ["custom:order"]')
        assert_error(text, "8: policies[0].mask[0]: define the rule custom:order in mask_rules")

    def test_invalid_rule_regex(self) -> None:
        text = policy_with('mask_rules = { order = "ORD-[0-9" }')
        assert_error(text, "8: policies[0].mask_rules.order: invalid regular expression")


class TestConnections:
    def test_duplicate_name(self) -> None:
        text = APPDB + (
            '\n[[connections]]\nname = "appdb"\ntype = "ssh"\nupstream = "deploy@h"\n'
            'key_file = "k"\nknown_hosts = "kh"\n'
        )
        assert_error(text, "7: connections[1].name: a connection named 'appdb' is already defined")

    def test_password_in_the_url_is_refused_and_never_echoed(self) -> None:
        text = '[[connections]]\nname = "appdb"\ntype = "postgres"\nupstream = "postgresql://app:hunter2@db/app"\n'
        error = assert_error(text, "4: connections[0].upstream: remove the password from the URL")
        assert "hunter2" not in str(error)

    def test_password_in_the_query_is_refused(self) -> None:
        text = '[[connections]]\nname = "appdb"\ntype = "postgres"\nupstream = "postgresql://app@db/app?password=hunter2"\n'
        error = assert_error(text, "4: connections[0].upstream: remove the password from the URL")
        assert "hunter2" not in str(error)

    def test_password_in_an_ssh_upstream(self) -> None:
        text = '[[connections]]\nname = "web1"\ntype = "ssh"\nupstream = "deploy:hunter2@h:22"\n'
        error = assert_error(text, "4: connections[0].upstream: remove the password")
        assert "hunter2" not in str(error)

    def test_password_in_the_store_url(self) -> None:
        text = '[gateway]\nstore = "postgresql://hoop:hunter2@db/hoop"\n'
        error = assert_error(text, "2: gateway.store: remove the password from the URL")
        assert "hunter2" not in str(error)

    @pytest.mark.parametrize(
        ("upstream", "expected"),
        [
            ("mysql://app@db/app", "expected a URL like"),
            ("postgresql://app@db:99999/app", "bad host or port in the URL"),
            ("postgresql://app@[::1/app", "bad host or port in the URL"),
            ("postgresql://db/app", "name the upstream user in the URL"),
            ("postgresql://app@db/app?sslmode=requir", "unknown sslmode 'requir'; did you mean 'require'?"),
            ("postgresql://app@/app", "the URL names no host"),
        ],
    )
    def test_bad_postgres_urls(self, upstream: str, expected: str) -> None:
        text = f'[[connections]]\nname = "appdb"\ntype = "postgres"\nupstream = "{upstream}"\n'
        assert_error(text, f"4: connections[0].upstream: {expected}")

    @pytest.mark.parametrize("upstream", ["deploy@", "h:22", "deploy@h:22/path", "deploy@h:port"])
    def test_bad_ssh_upstreams(self, upstream: str) -> None:
        text = f'[[connections]]\nname = "web1"\ntype = "ssh"\nupstream = "{upstream}"\n'
        assert_error(text, "4: connections[0].upstream:")

    def test_a_secret_typed_as_the_port_is_not_echoed(self) -> None:
        text = '[[connections]]\nname = "web1"\ntype = "ssh"\nupstream = "deploy@h:hunter2"\n'
        error = assert_error(text, "4: connections[0].upstream: bad host or port: the port is not a number")
        assert "hunter2" not in str(error)

    def test_unknown_type_with_hint(self) -> None:
        text = '[[connections]]\nname = "appdb"\ntype = "postgresql"\nupstream = "x"\n'
        assert_error(text, "3: connections[0].type: unknown type 'postgresql'; did you mean 'postgres'?")

    def test_bad_name(self) -> None:
        text = '[[connections]]\nname = "app db"\ntype = "postgres"\nupstream = "postgresql://a@b/c"\n'
        assert_error(text, "2: connections[0].name: use letters, digits")

    def test_both_password_sources(self) -> None:
        text = APPDB + 'password_env = "PW"\npassword_file = "pw"\n'
        assert_error(text, "6: connections[0].password_file: set password_env or password_file, not both")

    def test_bad_env_name(self) -> None:
        assert_error(
            APPDB + 'password_env = "APP-PW"\n', "5: connections[0].password_env: name an environment"
        )


class TestGatewayValues:
    @pytest.mark.parametrize(
        "address", ["localhost", "127.0.0.1:99999", "::1:5432", "127.0.0.1:", "my host:1", "[::1]15432"]
    )
    def test_bad_listen_address(self, address: str) -> None:
        text = f'[gateway]\nstate_dir = "s"\npostgres_listen = "{address}"\n'
        assert_error(text, "3: gateway.postgres_listen: bad listen address:", 'or "off" to disable')

    def test_bad_ssh_listen_address(self) -> None:
        assert_error('[gateway]\nssh_listen = "2222"\n', "2: gateway.ssh_listen: bad listen address")

    @pytest.mark.parametrize(
        ("control", "expected"),
        [
            ("http://127.0.0.1:7443", 'use "unix:PATH" or "tcp://HOST:PORT"'),
            ("tcp://127.0.0.1", "bad TCP address"),
            ("unix:", "name the socket file"),
        ],
    )
    def test_bad_control_address(self, control: str, expected: str) -> None:
        assert_error(f'[gateway]\ncontrol = "{control}"\n', f"2: gateway.control: {expected}")

    def test_store_must_be_sqlite_or_postgres(self) -> None:
        assert_error('[gateway]\nstore = "mysql://x"\n', '2: gateway.store: use "sqlite" or a "postgresql://')

    def test_certificate_without_key(self) -> None:
        assert_error('[gateway]\ntls_cert = "c.pem"\n', "2: gateway.tls_cert: set tls_key too")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ('"64 lots"', "cannot read size"),
            ('"2GiB"', "must be between 1KiB and 1GiB"),
            ("12", "must be between 1KiB"),
        ],
    )
    def test_bad_message_size(self, value: str, expected: str) -> None:
        assert_error(f"[gateway]\nmax_message_size = {value}\n", f"2: gateway.max_message_size: {expected}")

    def test_bad_durability(self) -> None:
        assert_error(
            '[gateway]\nrecording_durability = "chunks"\n',
            "2: gateway.recording_durability: unknown mode 'chunks'; did you mean 'chunk'?",
        )

    def test_bad_gateway_id(self) -> None:
        assert_error('[gateway]\ngateway_id = "gw 1"\n', "2: gateway.gateway_id: use 1-128 letters")


class TestIdentity:
    @pytest.mark.parametrize(
        ("issuer", "expected"),
        [
            ("http://login.example.com", "an issuer URL must use https"),
            ("login.example.com", 'use "local" or the issuer URL'),
            ("https://user:pw@login.example.com", "an issuer URL has no user, password, query or fragment"),
        ],
    )
    def test_bad_issuer(self, issuer: str, expected: str) -> None:
        assert_error(f'[identity]\nissuer = "{issuer}"\n', f"2: identity.issuer: {expected}")

    def test_bad_issuer_in_a_list_points_at_the_element(self) -> None:
        text = '[identity]\nissuer = [\n  "local",\n  "ftp://x",\n]\n'
        assert_error(text, '4: identity.issuer[1]: use "local" or the issuer URL')

    def test_issuer_listed_twice(self) -> None:
        assert_error(
            '[identity]\nissuer = ["local", "local"]\n',
            "2: identity.issuer[1]: issuer 'local' is listed twice",
        )

    def test_both_issuer_forms(self) -> None:
        text = '[identity]\nissuer = "local"\n[[identity.issuers]]\nissuer = "local"\n'
        assert_error(text, "3: identity.issuers: use either issuer or [[identity.issuers]], not both")

    def test_an_empty_issuer_list_trusts_nobody_so_it_is_refused(self) -> None:
        assert_error(
            "[identity]\nissuers = []\n", "2: identity.issuers: add at least one [[identity.issuers]]"
        )

    def test_excessive_leeway(self) -> None:
        assert_error('[identity]\nleeway = "1h"\n', "2: identity.leeway: keep the clock leeway at 5m or less")

    def test_bad_leeway_duration(self) -> None:
        assert_error('[identity]\nleeway = "30"\n', "2: identity.leeway: cannot read duration '30'")


class TestFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "absent.toml"
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value) == (
            f"{path}: cannot read config: No such file or directory; create one with `hoop-tui init`"
        )

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "hoop.toml"
        path.write_bytes(b'[gateway]\nstate_dir = "\xff"\n')
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value) == f"{path}:2: the config is not valid UTF-8; save it as UTF-8"

    def test_load_config_reports_the_file_it_was_given(self, tmp_path: Path) -> None:
        path = tmp_path / "hoop.toml"
        path.write_text("[gateway]\nworkers = 99\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value).startswith(f"{path}:2: gateway.workers: must be between 1 and 64")


@pytest.mark.parametrize(
    "value",
    ["postgresql://agent:s3cret@db/app", "postgres://agent:pa/ss@db:5432/app", "ssh://ops:hunter2@bastion"],
)
def test_a_quoted_url_never_carries_its_password_into_the_error(tmp_path: Path, value: str) -> None:
    text = '[[connections]]\nname = "app"\ntype = "postgres"\nupstream = "postgresql://app@db/app"\n\n'
    text += f'[[policies]]\ngroups = "{value}"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "hoop.toml")
    message = str(caught.value)
    assert "policies[0].groups" in message
    password = value.split(":")[2].split("@")[0]
    assert password not in message
    assert ":***@" in message


@pytest.mark.parametrize("missing", ["key_file", "known_hosts"])
def test_an_ssh_connection_needs_its_key_and_known_hosts(tmp_path: Path, missing: str) -> None:
    keys = {"key_file": 'key_file = "./keys/web1"', "known_hosts": 'known_hosts = "./keys/known_hosts"'}
    del keys[missing]
    text = '[[connections]]\nname = "web1"\ntype = "ssh"\nupstream = "deploy@h:22"\n'
    text += "\n".join(keys.values())
    with pytest.raises(ConfigError) as caught:
        parse_config(text + "\n", tmp_path / "hoop.toml")
    assert caught.value.line == 1
    assert f'missing required key "{missing}"' in str(caught.value)
