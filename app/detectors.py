"""Which detectors run, built from settings: the one place that lists them."""

from __future__ import annotations

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


def make_volume_monitor(settings: Settings) -> Any:
    from models.volume_monitor import VolumeMonitor

    # Counts from the worker's input partitions: every one is waited for
    # (partitions without a count turn idle after five minutes).
    return VolumeMonitor(bucket_seconds=settings.volume_bucket_seconds, threshold=settings.volume_threshold,
                         critical_threshold=settings.volume_critical_threshold, partitions=settings.partitions)


def build_detectors(settings: Settings, stores: Callable[[str], Any]) -> Built:
    from models.birthdate_heaping import BirthdateHeaping
    from models.digit_forensics import DigitForensics
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
    built.registration.append(BirthdateHeaping(secret, stores("heaping_regions")))
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
    built.regency.append(DigitForensics(stores("forensics")))
    built.volume = make_volume_monitor(s)

    def learn_duplicate(alert: dict, is_true: bool) -> bool:
        features = (alert.get("evidence") or {}).get("features")
        if alert.get("detector") != "duplicate_person" or not features:
            return False
        person.learn_feedback(features, is_true)
        return True

    built.feedback.append(learn_duplicate)
    return built
