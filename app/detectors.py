"""Which detectors run, built from settings: the one place that lists them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.settings import Settings


@dataclass
class Built:
    registration: list[Any] = field(default_factory=list)
    result: list[Any] = field(default_factory=list)
    regency: list[Any] = field(default_factory=list)
    person_block: Any = None
    household: Any = None
    volume: Any = None
    feedback: list[Callable[[dict, bool], bool]] = field(default_factory=list)


def _optional(module: str, name: str) -> Any:
    """A detector class whose module may not have landed yet (None if absent)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def build_detectors(settings: Settings, stores: Callable[[str], Any]) -> Built:
    from models.duplicate_nik import NikDuplicateDetector
    from models.duplicate_person import PersonDuplicateDetector
    from models.eligibility import Eligibility
    from models.household import Household
    from models.nik_integrity import NikIntegrity
    from models.ocr_misread import OcrMisread
    from models.peer_outlier import PeerOutlier
    from models.revision import Revision
    from models.tally_arithmetic import TallyArithmetic

    s, secret = settings, settings.secret
    built = Built()
    # Stage 1, partitioned by NIK.
    built.registration = [
        NikDuplicateDetector(stores("nik_index"), secret),
        NikIntegrity(secret, reference_date=s.polling_day),
        Eligibility(secret, stores("eligibility_regions"), polling_day=s.polling_day),
    ]
    heaping = _optional("models.birthdate_heaping", "BirthdateHeaping")
    if heaping is not None:
        built.registration.append(heaping(secret, stores("heaping_regions")))
    # Stage 1, partitioned by TPS.
    built.result = [
        TallyArithmetic(cap=s.tps_cap, reserve_rate=s.ballot_reserve, state=stores("tally_state")),
        OcrMisread(cap=s.tps_cap, reserve_rate=s.ballot_reserve),
        Revision(stores("revisions"), cap=s.tps_cap, reserve_rate=s.ballot_reserve),
    ]
    # Stage 2: re-keyed by blocking key, household and regency.
    person = PersonDuplicateDetector(stores("person_blocks"), secret, threshold=s.duplicate_threshold)
    built.person_block = person
    built.household = Household(secret, stores("households"))
    built.regency = [PeerOutlier(stores("peers"), cap=s.tps_cap, reserve_rate=s.ballot_reserve)]
    forensics = _optional("models.digit_forensics", "DigitForensics")
    if forensics is not None:
        built.regency.append(forensics(stores("forensics")))
    monitor = _optional("models.volume_monitor", "VolumeMonitor")
    if monitor is not None:
        built.volume = monitor(bucket_seconds=s.volume_bucket_seconds, threshold=s.volume_threshold,
                               critical_threshold=s.volume_critical_threshold)

    def learn_duplicate(alert: dict, is_true: bool) -> bool:
        features = (alert.get("evidence") or {}).get("features")
        if alert.get("detector") != "duplicate_person" or not features:
            return False
        person.learn_feedback(features, is_true)
        return True

    built.feedback.append(learn_duplicate)
    return built
