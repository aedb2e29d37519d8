"""Decode and validate events; classify what is wrong with the rest.

Every consumed payload goes through :meth:`Validator.decode`. It returns the
event as a dict, or raises :class:`InvalidEvent` whose ``reason`` is one of a
small fixed set (a metric label) and whose ``detail`` is a sentence a person
can act on. Details name the field, never echo its value: values may be
personal data.

Examples
--------
>>> v = Validator()
>>> v.decode("feedback", b'{"alert_id": "a", "verdict": "maybe", "decided_at": "2024-02-14T20:00:00+07:00"}')
Traceback (most recent call last):
...
app.validation.InvalidEvent: schema: data.verdict must be one of ['true_positive', 'false_positive']
>>> v.decode("feedback", b'\\xff\\xfe')
Traceback (most recent call last):
...
app.validation.InvalidEvent: invalid_encoding: payload is not valid UTF-8
>>> v.decode("feedback", b'{"alert_id": "a", "alert_id": "b"}')
Traceback (most recent call last):
...
app.validation.InvalidEvent: duplicate_keys: field 'alert_id' appears more than once
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from importlib import resources
from typing import Any

import fastjsonschema
import orjson

#: Why an event was dead-lettered; the values of the ``reason`` metric label.
REASONS = (
    "empty",
    "oversized",
    "invalid_encoding",
    "invalid_json",
    "duplicate_keys",
    "not_an_object",
    "schema",
    "invalid_date",
    "processing_error",  # valid, but the worker failed on it (a bug): parked for replay, not lost
)

#: The schema each stream's events follow.
STREAM_SCHEMAS = {
    "registrations": "registration.v1",
    "results": "result.v1",
    "feedback": "feedback.v1",
}


class InvalidEvent(ValueError):
    """An event that cannot be processed; goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (e.g. ``registration.v1``) shipped in ``app/schemas``."""
    text = resources.files("app").joinpath("schemas", f"{name}.json").read_text("utf-8")
    return orjson.loads(text)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidEvent("duplicate_keys", f"field {dup[:40]!r} appears more than once")
    return obj


def _check_datetime(value: str, where: str, latest: float | None = None) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent("invalid_date", f"{where} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("invalid_date", f"{where} has no UTC offset (RFC 3339 needs one)")
    if not 2000 <= parsed.year <= 2100:
        raise InvalidEvent("invalid_date", f"{where} is outside the years 2000-2100")
    if latest is not None and parsed.timestamp() > latest:
        # A clock far ahead would move event-time watermarks and make every
        # later event late; such an event is refused, not silently absorbed.
        raise InvalidEvent("invalid_date", f"{where} is more than the allowed time ahead of this worker's clock")
    return parsed


class Validator:
    """Compiled validators for every stream.

    Parameters
    ----------
    max_bytes
        Payloads larger than this are ``oversized``.
    max_future_seconds
        Event times further than this ahead of the wall clock are
        ``invalid_date`` (the worker sets it; ``replay`` of history does not).
    """

    def __init__(self, max_bytes: int = 65536, max_future_seconds: float | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_future_seconds = max_future_seconds
        self._validate = {
            # date-time values are checked after the schema, by _check_dates,
            # so an impossible date is reported as "invalid_date", not "schema".
            stream: fastjsonschema.compile(load_schema(name), formats={"date-time": lambda _: True})
            for stream, name in STREAM_SCHEMAS.items()
        }

    def decode(self, stream: str, payload: bytes | None) -> dict[str, Any]:
        """Parse and validate one payload of ``stream``; raise :class:`InvalidEvent`."""
        if not payload:
            raise InvalidEvent("empty", "payload is empty")
        if len(payload) > self.max_bytes:
            raise InvalidEvent("oversized", f"payload is {len(payload)} bytes, more than the {self.max_bytes} allowed")
        if payload.startswith(b"\xef\xbb\xbf"):
            raise InvalidEvent("invalid_encoding", "payload starts with a UTF-8 byte-order mark, which JSON does not allow")
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            if "UTF-8" in str(exc) or "utf-8" in str(exc):
                raise InvalidEvent("invalid_encoding", "payload is not valid UTF-8") from None
            raise InvalidEvent("invalid_json", f"not JSON: {str(exc).split(':')[0]}") from None
        if not isinstance(event, dict):
            raise InvalidEvent("not_an_object", f"payload is a JSON {type(event).__name__}, not an object")
        try:
            quotes = orjson.dumps(event).count(b'"')
        except TypeError:  # nested deeper than orjson writes (254 levels; it reads 1,024): look
            quotes = -1
        if payload.count(b'"') > quotes:
            # More quotes than the parsed object's own JSON has (two per key and
            # string, one per quote inside a string, which both texts escape as
            # \"; a \u0022 in the payload only makes it fewer): a key appeared
            # twice and orjson kept the last. Re-parse (rarely) to name it.
            try:
                json.loads(payload, object_pairs_hook=_reject_duplicate_keys)
            except RecursionError:
                raise InvalidEvent("invalid_json", "nested too deeply") from None
        try:
            self._validate[stream](event)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidEvent("schema", _schema_detail(exc)) from None
        except RecursionError:
            raise InvalidEvent("schema", "nested too deeply") from None
        self._check_dates(stream, event)
        return event

    def _check_dates(self, stream: str, event: dict[str, Any]) -> None:
        latest = None if self.max_future_seconds is None else time.time() + self.max_future_seconds
        if stream == "registrations":
            _check_datetime(event["occurred_at"], "occurred_at", latest)
            birth = event["voter"].get("birth_date")
            if birth:
                try:
                    born = date.fromisoformat(birth)
                except ValueError:
                    raise InvalidEvent("invalid_date", "voter.birth_date is not a date (YYYY-MM-DD)") from None
                if born.year < 1880:
                    raise InvalidEvent("invalid_date", "voter.birth_date is before 1880")
        elif stream == "results":
            _check_datetime(event["submitted_at"], "submitted_at", latest)
        elif stream == "feedback":
            _check_datetime(event["decided_at"], "decided_at")


def _schema_detail(exc: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema's messages name the path and the rule; for "enum" and
    # "const" rules the allowed values are echoed, which is schema text, not data.
    message = exc.message
    return message if len(message) <= 200 else message[:197] + "..."
