"""Event kinds of a recording and the names of their fields.

An event is a msgpack array ``[t_us, kind, *fields]``: ``t_us`` is an integer offset in microseconds from the
start of the session and never decreases within a recording (the writer clamps a late timestamp to the one
before it); ``kind`` is one of the strings below. Readers and exports must carry kinds they do not know, and
extra trailing fields of kinds they do know, without loss: a newer gateway may write them.

Field shapes (all values are already masked by the storage policy when they reach the writer):

- ``pg.query``      sql: str
- ``pg.parse``      statement_name: str, sql: str
- ``pg.bind``       portal: str, statement_name: str, param_count: int
- ``pg.execute``    portal: str, max_rows: int
- ``pg.rowdesc``    column_names: list[str], type_oids: list[int]
- ``pg.rows``       count: int, raw: bytes -- backend DataRow messages exactly as on the wire
                    (see :func:`recordings.pgwire.decode_datarows`)
- ``pg.complete``   command_tag: str
- ``pg.error``      fields: dict[str, str] keyed by single-letter PostgreSQL field codes (S, C, M, D, H, ...)
- ``pg.notice``     fields: dict[str, str]
- ``pg.copy``       direction: "in" | "out", raw: bytes
- ``ssh.exec``      command: str
- ``ssh.output``    stream: "stdout" | "stderr", data: bytes
- ``ssh.input``     data: bytes
- ``ssh.resize``    cols: int, rows: int
- ``ssh.exit``      status: int
- ``ssh.transfer``  {sent, received} -- byte counts of a binary subsystem channel (sftp) or a forwarded
                    tunnel, whose payload is not recorded
- ``ssh.forward``   {destination} -- a forwarded TCP connection ("host:port"), opened by the upstream host
- ``policy.decision``     {statement, kind, decision: "allow"|"deny"|"review", rule, flags}
- ``approval.requested``  {id, statement, kind, rule, requester, expires_at}
- ``approval.decided``    {id, state: "approved"|"denied"|"expired"|"cancelled", decider, reason, decided_at}
- ``mask.summary``        {entity: count} -- counts only, never the masked values
- ``session.end``         {reason}
- ``screen.keyframe``     the terminal screen, written by the writer itself (see :mod:`recordings.terminal`)
"""

from __future__ import annotations

PG_QUERY = "pg.query"
PG_PARSE = "pg.parse"
PG_BIND = "pg.bind"
PG_EXECUTE = "pg.execute"
PG_ROWDESC = "pg.rowdesc"
PG_ROWS = "pg.rows"
PG_COMPLETE = "pg.complete"
PG_ERROR = "pg.error"
PG_NOTICE = "pg.notice"
PG_COPY = "pg.copy"
SSH_EXEC = "ssh.exec"
SSH_OUTPUT = "ssh.output"
SSH_INPUT = "ssh.input"
SSH_RESIZE = "ssh.resize"
SSH_EXIT = "ssh.exit"
SSH_TRANSFER = "ssh.transfer"
SSH_FORWARD = "ssh.forward"
POLICY_DECISION = "policy.decision"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"
MASK_SUMMARY = "mask.summary"
SESSION_END = "session.end"
SCREEN_KEYFRAME = "screen.keyframe"

# Positional field names per kind, used by exports to give fields readable names. Kinds whose only field is
# a map name that map after what it describes.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    PG_QUERY: ("sql",),
    PG_PARSE: ("statement_name", "sql"),
    PG_BIND: ("portal", "statement_name", "param_count"),
    PG_EXECUTE: ("portal", "max_rows"),
    PG_ROWDESC: ("column_names", "type_oids"),
    PG_ROWS: ("count", "raw"),
    PG_COMPLETE: ("command_tag",),
    PG_ERROR: ("fields",),
    PG_NOTICE: ("fields",),
    PG_COPY: ("direction", "raw"),
    SSH_EXEC: ("command",),
    SSH_OUTPUT: ("stream", "data"),
    SSH_INPUT: ("data",),
    SSH_RESIZE: ("cols", "rows"),
    SSH_EXIT: ("status",),
    SSH_TRANSFER: ("transfer",),
    SSH_FORWARD: ("forward",),
    POLICY_DECISION: ("policy",),
    APPROVAL_REQUESTED: ("approval",),
    APPROVAL_DECIDED: ("approval",),
    MASK_SUMMARY: ("counts",),
    SESSION_END: ("end",),
    SCREEN_KEYFRAME: ("screen",),
}

KNOWN_KINDS = frozenset(FIELD_NAMES)

# Kinds that start a statement or command of their own (one CSV row each, one marker in an asciicast).
STATEMENT_KINDS = frozenset({PG_QUERY, PG_PARSE, SSH_EXEC})


def event_field(event: list, index: int, default: object = None) -> object:
    """The field at ``index`` (0 = first field after the kind), or ``default`` when the event is shorter."""
    position = index + 2
    return event[position] if len(event) > position else default


def statement_text(event: list) -> object:
    """The SQL or command an event of a :data:`STATEMENT_KINDS` kind carries, else None."""
    kind = event[1]
    if kind == PG_PARSE:
        return event_field(event, 1, "")
    if kind in (PG_QUERY, SSH_EXEC):
        return event_field(event, 0, "")
    return None
