"""Hypothesis strategies built from the JSON Schemas in ``app/schemas``, and hostile input.

``from_schema`` turns a (small) JSON Schema into a strategy: types and type
lists, ``enum``/``const``, ``pattern``, lengths, ranges, ``required`` and
optional ``properties``, ``additionalProperties``/``propertyNames`` and
``min/maxProperties`` - what Pantau's schemas use. Fields whose rules live in
the Validator rather than the schema (date-times within 2000-2100 with an
offset, birth dates) get strategies that the Validator accepts, so
``valid_event`` draws events that both the schema and ``Validator.decode``
accept. Integers may come as floats with an integral value (``150.0``): JSON
Schema calls them integers, and so does the Validator.

``mutated_event`` breaks one drawn event in one way (missing field, wrong type,
out of range, too long, bad pattern, bad enum, impossible or out-of-range
date) and says which dead-letter reason the Validator must give; the schema
breaks are confirmed with the ``jsonschema`` library as an independent oracle.

``HOSTILE`` is a fixed corpus of hostile payloads (name, bytes, expected
reason); ``hostile_bytes`` adds generated ones (truncations, invalid UTF-8 in a
field, duplicated keys, random bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import jsonschema
from hypothesis import strategies as st

from app.validation import STREAM_SCHEMAS, load_schema

SCHEMAS = {stream: load_schema(name) for stream, name in STREAM_SCHEMAS.items()}
ORACLES = {stream: jsonschema.Draft202012Validator(schema) for stream, schema in SCHEMAS.items()}

#: Longest string drawn for a field without a small maxLength (keeps examples fast).
STRING_CAP = 60


@dataclass(frozen=True)
class Payload:
    """One input for a stream: its bytes, and the dead-letter reason it must get (None: it is good)."""

    name: str
    stream: str
    value: bytes
    reason: str | None
    key: bytes | None = None

    @property
    def is_line(self) -> bool:
        """Whether it can be one line of a JSON Lines file."""
        return b"\n" not in self.value and b"\r" not in self.value

    @property
    def is_blank(self) -> bool:
        """Empty or whitespace only: a blank line for replay, a dead letter for the worker."""
        return not self.value.strip()


def dumps(obj: Any) -> bytes:
    """JSON as a producer might write it (stdlib: handles ints beyond 64 bits)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


# -- values the Validator checks beyond the schema ------------------------------
def offsets() -> st.SearchStrategy[timezone]:
    return st.one_of(
        st.sampled_from([timezone.utc, timezone(timedelta(hours=7)), timezone(timedelta(hours=8)),
                         timezone(timedelta(hours=9))]),
        st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )


def rfc3339(low: datetime = datetime(2000, 1, 2), high: datetime = datetime(2100, 12, 30)) -> st.SearchStrategy[str]:
    """Date-times the Validator accepts: an offset, years 2000-2100, optional fractions, ``Z``."""
    stamps = st.builds(
        lambda dt, tz, spec: dt.replace(tzinfo=tz).isoformat(timespec=spec),
        st.datetimes(min_value=low, max_value=high),
        offsets(),
        st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes"]),
    )
    zulu = st.datetimes(min_value=low, max_value=high).map(lambda dt: dt.isoformat(timespec="seconds") + "Z")
    return st.one_of(stamps, zulu)


def campaign_rfc3339() -> st.SearchStrategy[str]:
    """Date-times around polling day (2024-02-13 .. 16), for the detectors.

    The volume detector scores every 5-minute bucket of every series between
    event times (up to a week per series): events spread over years cost tens
    of milliseconds each in bucket filling rather than exercising the other
    detectors. Far-off dates are fuzzed against the Validator and the worker.
    """
    return rfc3339(datetime(2024, 2, 13), datetime(2024, 2, 16))


def birth_dates() -> st.SearchStrategy[str | None]:
    """Birth dates the Validator accepts: 1880 onwards (the far future too), empty, null."""
    return st.one_of(
        st.dates(min_value=date(1880, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat),
        st.sampled_from(["", None, "9999-12-31", "1880-01-01", "2024-02-29", "2006-02-14", "2007-02-15"]),
    )


def niks() -> st.SearchStrategy[str]:
    """NIK-like strings: 16 digits mostly, else any text the schema allows."""
    return st.one_of(
        st.from_regex(r"[0-9]{16}", fullmatch=True),
        st.from_regex(r"(11|32|33|35|51|91)[0-9]{4}[0-7][0-9][01][0-9][0-9]{2}[0-9]{4}", fullmatch=True),
        st.sampled_from(["2222222222222222", "0000000000000000", "3273015705900001"]),
        st.text(min_size=1, max_size=32),
    )


def names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["Siti Rahmawati", "SITI RAHMAWATI", "H. Ahmad Fauzi, S.Pd.", "Dr. Ir. Budi", "Ni Luh Putu Ayu",
                         "Muhammad", "'; DROP TABLE voters; --", "名前", "a\u0000b", "\u202eevil", "x" * 200]),
        st.text(min_size=1, max_size=40),
    )


#: Field strategies used instead of the schema's, by dotted path.
OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "occurred_at": rfc3339(),
    "submitted_at": rfc3339(),
    "decided_at": rfc3339(),
    "voter.birth_date": birth_dates(),
    "voter.nik": niks(),
    "voter.name": names(),
}


# -- schema -> strategy -----------------------------------------------------------
def _integer(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", -(2**53))
    high = schema.get("maximum", 2**53)
    ints = st.integers(low, high)
    edges = st.sampled_from([v for v in (low, high, 0, 1) if low <= v <= high])
    # 150.0 is an integer for JSON Schema (and for the Validator)
    return st.one_of(ints, edges, ints.map(float))


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"].removeprefix("^").removesuffix("$"), fullmatch=True)
    low = schema.get("minLength", 0)
    high = min(schema.get("maxLength", STRING_CAP), STRING_CAP)
    return st.text(min_size=low, max_size=max(low, high))


def _object(schema: dict[str, Any], path: str, overrides: dict[str, Any]) -> st.SearchStrategy[dict]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if not props:
        extra = schema.get("additionalProperties", {})
        names_max = schema.get("propertyNames", {}).get("maxLength", 16)
        low = schema.get("minProperties", 0)
        high = min(schema.get("maxProperties", 8), 8)
        values = from_schema(extra, path + ".*", overrides) if extra else json_values(2)
        return st.dictionaries(st.text(max_size=names_max), values, min_size=low, max_size=max(low, high))

    def sub(name: str) -> st.SearchStrategy[Any]:
        return from_schema(props[name], f"{path}.{name}".lstrip("."), overrides)

    return st.fixed_dictionaries(
        {k: sub(k) for k in props if k in required},
        optional={k: sub(k) for k in props if k not in required},
    )


def from_schema(schema: dict[str, Any], path: str = "", overrides: dict[str, Any] | None = None) -> st.SearchStrategy:
    """A strategy for values valid against ``schema`` (the subset Pantau's schemas use)."""
    overrides = OVERRIDES if overrides is None else overrides
    if path in overrides:
        return overrides[path]
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type")
    if isinstance(types, list):
        return st.one_of([from_schema({**schema, "type": t}, path, overrides) for t in types])
    if types == "null":
        return st.none()
    if types == "string":
        return _string(schema)
    if types == "integer":
        return _integer(schema)
    if types == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if types == "boolean":
        return st.booleans()
    if types == "object":
        return _object(schema, path, overrides)
    if types == "array":
        return st.lists(from_schema(schema.get("items", {}), path + "[]", overrides), max_size=4)
    return json_values(2)


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    """Any JSON value, a few levels deep."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=depth * 4)


STREAMS = ("registrations", "results", "feedback")


#: Like OVERRIDES, with event times around polling day (for the detectors).
CAMPAIGN = {**OVERRIDES, "occurred_at": campaign_rfc3339(), "submitted_at": campaign_rfc3339(),
            "decided_at": campaign_rfc3339()}


def valid_event(stream: str, campaign: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Events of ``stream`` that the schema and the Validator accept (``campaign``: times around polling day)."""
    return from_schema(SCHEMAS[stream], overrides=CAMPAIGN if campaign else OVERRIDES)


def any_valid_event() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.one_of([valid_event(s).map(lambda e, s=s: (s, e)) for s in STREAMS])


def key_for(stream: str, event: dict[str, Any]) -> bytes:
    """The key the contract asks for: NIK, TPS code or alert id."""
    if stream == "registrations":
        return event["voter"]["nik"].encode()
    if stream == "results":
        return event["tps"].encode()
    return event["alert_id"].encode()


# -- mutations ----------------------------------------------------------------------
def _fields(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict, bool]]:
    """(path, field schema, required) for every declared property, nested ones too."""
    out = []
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        path = prefix + (name,)
        out.append((path, sub, name in required))
        if sub.get("type") == "object" or "properties" in sub:
            out += _fields(sub, path)
    return out


FIELDS = {stream: _fields(schema) for stream, schema in SCHEMAS.items()}
WRONG_VALUES: list[Any] = [None, True, 0, -1, 1.5, 10**20, "", "x", "NaN", [], [None], {}, {"a": None}]
#: Date-times the Validator must reject as invalid_date.
BAD_DATETIMES = [
    "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "2024-02-30T10:00:00+07:00",
    "2023-02-29T10:00:00+07:00", "2024-02-14T10:00:00", "2024-13-01T00:00:00Z", "1999-12-31T23:59:59+00:00",
    "2101-01-01T00:00:00+00:00", "yesterday", "", "2024-02-14T25:00:00+07:00", "14/02/2024 10:00",
]
#: Birth dates the Validator must reject as invalid_date.
BAD_BIRTH_DATES = ["2023-02-29", "1990-02-30", "0001-01-01", "1879-12-31", "31-12-1990", "1990/05/17", "unknown",
                   "1990-00-10", "1990-5-7"]
DATE_FIELDS = {"registrations": ("occurred_at",), "results": ("submitted_at",), "feedback": ("decided_at",)}


def _get(event: dict, path: tuple[str, ...]) -> Any:
    for p in path:
        event = event[p]
    return event


def _set(event: dict, path: tuple[str, ...], value: Any) -> None:
    _get(event, path[:-1])[path[-1]] = value


def _delete(event: dict, path: tuple[str, ...]) -> None:
    del _get(event, path[:-1])[path[-1]]


def _schema_breaks(sub: dict[str, Any]) -> list[Any]:
    """Values that break the field schema ``sub`` (checked with jsonschema)."""
    candidates = list(WRONG_VALUES)
    if "maxLength" in sub:
        candidates.append("7" * (sub["maxLength"] + 1))
    if "minimum" in sub:
        candidates.append(sub["minimum"] - 1)
    if "maximum" in sub:
        candidates += [sub["maximum"] + 1, 10**20]
    if "pattern" in sub:
        candidates += ["12 34", "3273011001001\n", "٣٢", "32a"]
    if "enum" in sub or "const" in sub:
        candidates += ["??", "ADD", "l"]
    checker = jsonschema.Draft202012Validator(sub)
    return [c for c in candidates if not checker.is_valid(c)]


@st.composite
def mutated_event(draw: st.DrawFn, stream: str | None = None) -> Payload:
    """A valid event broken in one way, with the reason the Validator must give."""
    stream = stream or draw(st.sampled_from(STREAMS))
    event = draw(valid_event(stream))
    kind = draw(st.sampled_from(["missing", "wrong", "wrong", "date", "extra_top_type"]))
    present = [(p, sub, req) for p, sub, req in FIELDS[stream] if _present(event, p)]
    if kind == "date":
        if stream == "registrations" and draw(st.booleans()):
            event["voter"]["birth_date"] = draw(st.sampled_from(BAD_BIRTH_DATES))
            what = "birth_date"
        else:
            field = DATE_FIELDS[stream][0]
            event[field] = draw(st.sampled_from(BAD_DATETIMES))
            what = field
        reason = "invalid_date"
        # "" and over-long strings are not schema breaks for occurred_at (only maxLength 40 is)
    elif kind == "missing":
        required = [p for p, _, req in present if req and all(_required_chain(stream, p))]
        path = draw(st.sampled_from(required))
        _delete(event, path)
        what, reason = "missing " + ".".join(path), "schema"
    elif kind == "extra_top_type":
        event = draw(st.sampled_from([{"event_id": None}, {}, {"voter": None}, {"region": {"province": None}}]))
        what, reason = "nested nulls", "schema"
    else:
        path, sub, _ = draw(st.sampled_from(present))
        value = draw(st.sampled_from(_schema_breaks(sub)))
        _set(event, path, value)
        what, reason = f"wrong {'.'.join(path)}={value!r}"[:60], "schema"
    if reason == "schema":
        assert not ORACLES[stream].is_valid(event), (what, event)
    return Payload(what, stream, dumps(event), reason, key=b"mutated")


def _present(event: dict, path: tuple[str, ...]) -> bool:
    try:
        _get(event, path)
        return True
    except (KeyError, TypeError):
        return False


def _required_chain(stream: str, path: tuple[str, ...]) -> list[bool]:
    required = {p: req for p, _, req in FIELDS[stream]}
    return [required[path[: i + 1]] for i in range(len(path))]


# -- hostile bytes -------------------------------------------------------------------
def _sample(stream: str) -> dict[str, Any]:
    from tests.factories import registration, result

    if stream == "registrations":
        return registration(event_id="hostile-base")
    if stream == "results":
        return result(event_id="hostile-base")
    return {"schema": "feedback.v1", "alert_id": "duplicate_nik-0123456789abcdef0123", "verdict": "true_positive",
            "decided_at": "2024-02-14T20:00:00+07:00"}


def _with(event: dict[str, Any], field: str, raw: bytes) -> bytes:
    """``event`` as JSON with ``field``'s value replaced by the raw bytes ``raw``."""
    return dumps({**event, field: "@@PLACEHOLDER@@"}).replace(b'"@@PLACEHOLDER@@"', raw)


def _nest(depth: int, kind: str) -> bytes:
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


def _hostile() -> list[Payload]:
    reg, res = _sample("registrations"), _sample("results")
    reg_b, res_b = dumps(reg), dumps(res)
    mb = 1 << 20
    items: list[tuple[str, str, bytes, str]] = [
        ("empty", "results", b"", "empty"),
        ("space", "results", b" ", "invalid_json"),
        ("whitespace", "registrations", b" \t\n\r\n ", "invalid_json"),
        ("bom + event", "registrations", b"\xef\xbb\xbf" + reg_b, "invalid_encoding"),
        ("bom alone", "results", b"\xef\xbb\xbf", "invalid_encoding"),
        ("null byte", "results", b"\x00", "invalid_json"),
        ("null bytes", "registrations", b"\x00" * 64, "invalid_json"),
        ("event + null byte", "results", res_b + b"\x00", "invalid_json"),
        ("raw null byte in a string", "registrations", reg_b.replace(b"Siti", b"Si\x00ti"), "invalid_json"),
        ("truncated", "results", res_b[: len(res_b) // 2], "invalid_json"),
        ("truncated after 1 byte", "registrations", b"{", "invalid_json"),
        ("truncated in a string", "registrations", reg_b[:40], "invalid_json"),
        ("two objects", "results", res_b + res_b, "invalid_json"),
        ("nesting 10k objects", "results", _nest(10_000, "object"), "invalid_json"),
        ("nesting 10k arrays", "results", _nest(10_000, "array"), "invalid_json"),
        ("nesting 10k in a field", "registrations",
         reg_b[:-1] + b',"extra":' + _nest(10_000, "array") + b"}", "invalid_json"),
        ("nesting 200 objects", "results", _nest(200, "object"), "schema"),
        ("huge string 60 kB name", "registrations", dumps({**reg, "voter": {**reg["voter"], "name": "A" * 60_000}}),
         "schema"),
        ("huge number 1e400", "results", _with(res, "voters", b"1e400"), "invalid_json"),
        ("huge exponent -1e400", "results", _with(res, "voters", b"-1e400"), "invalid_json"),
        ("20-digit int", "results", _with(res, "voters", b"12345678901234567890"), "schema"),
        ("30-digit int", "results", _with(res, "voters", b"9" * 30), "schema"),
        ("negative float", "results", _with(res, "invalid", b"-0.5"), "schema"),
        ("float 1e5 voters", "results", _with(res, "voters", b"1.5e5"), "schema"),
        ("NaN", "results", _with(res, "voters", b"NaN"), "invalid_json"),
        ("Infinity", "results", _with(res, "voters", b"Infinity"), "invalid_json"),
        ("-Infinity", "results", b"-Infinity", "invalid_json"),
        ("bare NaN", "registrations", b"NaN", "invalid_json"),
        ("invalid UTF-8 ff", "results", b"\xff\xfe\xfd", "invalid_encoding"),
        ("invalid UTF-8 in a name", "registrations", reg_b.replace(b"Siti", b"S\xffti"), "invalid_encoding"),
        ("overlong UTF-8", "registrations", reg_b.replace(b"Siti", b"S\xc0\xafti"), "invalid_encoding"),
        ("UTF-8 surrogate", "registrations", reg_b.replace(b"Siti", b"S\xed\xa0\x80ti"), "invalid_encoding"),
        ("cut multibyte", "registrations", _with(reg, "event_id", b'"id\xe2\x82"'), "invalid_encoding"),
        ("lone surrogate escape", "registrations", reg_b.replace(b"Siti", b"\\ud800"), "invalid_json"),
        ("latin-1 text", "registrations", reg_b.replace(b"Siti", "Sitì".encode("latin-1")), "invalid_encoding"),
        ("utf-16", "results", json.dumps(res).encode("utf-16"), "invalid_encoding"),
        ("array", "results", b"[1, 2, 3]", "not_an_object"),
        ("array of events", "results", b"[" + res_b + b"]", "not_an_object"),
        ("string", "registrations", b'"3273015705900001"', "not_an_object"),
        ("number", "results", b"42", "not_an_object"),
        ("null", "results", b"null", "not_an_object"),
        ("true", "registrations", b"true", "not_an_object"),
        ("empty object", "results", b"{}", "schema"),
        ("nested nulls", "registrations",
         b'{"event_id":null,"occurred_at":null,"action":null,"voter":{"nik":null,"name":null},"region":null}',
         "schema"),
        ("voter null", "registrations", dumps({**reg, "voter": None}), "schema"),
        ("votes empty", "results", dumps({**res, "votes": {}}), "schema"),
        ("event_id number", "registrations", dumps({**reg, "event_id": 5}), "schema"),
        ("votes as strings", "results", dumps({**res, "votes": {"01": "60"}}), "schema"),
        ("date 0001-01-01", "registrations", dumps({**reg, "occurred_at": "0001-01-01T00:00:00+00:00"}),
         "invalid_date"),
        ("date 9999-12-31", "results", dumps({**res, "submitted_at": "9999-12-31T23:59:59+07:00"}), "invalid_date"),
        ("Feb 30", "registrations", dumps({**reg, "occurred_at": "2023-02-30T10:00:00+07:00"}), "invalid_date"),
        ("birth Feb 30", "registrations", dumps({**reg, "voter": {**reg["voter"], "birth_date": "1990-02-30"}}),
         "invalid_date"),
        ("birth 0001-01-01", "registrations",
         dumps({**reg, "voter": {**reg["voter"], "birth_date": "0001-01-01"}}), "invalid_date"),
        ("no offset", "results", dumps({**res, "submitted_at": "2024-02-14T19:00:00"}), "invalid_date"),
        ("duplicated key", "results", res_b[:-1] + b',"voters":999}', "duplicate_keys"),
        ("duplicated nested key", "registrations", reg_b.replace(b'"name":', b'"name":"X","name":'),
         "duplicate_keys"),
        ("duplicated key same value", "results", b'{"tps":"1","tps":"1"}', "duplicate_keys"),
        ("1 MB string", "results", b'{"event_id":"' + b"x" * mb + b'"}', "oversized"),
        ("1 MB of nulls", "registrations", b"\x00" * mb, "oversized"),
        ("1 MB of garbage", "results", bytes(range(1, 256)).replace(b"\n", b"").replace(b"\r", b"") * (mb // 253 + 1),
         "oversized"),
        ("just over the limit", "results", res_b[:-1] + b',"pad":"' + b"p" * 65_536 + b'"}', "oversized"),
    ]
    return [Payload(name, stream, value, reason, key=f"hostile-{i}".encode())
            for i, (name, stream, value, reason) in enumerate(items)]


HOSTILE: list[Payload] = _hostile()

#: Events that look hostile but are valid: they must be processed, not dead-lettered.
def tricky_good() -> list[tuple[str, dict[str, Any]]]:
    from tests.factories import registration, result

    reg = registration(event_id="tricky-1")
    return [
        ("registrations", {**reg, "event_id": "tricky-nul", "voter": {**reg["voter"], "name": "Si\u0000ti"}}),
        ("registrations", {**reg, "event_id": "tricky-born-9999", "voter": {**reg["voter"], "birth_date": "9999-12-31"}}),
        ("registrations", {**reg, "event_id": "tricky-nulls", "voter": {**reg["voter"], "nkk": None, "sex": None,
                                                                       "birth_date": None, "address": None}}),
        ("registrations", {**reg, "event_id": "tricky-quotes", "voter": {**reg["voter"], "address": 'Jl. "Merdeka" \\'}}),
        ("registrations", {**reg, "event_id": "tricky-unknown-field", "x": {"deep": [[[None]]]}}),
        ("results", {**result(event_id="tricky-float-ints"), "voters": 224.0, "valid": 220.0}),
        ("results", result(event_id="tricky-zero", votes={"01": 0}, dpt=0, invalid=0)),
        ("results", result(event_id="tricky-max", votes={"01": 100000}, dpt=100000, invalid=100000, voters=100000)),
        ("results", {**result(event_id="tricky-500-candidates"), "votes": {f"{i:03d}": i for i in range(500)}}),
    ]


@st.composite
def hostile_bytes(draw: st.DrawFn) -> Payload:
    """Generated hostile payloads: truncations, invalid UTF-8 in a field, duplicated keys, random bytes."""
    stream = draw(st.sampled_from(STREAMS))
    event = draw(valid_event(stream))
    raw = dumps(event)
    kind = draw(st.sampled_from(["truncate", "utf8", "dupkey", "random", "random_json"]))
    if kind == "truncate":
        cut = draw(st.integers(1, len(raw) - 1))
        prefix = raw[:cut]
        reason = "invalid_encoding" if _cuts_a_character(prefix) else "invalid_json"
        return Payload("truncated", stream, prefix, reason, key=b"gen")
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"]))
        first_string = raw.index(b'":"') + 3 if b'":"' in raw else None
        if first_string is None:
            return Payload("invalid utf-8", stream, bad + raw, "invalid_encoding", key=b"gen")
        return Payload("invalid utf-8", stream, raw[:first_string] + bad + raw[first_string:], "invalid_encoding",
                       key=b"gen")
    if kind == "dupkey":
        # a top-level key repeated at the end, with a value of its own
        name = draw(st.sampled_from(sorted(event)))
        value = draw(json_values(1))
        payload = raw[:-1] + b"," + dumps(name) + b":" + dumps(value) + b"}"
        # escaped quotes hide a duplicate from the Validator's quote count (a known gap, see
        # test_duplicated_key_next_to_escaped_quotes_is_a_dead_letter): expect it only without them
        return Payload("duplicated key", stream, payload, None if b'\\"' in payload else "duplicate_keys", key=b"gen")
    if kind == "random":
        return Payload("random bytes", stream, draw(st.binary(min_size=1, max_size=200)), None, key=b"gen")
    value = draw(json_values())
    return Payload("random JSON", stream, dumps(value), None if isinstance(value, dict) else "not_an_object",
                   key=b"gen")


def _cuts_a_character(prefix: bytes) -> bool:
    try:
        prefix.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True
