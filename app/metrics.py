"""The project's Prometheus metrics, in their own registry (beside Faust's).

Names and labels follow ``docs/contracts.md``: prefix ``pantau_``, base units,
counters end in ``_total``, labels from small fixed sets only (never TPS
codes, NIKs, names or event ids). Free-form values are folded into a fixed set
before they become labels (:func:`province_label`, :func:`source_label`).
"""

from __future__ import annotations

from datetime import date

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SOURCES = frozenset({"coklit", "online", "dukcapil", "manual", "sirekap"})
AGE_BANDS = ((17, 20), (21, 30), (31, 40), (41, 50), (51, 60), (61, 70))
_PROVINCES = None


def _known_provinces() -> frozenset[str]:
    global _PROVINCES
    if _PROVINCES is None:
        from lokal import PROVINCES

        _PROVINCES = frozenset(PROVINCES)
    return _PROVINCES


def province_label(region: dict | None) -> str:
    """A 2-digit Kemendagri province code, or ``unknown``."""
    code = (region or {}).get("province")
    return code if code in _known_provinces() else "unknown"


def source_label(source: str | None) -> str:
    return source if source in SOURCES else "other"


def age_band(birth: str | None, on: date) -> str:
    """The age band on ``on`` for a YYYY-MM-DD birth date (``unknown`` when absent)."""
    if not birth:
        return "unknown"
    try:
        born = date.fromisoformat(birth)
    except ValueError:
        return "unknown"
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "71+" if age > 70 else "under-17"


class Metrics:
    """Every metric the worker and replay export, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("pantau_events", "Events consumed, by stream and outcome.", ["stream", "outcome"], registry=r)
        self.events_by_region = Counter(
            "pantau_events_by_region", "Valid events by stream, province and source.",
            ["stream", "province", "source"], registry=r,
        )
        self.dead_letters = Counter(
            "pantau_dead_letters", "Events sent to the dead-letter topic, by reason.", ["stream", "reason"], registry=r
        )
        self.alerts = Counter(
            "pantau_alerts", "Alerts published (open, updated, resolved).",
            ["detector", "severity", "province", "status"], registry=r,
        )
        self.findings = Counter(
            "pantau_findings", "Findings before coalescing, by detector and severity.", ["detector", "severity"], registry=r
        )
        # Buckets from 5 ms (a rule on a fresh event) to 1 h (a volume bucket
        # that closes after its window): event time to alert spans both.
        self.event_to_alert = Histogram(
            "pantau_event_to_alert_seconds", "Time from an event's own timestamp to its alert being published.",
            ["detector"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        self.processing = Histogram(
            "pantau_processing_seconds", "Time to validate and run the detectors on one event.", ["stream"],
            registry=r, buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        self.consumer_lag = Gauge(
            "pantau_consumer_lag_messages",
            "Messages behind the end of the input partitions this worker owns (approximate on the embedded broker).",
            ["stream"], registry=r,
        )
        self.last_event = Gauge(
            "pantau_last_event_timestamp_seconds", "Wall-clock time the last valid event of a stream was processed.",
            ["stream"], registry=r,
        )
        self.ready = Gauge("pantau_ready", "1 when partitions are assigned and tables recovered.", registry=r)
        self.broker_up = Gauge("pantau_broker_up", "1 while the broker is reachable.", registry=r)
        self.broker_disconnects = Counter(
            "pantau_broker_disconnects", "Times the broker became unreachable.", registry=r
        )
        self.refetches = Counter(
            "pantau_partition_refetches",
            "Times a partition was fetched again from offsets a rebalance left unprocessed.", ["stream"], registry=r,
        )
        self.log_gap_offsets = Counter(
            "pantau_log_gap_offsets",
            "Offsets committed over because the log does not hold them (deleted, compacted, transaction markers).",
            ["stream"], registry=r,
        )
        self.volume_score = Gauge(
            "pantau_volume_score", "Latest volume anomaly score of the province series.", ["stream", "province"], registry=r
        )
        self.volume_expected = Gauge(
            "pantau_volume_expected", "Events the volume model expected in the last closed bucket.",
            ["stream", "province"], registry=r,
        )
        self.volume_observed = Gauge(
            "pantau_volume_observed", "Events seen in the last closed bucket.", ["stream", "province"], registry=r
        )
        self.index_entries = Gauge(
            "pantau_duplicate_index_entries", "Entries in the duplicate indexes held by this worker.", ["index"], registry=r
        )
        self.name_counts = Gauge(
            "pantau_duplicate_name_counts",
            "Names and name words in this worker's name-frequency sketch (every worker's registrations).",
            registry=r,
        )
        self.verdicts_learned = Counter(
            "pantau_feedback_learned",
            "Staff verdicts this worker's duplicate scorer learned (every worker's feedback, read back after a restart).",
            registry=r,
        )
        self.write_behind_held = Gauge(
            "pantau_write_behind_held_events",
            "Events processed whose table values wait in memory for the next offset commit, unacked until then.",
            ["agent"], registry=r,
        )
        self.rocksdb_memory = Gauge(
            "pantau_rocksdb_memory_bytes", "RocksDB memory of this worker's tables, against its shared budget.",
            ["kind"], registry=r,
        )
        self.tally_registered = Counter(
            "pantau_tally_registered", "Registered voters (DPT+DPTb+DPK) of first-upload tallies.",
            ["province", "contest", "sex"], registry=r,
        )
        self.tally_voters = Counter(
            "pantau_tally_voters", "Voters who used their right, of first-upload tallies.",
            ["province", "contest", "sex"], registry=r,
        )
        self.registrations = Counter(
            "pantau_registrations", "Registration events by province, sex, age band and action.",
            ["province", "sex", "age_band", "action"], registry=r,
        )
        for stream in ("registrations", "results", "feedback"):
            for outcome in ("processed", "dead_letter", "rekeyed"):
                self.events.labels(stream, outcome)
        self.ready.set(0)
        self.broker_up.set(0)

    def observe_registration(self, event: dict, polling_day: date) -> None:
        voter = event["voter"]
        sex = voter.get("sex") if voter.get("sex") in ("L", "P") else "unknown"
        self.registrations.labels(
            province_label(event["region"]), sex, age_band(voter.get("birth_date"), polling_day), event["action"]
        ).inc()

    def observe_result(self, event: dict) -> None:
        if event.get("revision", 0) != 0:
            return  # participation counts first uploads only, so revisions do not double them
        province = province_label(event["region"])
        contest = event["contest"]
        reg = event["registered"]
        registered = reg["dpt"] + (reg.get("dptb") or 0) + (reg.get("dpk") or 0)
        self.tally_registered.labels(province, contest, "all").inc(registered)
        self.tally_voters.labels(province, contest, "all").inc(event["voters"])
        by_sex_reg, by_sex_vot = event.get("registered_by_sex") or {}, event.get("voters_by_sex") or {}
        for sex in ("L", "P"):
            if sex in by_sex_reg and sex in by_sex_vot:
                self.tally_registered.labels(province, contest, sex).inc(by_sex_reg[sex])
                self.tally_voters.labels(province, contest, sex).inc(by_sex_vot[sex])
