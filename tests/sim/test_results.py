"""TPS tallies: realistic and consistent when legitimate, broken as labelled when not."""

from __future__ import annotations

import statistics

from sim.results import tally_problems


def _registered(v):
    r = v["registered"]
    return r["dpt"] + (r["dptb"] or 0) + (r["dpk"] or 0)


def test_legit_tallies_are_consistent_and_realistic(out):
    legit = out.legit("results")
    assert len(legit) >= 60
    turnouts = []
    for e in legit:
        v = e.value
        assert tally_problems(v) == [], v
        assert v["registered"]["dpt"] <= 300 and v["voters"] <= _registered(v)
        assert sum(v["registered_by_sex"].values()) == v["registered"]["dpt"]
        assert sum(v["voters_by_sex"].values()) == v["voters"]
        assert set(v["votes"]) == {"01", "02", "03"}
        assert v["submitted_at"].startswith(("2024-02-14", "2024-02-15", "2024-02-16", "2024-02-17"))
        turnouts.append(v["voters"] / max(1, _registered(v)))
    assert 0.74 < statistics.mean(turnouts) < 0.86 and statistics.pstdev(turnouts) > 0.02
    invalid = sum(e.value["invalid"] for e in legit) / sum(e.value["voters"] for e in legit)
    assert 0.01 < invalid < 0.035
    evening = sum(e.at.date().isoformat() == "2024-02-14" and e.at.hour >= 17 for e in legit)
    assert evening > 0.5 * len(legit)


def test_dpt_matches_the_voter_list(out, default_sim):
    dpt = {}
    for p in default_sim.registered.values():
        dpt[p.tps] = dpt.get(p.tps, 0) + 1
    for e in out.results:
        assert e.value["registered"]["dpt"] == dpt.get(e.key, 0)


def test_lookalikes_dptb_above_dpt_and_unchanged_revisions(out):
    legit = out.legit("results")
    assert any(e.value["voters"] > e.value["registered"]["dpt"] for e in legit), "DPTb voters above DPT"
    rev0 = {(e.key, e.value["contest"]): e.value for e in out.results if e.value["revision"] == 0}
    same = [e for e in legit if e.value["revision"] == 1
            and e.value["votes"] == rev0[(e.key, e.value["contest"])]["votes"]]
    assert same, "a re-upload with unchanged figures is not a finding"


def test_tally_arithmetic(out):
    kinds = set()
    for lb in out.of("tally_arithmetic"):
        v = out.by_id[lb["event_ids"][0]].value
        problems = tally_problems(v)
        assert problems
        kinds |= set(problems)
    assert {"sum_mismatch", "valid_invalid_mismatch", "over_registered", "over_cap"} <= kinds


def _fixes_by_one_hundreds_digit(v) -> bool:
    figures = [("votes", k) for k in v["votes"]] + [("valid", None), ("voters", None), ("invalid", None)]
    for where, k in figures:
        old = v["votes"][k] if where == "votes" else v[where]
        h = (old // 100) % 10
        for d in range(10):
            if d == h:
                continue
            w = {**v, "votes": dict(v["votes"])}
            if where == "votes":
                w["votes"][k] = old + (d - h) * 100
            else:
                w[where] = old + (d - h) * 100
            if min(w["votes"].values()) >= 0 and not [p for p in tally_problems(w)
                                                       if p in ("sum_mismatch", "valid_invalid_mismatch")]:
                return True
    return False


def test_ocr_misread_is_one_hundreds_digit(out):
    labels = out.of("ocr_misread")
    assert labels
    for lb in labels:
        v = out.by_id[lb["event_ids"][0]].value
        assert tally_problems(v)
        assert _fixes_by_one_hundreds_digit(v)
        assert "tally_arithmetic" in {x["detector"] for x in out.by_id[lb["event_ids"][0]].labels}
    # Plain arithmetic errors are not explainable by one misread digit.
    for lb in out.of("tally_arithmetic"):
        if lb["kind"] in ("sum_mismatch", "valid_invalid_mismatch"):
            assert not _fixes_by_one_hundreds_digit(out.by_id[lb["event_ids"][0]].value)


def test_revision_changes_figures(out):
    labels = out.of("revision")
    assert labels
    for lb in labels:
        new, old = (out.by_id[e].value for e in lb["event_ids"])
        assert new["tps"] == old["tps"] and new["revision"] > old["revision"]
        assert new["votes"] != old["votes"]
        assert tally_problems(new) == []


def test_peer_outlier(out):
    labels = [lb for lb in out.of("peer_outlier") if lb["kind"] == "full_turnout_one_candidate"]
    assert labels
    for lb in labels:
        v = out.by_id[lb["event_ids"][0]].value
        assert tally_problems(v) == []
        assert v["voters"] >= 0.97 * _registered(v)
        assert max(v["votes"].values()) >= 0.95 * v["valid"]
        peers = [e.value for e in out.legit("results") if e.value["region"]["district"] == v["region"]["district"]]
        assert peers and all(max(p["votes"].values()) < 0.95 * p["valid"] for p in peers)
