"""Turn detector findings into ``alert.v1`` payloads: deterministic ids, coalescing.

The alerter's state is a ``MutableMapping`` from alert id to the last alert
published under it (a Faust table in the worker, a dict in ``replay``).

* **Deterministic ids.** ``alert_id`` is derived from the finding's detector
  and key only, so the same finding always gets the same id.
* **Idempotent.** A finding whose event ids the open alert already holds (an
  event reprocessed after a restart: processing is at-least-once) re-emits the
  stored alert unchanged: same id, same payload. A process re-emits a version
  only once: it remembers what it published, and a restarted process (which
  cannot know whether its last sends were delivered) re-emits once more.
* **Coalescing.** A finding that repeats within ``coalesce_seconds`` of the
  alert's last update adds its event ids to the open alert (new ids first) and
  republishes it with status ``updated``; a ``resolved`` finding closes it.

Examples
--------
>>> from datetime import datetime, timezone
>>> from models.base import Finding
>>> store = {}
>>> alerter = Alerter(store, clock=lambda: datetime(2024, 2, 14, 20, tzinfo=timezone.utc))
>>> f = Finding(detector="duplicate_nik", key="abc", severity="warning", score=0.9,
...             subject_kind="voter", subject_id="3273**********01", summary="NIK registered twice.",
...             evidence={}, event_ids=["e2", "e1"], region={"province": "32"})
>>> first = alerter.publish(f)
>>> first["alert_id"], first["status"]
('duplicate_nik-0d474ded3c72de9f8e0f', 'open')
>>> Alerter(store).publish(f) == first   # reprocessed after a restart: the same alert again
True
>>> alerter.publish(f) is None           # this process already published it
True
>>> f.event_ids = ["e3", "e1"]
>>> again = alerter.publish(f)
>>> again["status"], again["event_ids"], again["alert_id"] == first["alert_id"]
('updated', ['e3', 'e1', 'e2'], True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any

from models.base import Finding

SCHEMA = "alert.v1"


def alert_id(detector: str, key: str) -> str:
    """The alert id of finding ``key`` of ``detector``: same inputs, same id."""
    digest = hashlib.sha256(f"{detector}|{key}".encode()).hexdigest()[:20]
    return f"{detector}-{digest}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Alerter:
    """Build, coalesce and remember alerts.

    Parameters
    ----------
    store
        Alert id -> last published alert (plain JSON-serialisable dict).
    coalesce_seconds
        A finding repeating within this long of its alert's last update updates
        that alert; later, it reopens it with a new revision.
    clock
        Wall clock for ``detected_at`` (injectable for tests).
    max_event_ids
        Most event ids one alert lists; beyond it the oldest are dropped and
        ``evidence.event_ids_total`` keeps the count.
    """

    def __init__(
        self,
        store: MutableMapping[str, Any],
        coalesce_seconds: float = 86400,
        clock: Callable[[], datetime] = _utcnow,
        max_event_ids: int = 200,
        remember: int = 100_000,
    ) -> None:
        self.store = store
        self.coalesce_seconds = coalesce_seconds
        self.clock = clock
        self.max_event_ids = max_event_ids
        self.remember = remember
        # (alert id, revision) published by this process, oldest first (bounded).
        self._published: dict[tuple[str, int], None] = {}

    def publish(self, finding: Finding) -> dict[str, Any] | None:
        """The alert to publish for ``finding``, or None when there is nothing new to say.

        None for a ``resolved`` finding with no open alert, and for a finding
        this process has already published in this version.
        """
        aid = alert_id(finding.detector, finding.key)
        previous = self.store.get(aid)
        now = self.clock()
        if finding.status == "resolved":
            if previous is None or previous["status"] == "resolved":
                return None
            alert = self._build(aid, finding, now, previous, status="resolved")
        elif previous is None:
            alert = self._build(aid, finding, now, None, status="open")
        elif previous["status"] != "resolved" and self._already_told(finding, previous):
            # already told: republish unchanged, unless this process did already
            version = (aid, previous.get("revision", 0))
            if version in self._published:
                return None
            self._remember(version)
            return previous
        elif previous["status"] != "resolved" and self._within_window(previous, now):
            alert = self._build(aid, finding, now, previous, status="updated")
        else:
            alert = self._build(aid, finding, now, previous, status="open")
        self.store[aid] = alert  # assign: a changelog-backed table only sees assignments
        self._remember((aid, alert["revision"]))
        return alert

    def _remember(self, version: tuple[str, int]) -> None:
        self._published[version] = None
        if len(self._published) > self.remember:
            del self._published[next(iter(self._published))]

    @staticmethod
    def _already_told(finding: Finding, previous: dict[str, Any]) -> bool:
        """The open alert already says everything this finding says (a reprocessed event)."""
        if not set(finding.event_ids) <= set(previous["event_ids"]):
            return False
        if finding.window is not None and previous.get("window"):
            # a finding without records (a volume series) tells something new when its window grew
            return finding.window[1] <= datetime.fromisoformat(previous["window"]["end"])
        return True

    def _within_window(self, previous: dict[str, Any], now: datetime) -> bool:
        updated = datetime.fromisoformat(previous["detected_at"])
        return (now - updated).total_seconds() <= self.coalesce_seconds

    def _build(
        self, aid: str, f: Finding, now: datetime, previous: dict[str, Any] | None, status: str
    ) -> dict[str, Any]:
        event_ids = list(dict.fromkeys(f.event_ids))
        evidence = dict(f.evidence)
        if previous is not None and status != "open":
            event_ids += [e for e in previous["event_ids"] if e not in event_ids]
        if len(event_ids) > self.max_event_ids:
            evidence["event_ids_total"] = len(event_ids)
            event_ids = event_ids[: self.max_event_ids]
        window = None
        if f.window is not None:
            start = f.window[0]
            if previous is not None and previous.get("window") and status != "open":
                start = min(start, datetime.fromisoformat(previous["window"]["start"]))
            window = {"start": _iso(start), "end": _iso(f.window[1])}
        return {
            "schema": SCHEMA,
            "alert_id": aid,
            "detector": f.detector,
            "kind": f.kind,
            "severity": f.severity,
            "score": round(min(1.0, max(0.0, float(f.score))), 6),
            "subject": {"kind": f.subject_kind, "id": f.subject_id},
            "region": f.region,
            "window": window,
            "summary": f.summary,
            "evidence": evidence,
            "event_ids": event_ids,
            "occurred_at": _iso(f.occurred_at),
            "detected_at": now.isoformat(),
            "status": status,
            "revision": 0 if previous is None else previous.get("revision", 0) + 1,
        }
