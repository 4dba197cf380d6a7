"""Property tests: key → line mapping on arbitrary TOML layouts; bad configs fail only with ConfigError."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Config, ConfigError, parse_config
from proxy.config_errors import KeyPath, SourceLines

# ------------------------------------------------------------------------------------------------------------
# A TOML writer that remembers the line of everything it writes
# ------------------------------------------------------------------------------------------------------------


class LineTrackingWriter:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line = 1
        self.expected: dict[KeyPath, int] = {}

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.line += text.count("\n")

    def expect(self, key: KeyPath) -> None:
        self.expected.setdefault(key, self.line)

    def text(self) -> str:
        return "".join(self.parts)


BARE_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,6}", fullmatch=True)
ODD_NAMES = st.text(alphabet='ab.# =]["\\', min_size=1, max_size=5)
STRING_TEXT = st.text(alphabet="ab #][\"'=,{}\\\n\té", max_size=12)


def render_key(data: st.DataObject, name: str) -> str:
    if data.draw(st.booleans()) and BARE_NAME_CHARS.issuperset(name):
        return name
    return json.dumps(name, ensure_ascii=False)


BARE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def render_string(data: st.DataObject, writer: LineTrackingWriter, single_line: bool) -> None:
    text = data.draw(STRING_TEXT)
    styles = ["basic"]
    if "'" not in text and "\n" not in text:
        styles.append("literal")
    if not single_line:
        styles.append("multiline_basic")
        if "'''" not in text and not text.endswith("'") and "\\" not in text:
            styles.append("multiline_literal")
    style = data.draw(st.sampled_from(styles))
    if style == "basic":
        writer.write(json.dumps(text, ensure_ascii=False))
    elif style == "literal":
        writer.write(f"'{text}'")
    elif style == "multiline_basic":
        body = text.replace("\\", "\\\\").replace('"', '\\"')
        writer.write(f'"""{body}"""')
    else:
        writer.write(f"'''{text}'''")


def render_value(
    data: st.DataObject, writer: LineTrackingWriter, key: KeyPath, depth: int, single_line: bool
) -> None:
    choices = ["int", "bool", "float", "string", "date"]
    if depth < 2:
        choices += ["array", "inline_table"]
    choice = data.draw(st.sampled_from(choices))
    if choice == "int":
        writer.write(str(data.draw(st.integers(-(10**6), 10**6))))
    elif choice == "bool":
        writer.write(data.draw(st.sampled_from(["true", "false"])))
    elif choice == "float":
        writer.write(data.draw(st.sampled_from(["1.5", "-0.25", "inf", "nan", "6.02e23"])))
    elif choice == "date":
        writer.write(data.draw(st.sampled_from(["1979-05-27", "1979-05-27 07:32:00Z", "07:32:00"])))
    elif choice == "string":
        render_string(data, writer, single_line)
    elif choice == "array":
        render_array(data, writer, key, depth, single_line)
    else:
        render_inline_table(data, writer, key, depth)


def render_array(
    data: st.DataObject, writer: LineTrackingWriter, key: KeyPath, depth: int, single_line: bool
) -> None:
    count = data.draw(st.integers(0, 3))
    multiline = not single_line and data.draw(st.booleans())
    writer.write("[")
    for index in range(count):
        if multiline:
            writer.write("\n")
            if data.draw(st.booleans()):
                writer.write('  # a comment, with ] and " inside\n')
            writer.write("  ")
        elif index:
            writer.write(" ")
        writer.expect((*key, index))
        render_value(data, writer, (*key, index), depth + 1, single_line)
        if index < count - 1 or data.draw(st.booleans()):
            writer.write(",")
    if multiline:
        writer.write("\n")
    writer.write("]")


def render_inline_table(data: st.DataObject, writer: LineTrackingWriter, key: KeyPath, depth: int) -> None:
    names = data.draw(st.lists(BARE_NAMES | ODD_NAMES, max_size=3, unique=True))
    writer.write("{")
    for position, name in enumerate(names):
        writer.write(" " if position == 0 else ", ")
        writer.expect((*key, name))
        writer.write(f"{render_key(data, name)} = ")
        render_value(data, writer, (*key, name), depth + 1, single_line=True)
    writer.write(" }" if names else "}")


def render_key_values(data: st.DataObject, writer: LineTrackingWriter, table: KeyPath, prefix: str) -> None:
    names = data.draw(st.lists(BARE_NAMES | ODD_NAMES, max_size=4, unique=True))
    for name in names:
        if data.draw(st.booleans()):
            writer.write(data.draw(st.sampled_from(["\n", "# comment = [x]\n", "   \n"])))
        dotted = data.draw(st.booleans())
        key = (*table, f"{prefix}{name}")
        rendered = render_key(data, f"{prefix}{name}")
        if dotted:
            key = (*key, "inner")
            rendered += " . inner"
        writer.expect(key)
        writer.write(f"{rendered} = ")
        render_value(data, writer, key, 0, single_line=False)
        writer.write(data.draw(st.sampled_from(["\n", "  # trailing ]\n", "\n\n"])))


def render_document(data: st.DataObject) -> LineTrackingWriter:
    writer = LineTrackingWriter()
    render_key_values(data, writer, (), "k")
    table_names = data.draw(st.lists(BARE_NAMES, max_size=3, unique=True))
    for table_name in table_names:
        name = f"t{table_name}"
        if data.draw(st.booleans()):
            writer.expect((name,))
            writer.write(f"[{name}]\n")
            render_key_values(data, writer, (name,), "")
            continue
        for index in range(data.draw(st.integers(1, 3))):
            writer.expect((name,))
            writer.expect((name, index))
            writer.write(f"[[ {name} ]]\n")
            render_key_values(data, writer, (name, index), "")
            if data.draw(st.booleans()):
                writer.expect((name, index, "sub"))
                writer.write(f"[{name}.sub]\n")
                render_key_values(data, writer, (name, index, "sub"), "")
    return writer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_key_element_and_table_maps_to_its_line(data: st.DataObject) -> None:
    writer = render_document(data)
    text = writer.text()
    if data.draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    tomllib.loads(text)  # the generator only writes valid TOML
    lines = SourceLines(text)
    found = {key: lines.exact(key) for key in writer.expected}
    assert found == writer.expected, text


def test_nearest_enclosing_line_for_keys_not_written() -> None:
    lines = SourceLines('[[connections]]\nname = "a"\n\n[[connections]]\ntype = "ssh"\n')
    assert lines.line_of(("connections", 1, "name")) == 4
    assert lines.line_of(("connections", 0, "type")) == 1
    assert lines.line_of(("gateway",)) is None


# ------------------------------------------------------------------------------------------------------------
# Fail closed: any mix of known keys and plausible or wrong values loads, or fails with a located ConfigError
# ------------------------------------------------------------------------------------------------------------

PLAUSIBLE_STRINGS = st.sampled_from(
    [
        "", "off", "local", "*", "read", "write", "write:no_where", "reed", "exec", "5m", "1h30m", "0s",
        "5 min", "127.0.0.1:15432", "[::1]:0", "::1:5", "postgresql://a@db/app", "postgresql://a:pw@db/app",
        "deploy@h:22", "ssh://u@[::1]", "unix:./s.sock", "tcp://127.0.0.1:7443", "https://id.example.com",
        "http://id.example", "postgres", "ssh", "sqlite", "64MiB", "hash", "partial:2", "email", "custom:x",
        "chunk", "appdb", "rm -rf *", "/bin/rm", "ENV_NAME", "a b",
    ]
)  # fmt: skip
SCALARS = st.one_of(PLAUSIBLE_STRINGS, st.integers(-2, 70000), st.booleans(), st.floats(allow_nan=True))
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(PLAUSIBLE_STRINGS, SCALARS, max_size=2)
)

GATEWAY_KEYS = ["state_dir", "store", "control", "postgres_listen", "workers", "tls_cert", "max_message_size"]
IDENTITY_KEYS = ["issuer", "audience", "leeway", "issuers", "expiry_grace"]
CONNECTION_KEYS = ["name", "type", "upstream", "password_env", "key_file", "nmae"]
POLICY_KEYS = [
    "groups", "connections", "allow", "review", "deny", "mask", "mask_strategies", "review_timeout",
    "approvers", "deny_commands", "mask_rules",
]  # fmt: skip


def tables_of(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def render_config(
    gateway: dict[str, Any], identity: dict[str, Any], connections: list, policies: list
) -> str:
    out: list[str] = []
    for header, table in (("[gateway]", gateway), ("[identity]", identity)):
        out.append(header)
        out.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    for header, tables in (("[[connections]]", connections), ("[[policies]]", policies)):
        for table in tables:
            out.append(header)
            out.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    return "\n".join(out) + "\n"


VALID_CONNECTION = {"name": "appdb", "type": "postgres", "upstream": "postgresql://a@db/app"}


@settings(max_examples=300, deadline=None)
@given(
    tables_of(GATEWAY_KEYS),
    tables_of(IDENTITY_KEYS),
    st.lists(st.one_of(st.just(VALID_CONNECTION), tables_of(CONNECTION_KEYS)), max_size=2),
    st.lists(tables_of(POLICY_KEYS), max_size=2),
)
def test_any_mix_of_values_loads_or_raises_a_located_config_error(
    gateway: dict[str, Any], identity: dict[str, Any], connections: list, policies: list
) -> None:
    text = render_config(gateway, identity, connections, policies)
    try:
        config = parse_config(text, Path("fuzz.toml"))
    except ConfigError as error:
        assert error.line is not None, str(error)
        assert "\n" not in str(error)
        assert "pw@" not in str(error)  # the URL with a password is never echoed
        return
    assert isinstance(config, Config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_raises_config_error(text: str) -> None:
    try:
        parse_config(text, Path("fuzz.toml"))
    except ConfigError as error:
        assert "\n" not in str(error)
