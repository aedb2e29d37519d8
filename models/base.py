"""What every detector returns, and the small contract detectors share.

Detectors come in two shapes, both small and uniform:

* **Online models** (River style): ``learn_one(x)`` and ``score_one(x) -> float``
  in [0, 1], higher meaning more anomalous. ``models.volume.VolumeModel`` is one.
* **Record detectors**: ``process_one(event) -> list[Finding]`` over one
  validated event (a ``registration.v1`` or ``result.v1`` dict). Stateful ones
  take their state store as a constructor argument: any ``MutableMapping``
  (a ``dict`` in ``replay`` and tests, a Faust table in the worker), and they
  *assign* values back rather than mutating them in place, so a changelog-backed
  table sees every write.

Every hyperparameter is a constructor argument stored under the same name.
Detectors never see Faust or Kafka, and never put raw NIKs or names in a
``Finding``: use :func:`models.privacy.mask_nik` and keyed hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SubjectKind = Literal["voter", "tps", "household", "region", "series"]

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


@dataclass(slots=True)
class Finding:
    """One thing a detector found, before the alerter turns it into an ``alert.v1``.

    Parameters
    ----------
    detector
        Detector name, from a small fixed set (it becomes a metric label).
    key
        Stable identity of *what* was found, free of raw personal data (use a
        keyed hash). The alert id is derived from ``(detector, key)``: the same
        finding always gets the same id, and a finding that repeats with the
        same key updates the open alert instead of adding one.
    severity
        ``info``, ``warning`` or ``critical``.
    score
        Strength in [0, 1].
    subject_kind, subject_id
        What the alert is about: a TPS code, a masked NIK, a series name, ...
    summary
        One human sentence, without raw personal data.
    evidence
        JSON-serialisable: what was expected and what was seen, which fields
        agreed and differed, model name and version.
    event_ids
        The records involved (for a duplicate: the new record first).
    region
        ``{"province": .., "regency": .., "district": .., "village": ..}`` codes.
    occurred_at
        Event time of the triggering event (drives the latency metric).
    window
        ``(start, end)`` where the finding covers a time window.
    status
        ``open`` for a new or continuing finding, ``resolved`` when a detector
        knows that a finding has ended (e.g. a volume anomaly is over).
    kind
        Sub-kind within the detector (``sum_mismatch``, ``spike``, ...).

    Examples
    --------
    >>> f = Finding(detector="tally_arithmetic", key="3273011001001:PPWP:sum_valid",
    ...             severity="critical", score=1.0, subject_kind="tps",
    ...             subject_id="3273011001001", summary="Candidate votes add up to 210, valid votes say 200.",
    ...             evidence={"expected": 200, "seen": 210}, event_ids=["e1"])
    >>> f.province
    >>> f.region = {"province": "32"}
    >>> f.province
    '32'
    """

    detector: str
    key: str
    severity: Severity
    score: float
    subject_kind: SubjectKind
    subject_id: str
    summary: str
    evidence: dict[str, Any]
    event_ids: list[str]
    region: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    window: tuple[datetime, datetime] | None = None
    status: Literal["open", "resolved"] = "open"
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def province(self) -> str | None:
        """Province code of the finding's region, if known."""
        return (self.region or {}).get("province")
