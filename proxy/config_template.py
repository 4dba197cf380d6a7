"""The starter config `hoop-tui init` writes: every key, commented, with safe defaults."""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")

# ------------------------------------------------------------------------------------------------------------
# Starter config (what `hoop-tui init` writes)
# ------------------------------------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


_STARTER_TEMPLATE = """\
# hoop-tui gateway configuration. Relative paths are resolved against this file's directory.
# Every key is checked when the gateway starts: a typo stops it with the file, line and key.

[gateway]
state_dir = {state_dir}          # signing keys, the local token issuer, the sqlite store
recordings_dir = "./recordings"    # one tamper-evident .hrec file per session
store = "sqlite"                   # or "postgresql://hoop@db-host/hoop" when several gateways share state
control = {control}   # control API for the console; or "tcp://127.0.0.1:7443"
admin_groups = []                  # token groups that may kill sessions, grant access and read recordings
auditor_groups = []                # token groups that may list sessions and read recordings
auditor_mask = []                  # entities auditors (not admins) see masked further, e.g. ["phone"]
postgres_listen = "127.0.0.1:15432"  # agents connect here with psql/asyncpg/psycopg; "off" disables
ssh_listen = "127.0.0.1:2222"        # agents connect here with ssh; "off" disables
# workers = 2                      # gateway processes sharing the listen ports
# tls_cert = "./tls/gateway.crt"   # client-facing TLS; a self-signed pair is generated when absent
# tls_key = "./tls/gateway.key"
# ssh_host_key = "./keys/ssh_host" # the SSH listener's host key; generated in state_dir/keys when absent
# max_message_size = "64MiB"       # larger protocol messages end that session
# recording_durability = "chunk"   # chunk | batch | none
# strict = true                    # a recording or store failure ends the session (fail closed)

[identity]
issuer = "local"                   # tokens from `hoop-tui token mint`; or an https OIDC issuer URL
audience = "hoop"
groups_claim = "groups"
# leeway = "30s"                   # clock skew tolerated on exp/nbf/iat
# expiry_grace = "0s"              # how long a session may outlive its token

[[connections]]
name = "appdb"                     # agents use it as the database name: dbname=appdb
type = "postgres"
upstream = "postgresql://app@127.0.0.1:5432/app?sslmode=prefer"
password_env = "APPDB_PASSWORD"    # or password_file = "./secrets/appdb"; never a password in this file

# [[connections]]
# name = "web1"                    # agents use it as the SSH user: ssh -p 2222 web1@gateway
# type = "ssh"
# upstream = "deploy@10.0.0.5:22"
# key_file = "./keys/web1"         # the gateway's private key for the upstream host
# known_hosts = "./keys/known_hosts"

[[policies]]
groups = ["ci-agents"]             # token groups this policy applies to ("*" for everyone)
connections = ["appdb"]
allow = ["read", "transaction", "session"]
review = ["write", "ddl"]          # held in the live session until an approver decides
deny = ["drop", "truncate", "copy_program", "dangerous_function", "opaque", "write:no_where"]
mask = ["email", "phone", "credit_card", "us_ssn", "iban", "secret"]
# mask_columns = ["*.email", "users.ssn"]
# mask_strategies = {{ email = "hash", credit_card = "partial:4" }}
review_timeout = "5m"
approvers = ["oncall"]             # groups whose members may decide held statements
"""


def starter_config_text(state_dir: str = "./hoop-state") -> str:
    """A valid, commented config: the local issuer, one postgres connection and a policy like DESIGN §6."""
    control_path = state_dir.rstrip("/") + "/control.sock"
    return _STARTER_TEMPLATE.format(
        state_dir=_toml_string(state_dir), control=_toml_string(f"unix:{control_path}")
    )
