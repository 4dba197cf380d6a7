"""Which PostgreSQL result columns can carry text, by type OID and wire format, and how each is masked."""

# Text format: every type is scanned as text except those that cannot hold free text (numbers, booleans, dates
# and times, uuid, network and geometric types, ranges of those, arrays of those) and bytea. User-defined
# types (citext, enums, domains, composites: OIDs >= 16384) are scanned, as is any other type not listed.
#
# Binary format: only types whose binary form is UTF-8 text (text, varchar, bpchar, name, xml, json, unknown),
# jsonb (a version byte, then JSON text) and one-dimensional or nested arrays of those are scanned; any other
# binary value is opaque and passes untouched.
#
# bytea is not scanned in either format: decoding every hex-escaped blob on the hot path would cost far more
# than the rare text it holds; a column rule can still name a bytea column to mask it whole.

from __future__ import annotations

from enum import IntEnum

TEXT_FORMAT = 0
BINARY_FORMAT = 1

BYTEA = 17
JSON = 114
JSONB = 3802
JSONB_BINARY_VERSION = 1
FIRST_USER_OID = 16384

# Scalar types whose binary wire form is the same UTF-8 text as their text form.
TEXT_BINARY_OIDS = frozenset({25, 1043, 1042, 19, 142, 705})  # text varchar bpchar name xml unknown
# Arrays whose elements are text-like: element OID by array OID.
ARRAY_ELEMENT_OIDS = {
    1009: 25,  # text[]
    1015: 1043,  # varchar[]
    1014: 1042,  # bpchar[]
    1003: 19,  # name[]
    143: 142,  # xml[]
    199: JSON,  # json[]
    3807: JSONB,  # jsonb[]
}

_NO_TEXT_SCALARS = {
    16,  # bool
    17,  # bytea (see module docstring)
    18,  # "char"
    20,  # int8
    21,  # int2
    23,  # int4
    24,  # regproc
    26,  # oid
    27,  # tid
    28,  # xid
    29,  # cid
    600,  # point
    601,  # lseg
    602,  # path
    603,  # box
    604,  # polygon
    628,  # line
    650,  # cidr
    700,  # float4
    701,  # float8
    718,  # circle
    774,  # macaddr8
    790,  # money
    829,  # macaddr
    869,  # inet
    1082,  # date
    1083,  # time
    1114,  # timestamp
    1184,  # timestamptz
    1186,  # interval
    1266,  # timetz
    1560,  # bit
    1562,  # varbit
    1700,  # numeric
    2202,  # regprocedure
    2203,  # regoper
    2204,  # regoperator
    2205,  # regclass
    2206,  # regtype
    2950,  # uuid
    3220,  # pg_lsn
    3734,  # regconfig
    3769,  # regdictionary
    3904,  # int4range
    3906,  # numrange
    3908,  # tsrange
    3910,  # tstzrange
    3912,  # daterange
    3926,  # int8range
    4089,  # regnamespace
    4096,  # regrole
    5069,  # xid8
}
_NO_TEXT_ARRAYS = {
    1000,  # bool[]
    1001,  # bytea[]
    1002,  # "char"[]
    1005,  # int2[]
    1007,  # int4[]
    1016,  # int8[]
    1021,  # float4[]
    1022,  # float8[]
    1028,  # oid[]
    1115,  # timestamp[]
    1182,  # date[]
    1183,  # time[]
    1185,  # timestamptz[]
    1187,  # interval[]
    1231,  # numeric[]
    1270,  # timetz[]
    2951,  # uuid[]
    1040,  # macaddr[]
    1041,  # inet[]
    651,  # cidr[]
}
NO_TEXT_OIDS = frozenset(_NO_TEXT_SCALARS | _NO_TEXT_ARRAYS)


class Plan(IntEnum):
    """What the row masker does with one column's values."""

    SKIP = 0  # pass untouched, never decoded
    TEXT = 1  # scan as text
    JSON = 2  # JSON text: mask inside strings
    JSONB_BINARY = 3  # version byte + JSON text
    TEXT_ARRAY_BINARY = 4  # binary array of text-like elements
    RULE_TEXT = 5  # column rule: replace the value with the entity token
    RULE_JSON = 6  # column rule on json (text form): replace with the token as a JSON string
    RULE_JSONB_BINARY = 7  # column rule on binary jsonb: version byte + token as a JSON string
    RULE_NULL = 8  # column rule on an opaque binary value: replace with NULL


def scan_plan(type_oid: int, format_code: int) -> Plan:
    """How values of this type and format are scanned when no column rule names the column."""
    if format_code == TEXT_FORMAT:
        if type_oid in NO_TEXT_OIDS:
            return Plan.SKIP
        return Plan.JSON if type_oid in (JSON, JSONB) else Plan.TEXT
    if type_oid in TEXT_BINARY_OIDS:
        return Plan.TEXT
    if type_oid == JSON:
        return Plan.JSON
    if type_oid == JSONB:
        return Plan.JSONB_BINARY
    if type_oid in ARRAY_ELEMENT_OIDS:
        return Plan.TEXT_ARRAY_BINARY
    return Plan.SKIP


def rule_plan(type_oid: int, format_code: int) -> Plan:
    """How values are replaced when a column rule names the column.

    Text format gets the token whatever the type (a JSON string token for json/jsonb, so the value stays
    JSON). In binary format a token is only written where the binary form is text; any other binary value
    becomes NULL, because a token in an int8 or an array's binary layout would break the client's decoder."""
    if type_oid in (JSON, JSONB) and format_code == TEXT_FORMAT:
        return Plan.RULE_JSON
    if format_code == TEXT_FORMAT or type_oid in TEXT_BINARY_OIDS:
        return Plan.RULE_TEXT
    if type_oid == JSON:
        return Plan.RULE_JSON
    if type_oid == JSONB:
        return Plan.RULE_JSONB_BINARY
    return Plan.RULE_NULL


def element_plan(array_oid: int) -> Plan:
    """The plan for the elements of a binary array of text-like elements."""
    element = ARRAY_ELEMENT_OIDS[array_oid]
    if element == JSON:
        return Plan.JSON
    if element == JSONB:
        return Plan.JSONB_BINARY
    return Plan.TEXT
