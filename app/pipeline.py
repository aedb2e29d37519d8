"""The detectors of one deployment, arranged by the key their state needs.

The same ``Pipeline`` runs in the worker and in ``replay``; only the stores
and the transport differ.

Kafka partitions input by its key (NIK for registrations, TPS code for
results), and a detector whose state is keyed otherwise (a household, a
blocking key, a regency) must see all records for its key on one partition.
So processing has two stages:

1. ``on_registration`` / ``on_result`` run in the partition of the input key
   and return findings plus :class:`Route` s: the event re-keyed for a
   second-stage detector.
2. ``on_route`` runs a routed event in the partition of its new key.

In the worker, routes are sent to internal topics (one per route kind) and
consumed by second-stage agents; in ``replay`` they are processed at once.
Stores are ``MutableMapping`` s by name: Faust tables in the worker, dicts in
replay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.settings import Settings
from models.base import Finding
from models.privacy import keyed_hash

log = logging.getLogger(__name__)


class RecordDetector(Protocol):
    def process_one(self, event: dict[str, Any]) -> list[Finding]: ...


@dataclass(slots=True)
class Route:
    """An event re-keyed for a second-stage detector."""

    kind: str  # "person_block", "household", "regency_tally"
    key: str
    event: dict[str, Any]


#: Route kinds and the stores their detectors keep (also the worker's internal topics).
#: ``volume`` carries per-bucket partial counts, keyed by stream and province,
#: so one monitor sees every input partition's events of its series.
ROUTE_KINDS = ("person_block", "household", "regency_tally", "volume")

StoreFactory = Callable[[str], MutableMapping[str, Any]]


def dict_stores() -> StoreFactory:
    """Stores for replay and tests: one dict per name."""
    stores: dict[str, dict[str, Any]] = {}
    return lambda name: stores.setdefault(name, {})


def _occurred_at(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("occurred_at") or event.get("submitted_at")
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


class Pipeline:
    """All detectors, wired by stage.

    Parameters
    ----------
    settings
        Thresholds and the HMAC secret come from here.
    stores
        Gives the ``MutableMapping`` for each named piece of state.
    """

    def __init__(self, settings: Settings, stores: StoreFactory) -> None:
        self.settings = settings
        self.stores = stores
        from app.detectors import build_detectors

        built = build_detectors(settings, stores)
        # Every store is opened now: a Faust table cannot be declared once the
        # worker runs, so none may be opened lazily.
        stores("person_keys")
        self.registration_detectors: list[RecordDetector] = built.registration
        self.result_detectors: list[RecordDetector] = built.result
        self.person_block = built.person_block
        self.household = built.household
        self.regency_detectors: list[RecordDetector] = built.regency
        self.volume = built.volume
        self.feedback_learners = built.feedback

    # -- stage 1 ---------------------------------------------------------
    def on_registration(self, event: dict[str, Any]) -> tuple[list[Finding], list[Route]]:
        findings = self._run(self.registration_detectors, event)
        routes: list[Route] = []
        if self.person_block is not None:
            routes += self._person_routes(event)
        nkk = (event["voter"].get("nkk") or "").strip()
        if self.household is not None and nkk:
            routes.append(Route("household", keyed_hash(self.settings.secret, "nkk:" + nkk), event))
        return findings, routes

    def _person_routes(self, event: dict[str, Any]) -> list[Route]:
        """The event to each of its blocks, and its removal to blocks it has left.

        Blocks are keyed by name, birth date, sex and regency, so an update that
        corrects one of them moves the record to other blocks: the old copies
        must be taken out there, on their own partitions. The keys last used
        are kept per NIK (keyed hash) in the NIK partition.
        """
        assert self.person_block is not None
        store = self.stores("person_keys")
        person = keyed_hash(self.settings.secret, "nik:" + str(event["voter"]["nik"]))
        previous = store.get(person) or []
        current = [] if event["action"] == "remove" else self.person_block.blocking_keys(event)
        routes = [Route("person_block", k, event) for k in current]
        left = [k for k in previous if k not in current]
        if left:
            removal = {**event, "action": "remove"}
            routes += [Route("person_block", k, removal) for k in left]
        if current != previous:
            if current:
                store[person] = current
            else:
                store.pop(person, None)
        return routes

    def on_result(self, event: dict[str, Any]) -> tuple[list[Finding], list[Route]]:
        findings = self._run(self.result_detectors, event)
        regency = (event.get("region") or {}).get("regency") or event["tps"][:4]
        routes = [Route("regency_tally", regency, event)] if self.regency_detectors else []
        return findings, routes

    # -- stage 2 ---------------------------------------------------------
    def on_route(self, kind: str, key: str, event: dict[str, Any]) -> list[Finding]:
        if kind == "person_block":
            return self._guard(lambda: self.person_block.match_in_block(key, event), "duplicate_person", event)
        if kind == "household":
            return self._guard(lambda: self.household.process_one(event), "household", event)
        if kind == "regency_tally":
            return self._run(self.regency_detectors, event)
        raise ValueError(f"unknown route kind {kind!r}")

    def volume_observe(self, stream: str, event: dict[str, Any]) -> list[Finding]:
        if self.volume is None:
            return []
        when = _occurred_at(event)
        if when is None:
            return []
        return self._guard(
            lambda: self.volume.observe(stream, when, event.get("region") or {}, event.get("source")), "volume", event
        )

    def volume_advance(self, now: datetime) -> list[Finding]:
        if self.volume is None:
            return []
        try:
            return self.volume.advance(now)
        except Exception:  # noqa: BLE001 - a detector bug must not stop the worker
            log.exception("volume detector failed while advancing")
            return []

    def on_feedback(self, alert: dict[str, Any], is_true: bool) -> bool:
        """Teach the detectors that learn from staff verdicts; True when one learned.

        The worker calls this for every verdict of every worker, read from
        the verdict topic, in the topic's order; a restarted worker reads
        them all again, so what was learned needs no other store.
        """
        learned = False
        for learner in self.feedback_learners:
            try:
                learned |= bool(learner(alert, is_true))
            except Exception:  # noqa: BLE001
                log.exception("feedback learner failed")
        return learned

    # -- everything at once (replay, tests) ------------------------------
    def process_local(self, stream: str, event: dict[str, Any], volume: bool = True) -> list[Finding]:
        """Both stages in one go, as ``replay`` does; ``volume=False`` leaves the volume detector out
        (a parallel replay feeds it afterwards, in line order)."""
        if stream == "registrations":
            findings, routes = self.on_registration(event)
        else:
            findings, routes = self.on_result(event)
        seen_keys: set[tuple[str, str]] = {(f.detector, f.key) for f in findings}
        for route in routes:
            for f in self.on_route(route.kind, route.key, route.event):
                # a pair found in two blocks is one finding
                if (f.detector, f.key) not in seen_keys:
                    seen_keys.add((f.detector, f.key))
                    findings.append(f)
        if volume:
            findings += self.volume_observe(stream, event)
        return findings

    def _run(self, detectors: Iterable[RecordDetector], event: dict[str, Any]) -> list[Finding]:
        findings: list[Finding] = []
        for detector in detectors:
            findings += self._guard(lambda d=detector: d.process_one(event), type(detector).__name__, event)
        return findings

    @staticmethod
    def _guard(call: Callable[[], list[Finding]], name: str, event: dict[str, Any]) -> list[Finding]:
        # A detector bug on one odd record must not stop the stream; it is
        # logged by event id (never by personal data) and counted.
        try:
            return call()
        except Exception:  # noqa: BLE001
            log.exception("detector %s failed on event %s", name, event.get("event_id"))
            DETECTOR_ERRORS[name] = DETECTOR_ERRORS.get(name, 0) + 1
            return []


#: Detector failures by detector name (exported as a metric by the worker).
DETECTOR_ERRORS: dict[str, int] = {}
