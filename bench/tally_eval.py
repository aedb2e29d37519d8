"""Evaluate the tally detectors on real Sirekap 2024 records and on seeded synthetic faults.

Run: ``.venv/bin/python -m bench.tally_eval [--sample PATH] [--seed N] [--villages N]``

Part 1 (real data, ``data/sirekap2024-sample``): how many records convert to
``result.v1``, the README's counts re-derived from the raw records, arithmetic
errors by rule, how many tallies each detector flags, and how many CLEAN
tallies (no arithmetic rule broken) each detector alerts on (false alarms).
It fails (exit 1) if any tally with an arithmetic error is not flagged.

Part 2 (synthetic, seeded): clean tallies for villages of several regencies,
some villages legitimately at ~95 % turnout and many TPS with DPTb/DPK voters
above DPT, then injected faults of each kind; per-detector precision/recall.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict

from app.sirekap import DEFAULT_SAMPLE, SirekapRecordError, convert, iter_sample
from models.digit_forensics import DigitForensics
from models.ocr_misread import OcrMisread, one_digit_edits
from models.peer_outlier import PeerOutlier
from models.revision import Revision
from models.tally_arithmetic import TallyArithmetic, check_tally

DETECTORS = ("tally_arithmetic", "ocr_misread", "revision", "peer_outlier", "digit_forensics")


def make_detectors(digit_every: int = 100, digit_min: int = 100) -> dict:
    return {
        "tally_arithmetic": TallyArithmetic(state={}),
        "ocr_misread": OcrMisread(),
        "revision": Revision({}),
        "peer_outlier": PeerOutlier({}),
        "digit_forensics": DigitForensics({}, every=digit_every, min_tps=digit_min),
    }


def run(detectors: dict, events: list[dict]) -> tuple[dict, dict, list]:
    """Feed events in order; return open-flagged event ids per detector, timings, all findings."""
    flagged: dict[str, set] = defaultdict(set)
    resolved: dict[str, set] = defaultdict(set)
    seconds: dict[str, float] = defaultdict(float)
    findings = []
    for ev in events:
        for name, det in detectors.items():
            t = time.perf_counter()
            out = det.process_one(ev)
            seconds[name] += time.perf_counter() - t
            for f in out:
                findings.append(f)
                target = flagged if f.status == "open" else resolved
                # Tally findings are about their first event; region findings too (the trigger).
                target[name].add(f.event_ids[0])
    # peer_outlier re-judges: a TPS resolved after more peers arrived no longer counts as flagged.
    for name in flagged:
        last_status = {}
        for f in findings:
            if f.detector == name:
                last_status[f.event_ids[0]] = f.status
        flagged[name] = {e for e in flagged[name] if last_status.get(e) == "open"}
    return flagged, seconds, findings


def real(sample: str) -> bool:
    print(f"== Sirekap 2024 sample: {sample}")
    raw = list(iter_sample(sample))
    events, reasons = [], Counter()
    readme = Counter()
    all_dpt_came = set()
    for tps, rec in raw:
        ch, ad = rec.get("chart") or {}, rec.get("administrasi")
        votes = [ch.get(k) for k in ("100025", "100026", "100027")]
        if ad and all(v is not None for v in votes):
            readme["both votes and admin"] += 1
            readme["candidate sum != suara_sah"] += sum(votes) != ad["suara_sah"]
            readme["candidate above 300"] += max(votes) > 300
            readme["DPT 0"] += ad["pemilih_dpt_j"] == 0
            readme["suara_total != pengguna_total_j"] += ad["suara_total"] != ad["pengguna_total_j"]
            readme["every DPT voter came (pengguna_dpt_j == pemilih_dpt_j > 0)"] += (
                ad["pengguna_dpt_j"] == ad["pemilih_dpt_j"] > 0)
        try:
            events.append(convert(tps, rec))
        except SirekapRecordError as e:
            reasons[e.reason] += 1
            continue
        if ad["pengguna_dpt_j"] == ad["pemilih_dpt_j"] > 0:
            all_dpt_came.add(events[-1]["event_id"])
    print(f"records: {len(raw)} (distinct TPS {len({t for t, _ in raw})}); converted: {len(events)}; "
          f"not convertible: {dict(reasons)}")
    print("README figures re-derived from the raw records:")
    for k, v in readme.items():
        print(f"  {k}: {v}")

    events.sort(key=lambda e: (e["submitted_at"], e["tps"]))
    by_rule = Counter()
    broken_ids = set()
    for ev in events:
        rules = [b.rule for b in check_tally(ev)]
        by_rule.update(rules)
        if rules:
            broken_ids.add(ev["event_id"])
    print(f"tallies with an arithmetic error: {len(broken_ids)} of {len(events)}; by rule: {dict(by_rule)}")

    # Regions here are small (912 TPS in one district): evaluate forensics every 100 from 100 TPS.
    flagged, seconds, findings = run(make_detectors(), events)
    clean = {e["event_id"] for e in events} - broken_ids
    print(f"{'detector':18} {'flagged':>8} {'on broken':>10} {'false alarms on clean':>22}  ms/event")
    for name in DETECTORS:
        fl = flagged.get(name, set())
        print(f"{name:18} {len(fl):8d} {len(fl & broken_ids):10d} {len(fl & clean):10d} of {len(clean):<10d} "
              f"{1000 * seconds[name] / max(len(events), 1):8.3f}")
    region = [f for f in findings if f.detector == "digit_forensics" and f.status == "open"]
    print(f"digit_forensics region findings: {[(f.subject_id, f.kind, f.evidence['p_value']) for f in region]}")
    ocr = [f for f in findings if f.detector == "ocr_misread"]
    print(f"ocr_misread suggestions on {len(ocr)} tallies, e.g.: "
          + "; ".join(f"{f.subject_id} {s['field']} {s['seen']}->{s['suggested']}"
                      for f in ocr[:4] for s in f.evidence["suggestions"][:1]))
    # Why a simulated null: the textbook uniform last-digit test on the same clean tallies.
    import numpy as np
    from scipy import stats
    clean_events = [e for e in events if e["event_id"] in clean and e["registered"]["dpt"] > 0]
    rows = [[e["valid"], [e["votes"][c] for c in sorted(e["votes"])], e["voters"],
             sum((e["registered"].get(k) or 0) for k in ("dpt", "dptb", "dpk"))] for e in clean_events]
    res = DigitForensics({}).evaluate(rows, np.random.default_rng(20240214))
    pooled = DigitForensics({}, null="pooled").evaluate(rows, np.random.default_rng(20240214))
    counts = np.array([c for r in rows for c in r[1] if c >= 10])
    uniform_p = stats.chisquare(np.bincount(counts % 10, minlength=10)).pvalue
    print(f"last digit on all {len(rows)} clean tallies pooled: uniform-null p = {uniform_p:.3g}; "
          f"simulated-null p = {res['last_digit']['p_value']} (region-pooled shares, version 1: "
          f"{pooled['last_digit']['p_value']}); second digit simulated-null p = "
          f"{res['second_digit']['p_value']} (version 1: {pooled['second_digit']['p_value']}); "
          f"integer turnout {res['integer_turnout']['observed']} seen vs "
          f"{res['integer_turnout']['expected']} expected (p = {res['integer_turnout']['p_value']}); "
          f"fingerprint {res['fingerprint']['observed']} vs {res['fingerprint']['expected']} expected")
    print(f"the {len(all_dpt_came)} tallies where every DPT voter came: {len(all_dpt_came & clean)} clean; flagged "
          + ", ".join(f"{d} {len(flagged.get(d, set()) & all_dpt_came)}" for d in DETECTORS))
    missed = broken_ids - flagged.get("tally_arithmetic", set())
    print(f"arithmetic errors NOT flagged: {len(missed)}")
    return not missed


# ---------------------------------------------------------------- synthetic


def clean_tally(rnd: random.Random, tps: str, village_turnout: float, shares: list[float], n: int) -> dict:
    dpt = rnd.randint(150, 300)
    dptb = rnd.choice([0, 0, 0, 1, 2, 5, 12])  # moved-in voters: may push voters above DPT
    dpk = rnd.choice([0, 0, 1, 3])
    t = min(1.0, max(0.3, rnd.gauss(village_turnout, 0.03)))
    from_dpt = min(dpt, round(dpt * t))
    voters = from_dpt + dptb + dpk
    invalid = min(voters, rnd.randint(0, 8))
    valid = voters - invalid
    w = [max(1e-3, rnd.gauss(s, 0.04)) for s in shares]
    w = [x / sum(w) for x in w]
    votes = [int(valid * x) for x in w[:-1]]
    votes.append(valid - sum(votes))
    return {"event_id": f"syn-{n:06d}", "submitted_at": f"2024-02-15T{8 + n % 12:02d}:{n % 60:02d}:00+07:00",
            "tps": tps, "region": {"province": tps[:2], "regency": tps[:4], "district": tps[:6], "village": tps[:10]},
            "contest": "PPWP", "revision": 0, "registered": {"dpt": dpt, "dptb": dptb, "dpk": dpk},
            "voters": voters, "votes": {f"0{i + 1}": v for i, v in enumerate(votes)}, "valid": valid,
            "invalid": invalid, "source": "manual", "operator_id": None}


def build_synthetic(seed: int, villages: int) -> dict:
    """Seeded synthetic tallies with injected faults, their labels and what the evaluation needs."""
    rnd = random.Random(seed)
    events, labels, fix = [], {}, {}
    n = 0
    regencies = ["3201", "3202", "3203", "3204"]
    fabricated_regency = "3204"
    high = set()
    for v in range(villages):
        regency = regencies[v % len(regencies)]
        village = f"{regency}{1 + v % 7:02d}{2001 + v:04d}"
        turnout = 0.95 if v % 9 == 0 else rnd.uniform(0.65, 0.85)  # some villages are legitimately at 95 %
        if v % 9 == 0:
            high.add(village)
        a = rnd.uniform(0.15, 0.35)
        b = rnd.uniform(0.35, 0.6)
        shares = [a, b, 1 - a - b]
        for t in range(1, 13):
            n += 1
            ev = clean_tally(rnd, f"{village}{t:03d}", turnout, shares, n)
            if regency == fabricated_regency:
                # Invented figures: candidate counts rounded to tens, the remainder put in invalid votes.
                votes = {c: x // 10 * 10 for c, x in ev["votes"].items()}
                ev["invalid"] += ev["valid"] - sum(votes.values())
                ev["votes"], ev["valid"] = votes, sum(votes.values())
            events.append(ev)
            labels[ev["event_id"]] = set()
    # Inject faults into a sample of the clean tallies, one kind each.
    kinds = ["sum_mismatch", "invalid_mismatch", "over_registered", "cap", "dpt_zero", "ocr_digit",
             "ocr_leading", "revision_change", "lone_outlier"]
    targets = rnd.sample([e for e in events if e["region"]["regency"] != fabricated_regency], 30 * len(kinds))
    extra = []
    lone = set()
    for i, ev in enumerate(targets):
        kind = kinds[i % len(kinds)]
        lab = labels[ev["event_id"]]
        votes = ev["votes"]
        if kind == "sum_mismatch":  # two figures mis-entered
            votes["01"] += rnd.randint(20, 60)
            votes["03"] += rnd.randint(20, 60)
            lab.add("tally_arithmetic")
        elif kind == "invalid_mismatch":
            ev["invalid"] += rnd.randint(15, 60)
            lab.add("tally_arithmetic")
        elif kind == "over_registered":  # consistent ballot stuffing beyond the ballots available
            reg = ev["registered"]
            limit = reg["dpt"] + reg["dptb"] + reg["dpk"] + -(-reg["dpt"] * 2 // 100)
            add = limit - ev["voters"] + rnd.randint(1, 40)
            ev["voters"] += add
            ev["valid"] += add
            votes["02"] += add
            lab |= {"tally_arithmetic", "peer_outlier"}   # it adds up, so peers judge its turnout > 100 %
        elif kind == "cap":  # a candidate above the cap, the form made to add up
            reg = ev["registered"]
            add = 300 + reg["dptb"] + reg["dpk"] + rnd.randint(1, 50) - votes["02"]
            votes["02"] += add
            ev["valid"] += add
            ev["voters"] += add
            lab |= {"tally_arithmetic", "peer_outlier"}
        elif kind == "dpt_zero":
            ev["registered"] = {"dpt": 0, "dptb": 0, "dpk": 0}
            lab.add("tally_arithmetic")
        elif kind in ("ocr_digit", "ocr_leading"):
            c = rnd.choice(sorted(votes))
            true = votes[c]
            choices = [(x, k) for x, k in one_digit_edits(true)
                       if (k == "substitute" and str(x)[0] != str(true)[0] and len(str(x)) == len(str(true)))
                       or (kind == "ocr_leading" and k == "insert_leading")]
            if kind == "ocr_leading":
                choices = [(x, k) for x, k in choices if k == "insert_leading"]
            votes[c] = rnd.choice(choices)[0]
            fix[ev["event_id"]] = (f"votes.{c}", true)
            lab |= {"tally_arithmetic", "ocr_misread"}
        elif kind == "revision_change":
            rev = dict(ev, event_id=ev["event_id"] + "-r1", revision=1, votes=dict(votes))
            moved = rnd.randint(5, 30)
            take = min(moved, rev["votes"]["01"])
            rev["votes"]["01"] -= take
            rev["votes"]["02"] += take
            same = dict(ev, event_id=ev["event_id"] + "-r2", revision=2, votes=dict(rev["votes"]))
            stale = dict(ev, event_id=ev["event_id"] + "-r0late", revision=0)
            labels[rev["event_id"]] = {"revision"}
            labels[same["event_id"]] = set()  # a re-upload with the same figures: not a finding
            labels[stale["event_id"]] = set()  # revision 0 delivered late: not a finding
            extra.append((ev, [rev, same, stale]))
        elif kind == "lone_outlier":
            reg = ev["registered"]["dpt"] + (ev["registered"].get("dptb") or 0) + (ev["registered"].get("dpk") or 0)
            ev["voters"] = reg
            ev["invalid"] = 0
            ev["valid"] = reg
            ev["votes"] = {"01": 0, "02": reg, "03": 0}
            lab.add("peer_outlier")
            lone.add(ev["event_id"])
    for ev, later in extra:
        i = events.index(ev)
        events[i + 1:i + 1] = later
    # Arrival order: shuffled within the day, as uploads come in.
    order = events[:]
    rnd.shuffle(order)
    # Keep each TPS's revisions in their intended relative order (the late revision 0 after r2).
    pos = {id(e): i for i, e in enumerate(order)}
    for ev, later in extra:
        slots = sorted(pos[id(x)] for x in [ev] + later)
        for s, x in zip(slots, [ev] + later):
            order[s] = x
    stuffed = Counter(e["region"]["regency"] for e in events if e["event_id"] in lone)
    return {"order": order, "labels": labels, "fix": fix, "high": high, "fabricated": fabricated_regency,
            "stuffed": stuffed}


def synthetic(seed: int, villages: int) -> None:
    print(f"\n== Synthetic tallies (seed {seed}, {villages} villages of 12 TPS in 4 regencies)")
    syn = build_synthetic(seed, villages)
    order, labels, fix, high = syn["order"], syn["labels"], syn["fix"], syn["high"]
    fabricated_regency = syn["fabricated"]
    flagged, seconds, findings = run(make_detectors(digit_every=60, digit_min=60), order)
    print(f"tallies: {len(order)} ({sum(1 for l in labels.values() if l)} with injected faults)")
    print(f"{'detector':18} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>10} {'recall':>8}")
    for name in ("tally_arithmetic", "ocr_misread", "revision", "peer_outlier"):
        fl = flagged.get(name, set())
        pos_ids = {e for e, l in labels.items() if name in l}
        tp, fp, fn = len(fl & pos_ids), len(fl - pos_ids), len(pos_ids - fl)
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        print(f"{name:18} {tp:5d} {fp:5d} {fn:5d} {prec:10.3f} {rec:8.3f}")
    good = 0
    for f in findings:
        if f.detector == "ocr_misread" and f.event_ids[0] in fix:
            s = f.evidence["suggestions"][0]
            good += (s["field"], s["suggested"]) == fix[f.event_ids[0]]
    listed = sum(any((s["field"], s["suggested"]) == fix[f.event_ids[0]] for s in f.evidence["suggestions"])
                 for f in findings if f.detector == "ocr_misread" and f.event_ids[0] in fix)
    print(f"ocr_misread: top suggestion restores the true figure in {good} of {len(fix)} injected misreads; "
          f"listed among the suggestions in {listed}")
    by_test = defaultdict(set)
    for f in findings:
        if f.detector == "digit_forensics" and f.status == "open":
            by_test[f.kind].add(f.subject_id)
    stuffed = {r for r, k in syn["stuffed"].items() if k >= 5}
    print(f"digit_forensics by test (regions flagged): {dict((k, sorted(v)) for k, v in by_test.items())}")
    for tests, truth, what in ((("last_digit", "second_digit"), {fabricated_regency}, "fabricated round counts"),
                               (("fingerprint",), stuffed, ">= 5 stuffed TPS (100 % turnout, 100 % one candidate)"),
                               (("integer_turnout",), set(), "nothing injected")):
        got = set().union(*(by_test.get(t, set()) for t in tests))
        tp = len(got & truth)
        prec = tp / len(got) if got else float("nan")
        rec = tp / len(truth) if truth else float("nan")
        print(f"  {'+'.join(tests):24} truth {sorted(truth)} ({what}); flagged {sorted(got)}; "
              f"precision {prec:.3f} recall {rec:.3f}")
    hi = {e["event_id"] for e in order if e["region"]["village"] in high and not labels.get(e["event_id"])}
    print(f"peer_outlier on clean TPS of the {len(high)} villages at ~95 % turnout: "
          f"{len(flagged.get('peer_outlier', set()) & hi)} of {len(hi)} flagged")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default=str(DEFAULT_SAMPLE))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--villages", type=int, default=120)
    args = ap.parse_args(argv)
    ok = real(args.sample)
    synthetic(args.seed, args.villages)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
