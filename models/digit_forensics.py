"""Region-level election-forensic signals: digit tests and the turnout/vote-share fingerprint.

These are statistical signals about a regency's tallies as a whole, never proof
of anything about one TPS: every finding is ``info`` and its evidence says so.

Tests, each against a null that respects the data rather than a textbook one:

* ``last_digit``: last digits of candidate counts (counts >= 10). Counts are
  capped near 300 per TPS and vary in size, so a uniform last digit is not
  guaranteed on clean data; the null redraws every TPS's counts from that
  TPS's own vote shares and total (multinomial, seeded) and the observed
  chi-square is ranked among the simulated ones. The expected digit
  frequencies come from a separate pilot simulation, so the observed and the
  ranked statistics are exchangeable under the null.
* ``second_digit``: the same for second digits, whose expected frequencies are
  taken from the same simulation (Benford's second-digit law does not hold
  for counts this small).
* ``integer_turnout``: share of TPS whose turnout is an exact integer percent
  (Kobak et al. 2016). Null: voters redrawn Binomial(registered, that TPS's
  turnout), keeping each TPS's size, so small TPS where integers are likely
  are accounted for.
* ``fingerprint``: share of TPS with both turnout and the winner's share above
  0.9 (Klimek et al. 2012). Null: turnout and winner share drawn independently
  from normal fits on the logit scale (median/MAD: robust to the corner being
  tested), expected count = N x P(t > .9) x P(w > .9); Poisson tail.

Why each TPS's own shares (``null="own"``, model version 2) and not the
region's pooled shares (``null="pooled"``, version 1): villages vote
differently (strongholds), so the counts of a real regency are spread far
wider than one set of shares gives, and the second digit, which follows the
counts' sizes, departs from a pooled-share null on honest data. On clean
synthetic regencies of 1,000 TPS with village shares drawn around the
regency's (Dirichlet, concentration 5) the pooled null flagged the second
digit in 9-11 of 20 and the last digit in up to 4 of 20 at alpha = 0.002; the
own-share null flagged none, with the same power against rounded counts
(``bench.digit_eval``, docs/detectors.md).

Simulated p-values are sequential (Besag and Clifford 1991): simulations are
drawn in batches and a test stops once ``stop_after`` of them reach the
observed statistic. Its p-value is then at least ``(1 + stop_after) / (n_sim +
1)`` had all ``n_sim`` been drawn, above ``alpha``, so the decision is the one
the full simulation would take; clean regions (almost all) stop after a few
dozen draws instead of ``n_sim``.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import numpy as np
from scipy.special import ndtr, pdtrc  # norm.sf / poisson.sf without importing scipy.stats

from models.base import Finding
from models.tally_arithmetic import check_tally, registered_total

__all__ = ["DigitForensics", "CAVEAT"]

CAVEAT = ("Statistical signal about the region's tallies as a whole, not proof of manipulation: "
          "digit and turnout patterns also arise from honest data (small or uniform TPS, "
          "strongholds, OCR errors). Use it to choose where to look, never as evidence against a TPS.")


def _when(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["submitted_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _digit(counts: np.ndarray, which: str) -> np.ndarray:
    """The last or the second (from the left) digit of each count."""
    if which == "last":
        return counts % 10
    # Second digit from the left: divide by 10**(ndigits - 2).
    nd = np.floor(np.log10(np.maximum(counts, 1))).astype(int) + 1
    return (counts // (10 ** np.maximum(nd - 2, 0))) % 10


def _digit_hist(counts: np.ndarray, which: str) -> np.ndarray:
    """Histogram (10 bins) of last or second digits of counts >= 10, along the last axis."""
    d = _digit(counts, which)
    mask = counts >= 10
    if counts.ndim == 1:
        return np.bincount(d[mask], minlength=10).astype(float)
    # One histogram per simulation row: one bincount over row * 11 + digit, with
    # counts below 10 sent to an 11th bin that is dropped.
    rows = counts.shape[0]
    idx = np.where(mask, d, 10) + 11 * np.arange(rows)[:, None]
    return np.bincount(idx.ravel(), minlength=11 * rows).reshape(rows, 11)[:, :10].astype(float)


_LUT: dict[str, np.ndarray] = {}


def _digit_luts(top: int) -> np.ndarray:
    """``(last digit) * 11 + (second digit)`` of every count ``0..top``, digit 10 for counts below 10.

    Made by :func:`_digit` applied to ``arange(top + 1)``, so looking a count
    up gives exactly the digits :func:`_digit_hist` gives it.
    """
    lut = _LUT.get("both")
    if lut is None or len(lut) <= top:
        ar = np.arange(max(top + 1, 1024))
        small = ar < 10
        lut = (np.where(small, 10, _digit(ar, "last")) * 11 + np.where(small, 10, _digit(ar, "second"))).astype(np.intp)
        _LUT["both"] = lut
    return lut


def _digit_hists(counts: np.ndarray) -> dict[str, np.ndarray]:
    """``{"last": ..., "second": ...}``: :func:`_digit_hist` of both digits of a 2-D ``counts``, at once.

    One table look-up and one ``bincount`` over ``row * 121 + last * 11 +
    second`` instead of two passes of ``log10`` and divisions (the same
    integers, so the same histograms; ``tests/models/test_digit_forensics.py``
    compares them on random counts).
    """
    rows = counts.shape[0]
    idx = _digit_luts(int(counts.max(initial=0)))[counts] + 121 * np.arange(rows)[:, None]
    joint = np.bincount(idx.ravel(), minlength=121 * rows).reshape(rows, 11, 11)
    return {"last": joint.sum(axis=2)[:, :10].astype(float), "second": joint.sum(axis=1)[:, :10].astype(float)}


def _chi2(hist: np.ndarray, expected_freq: np.ndarray) -> np.ndarray:
    n = hist.sum(axis=-1, keepdims=True)
    exp = np.maximum(n * expected_freq, 1e-9)
    return ((hist - exp) ** 2 / exp).sum(axis=-1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


class DigitForensics:
    """Regency-level digit and fingerprint tests on tallies, every ``every`` tallies (info only).

    Parameters
    ----------
    state
        ``MutableMapping`` keyed ``<regency>|<contest>``: ``{"rows": [[valid,
        [votes in candidate order], voters, registered], ...], "candidates":
        [...], "since": int, "flagged": [test, ...], "n": int, "width": int}``.
        Assigned back. ``width`` says every row is a list of that many votes
        (a state without it, from an older version, is checked row by row once).
    every
        Re-evaluate a region after this many new tallies.
    min_tps
        Tallies a region needs before any test runs.
    max_tps
        Tallies kept per region (the most recent), bounding state: about 26
        bytes a tally, written whole at every tally by a Faust table; 1,000
        TPS give 3,000 candidate counts, plenty for the digit tests.
    alpha
        A test is reported when its p-value is below this. Each region runs
        four tests at every evaluation, so keep it small.
    n_sim
        Simulations for the simulated nulls; the smallest simulated p-value
        is ``1 / (n_sim + 1)``, so ``n_sim`` must exceed ``1 / alpha``.
    min_corner
        TPS needed in the high-turnout/high-share corner before the
        fingerprint is reported: one or two stuffed TPS are
        ``peer_outlier``'s business, a region-level fingerprint needs a cluster.
    seed
        Seed of the simulations; combined with the region and its tally count
        so results are reproducible on replay.
    stop_after
        A simulated test stops once this many simulations reach the observed
        statistic (its p-value is then reported as their share).
    batch
        Simulations drawn at a time. Small, because a clean region (almost
        all of them) reaches ``stop_after`` within a few dozen draws, and
        every draw of a regency of 1,000 TPS costs about 0.3 ms.
    pilot
        Simulated regions drawn first, for the digit tests' expected
        frequencies (50 regions of 1,000 TPS are 150,000 counts).
    null
        ``"own"``: the digit tests redraw each TPS from its own vote shares;
        ``"pooled"``: from the region's pooled shares (version 1's null, kept
        for comparison: it flags honest regions with strongholds).

    Examples
    --------
    >>> import random
    >>> def region(regency, rounded, seed=1):
    ...     rnd = random.Random(seed)
    ...     for i in range(100):
    ...         dpt = rnd.randint(200, 290); voters = int(dpt * rnd.uniform(0.7, 0.85))
    ...         v1 = int(voters * rnd.uniform(0.2, 0.3)); v2 = int(voters * rnd.uniform(0.4, 0.55))
    ...         if rounded:  # invented figures: round numbers
    ...             v1, v2 = v1 // 10 * 10, v2 // 10 * 10
    ...         v3 = voters - 5 - v1 - v2
    ...         yield {"event_id": f"e{i}", "tps": f"{regency}011005{i:03d}", "contest": "PPWP",
    ...                "region": {"province": regency[:2], "regency": regency},
    ...                "registered": {"dpt": dpt}, "voters": voters, "votes": {"01": v1, "02": v2, "03": v3},
    ...                "valid": voters - 5, "invalid": 5}
    >>> det = DigitForensics({}, every=50, min_tps=50, n_sim=499, alpha=0.01)
    >>> [f for ev in region("3173", rounded=False) for f in det.process_one(ev)]
    []
    >>> found = [f for ev in region("3174", rounded=True) for f in det.process_one(ev)]
    >>> sorted({(f.kind, f.severity, f.subject_id) for f in found})
    [('last_digit', 'info', '3174'), ('second_digit', 'info', '3174')]
    >>> "not proof" in found[0].evidence["caveat"]
    True
    """

    name = "digit_forensics"
    version = "2"
    TESTS = ("last_digit", "second_digit", "integer_turnout", "fingerprint")

    def __init__(self, state: MutableMapping[str, Any], every: int = 100, min_tps: int = 100,
                 max_tps: int = 1000, alpha: float = 0.002, n_sim: int = 999, min_corner: int = 5,
                 seed: int = 20240214, stop_after: int = 10, batch: int = 25, pilot: int = 50,
                 cap: int | None = 300, reserve_rate: float = 0.02, null: str = "own"):
        if null not in ("own", "pooled"):
            raise ValueError(f"null must be 'own' or 'pooled', not {null!r}")
        if n_sim + 1 <= 1 / alpha:
            raise ValueError(f"n_sim={n_sim} cannot reach p < alpha={alpha}; use n_sim >= {math.ceil(1 / alpha)}")
        if batch < 1 or pilot < 1:
            raise ValueError(f"batch={batch} and pilot={pilot} must be at least 1")
        if (1 + stop_after) / (n_sim + 1) < alpha:
            raise ValueError(f"stop_after={stop_after} could stop a test whose full p-value is below alpha={alpha}")
        self.state = state
        self.every = every
        self.min_tps = min_tps
        self.max_tps = max_tps
        self.alpha = alpha
        self.n_sim = n_sim
        self.min_corner = min_corner
        self.seed = seed
        self.stop_after = stop_after
        self.batch = batch
        self.pilot = pilot
        self.cap = cap
        self.reserve_rate = reserve_rate
        self.null = null

    def process_one(self, event: dict) -> list[Finding]:
        region = event.get("region") or {}
        regency = region.get("regency") or event["tps"][:4]
        contest = event.get("contest", "")
        reg = registered_total(event.get("registered") or {})
        if reg <= 0 or int(event.get("valid") or 0) <= 0:
            return []
        if {b.rule for b in check_tally(event, self.cap, self.reserve_rate)} & {"sum_valid", "valid_invalid_voters"}:
            return []  # a misread tally's digits say nothing about the region
        key = f"{regency}|{contest}"
        st = self.state.get(key) or {"rows": [], "candidates": [], "since": 0, "flagged": [], "n": 0}
        cands = list(st["candidates"])
        for c in sorted(event["votes"]):
            if c not in cands:
                cands.append(c)
        row = [int(event["valid"]), [int(event["votes"].get(c, 0)) for c in cands], int(event["voters"]), reg]
        width = len(cands)
        # Rows stay as they are unless a new candidate widens them (values are
        # only read, never changed in place, so sharing them is safe).
        old = st["rows"][-self.max_tps:]
        if st.get("width") == width:
            # Written by this method at this width: every row is already a list this wide (see below).
            rows = old + [row]
        else:
            rows = [r if len(r[1]) == width and type(r) is list else [r[0], r[1] + [0] * (width - len(r[1])), r[2], r[3]]
                    for r in old] + [row]
        rows = rows[-self.max_tps:]
        since, n = st["since"] + 1, st["n"] + 1
        out: list[Finding] = []
        flagged = list(st["flagged"])
        if since >= self.every and len(rows) >= self.min_tps:
            since = 0
            results = self.evaluate(rows, rng=np.random.default_rng([self.seed, int(regency), n]))
            now = []
            for test, res in results.items():
                if res["p_value"] < self.alpha:
                    now.append(test)
                    out.append(self._finding(regency, contest, test, res, event, region, len(rows)))
                elif test in flagged:
                    out.append(self._finding(regency, contest, test, res, event, region, len(rows), resolved=True))
            flagged = now
        # "width": every row is a list of len(cands) votes, so the next tally need not check them one by one.
        self.state[key] = {"rows": rows, "candidates": cands, "since": since, "flagged": flagged, "n": n,
                           "width": width}
        return out

    def evaluate(self, rows: list, rng: np.random.Generator) -> dict[str, dict]:
        """Run every test on ``rows`` (see ``state``); returns ``{test: {"p_value", ...}}``."""
        valid = np.array([r[0] for r in rows])
        votes = np.array([r[1] for r in rows])
        voters = np.array([r[2] for r in rows])
        reg = np.array([r[3] for r in rows])
        out: dict[str, dict] = {}

        if votes.shape[1] >= 1 and (votes >= 10).sum() >= 50:
            if self.null == "own":
                totals = votes.sum(axis=1)
                # Each TPS's own shares; a TPS without votes draws nothing whatever its shares.
                shares = votes / np.maximum(totals, 1)[:, None]
                shares[totals == 0] = 1.0 / votes.shape[1]
                null = "multinomial redraw of each TPS from its own vote shares and total"
            else:
                totals, shares = valid, votes.sum(axis=0) / max(votes.sum(), 1)
                null = "multinomial redraw from the region's pooled shares, each TPS's valid total kept"

            def redraw(k: int) -> np.ndarray:
                """``k`` simulated regions: (k, T * K) counts."""
                return rng.multinomial(totals[None, :], shares, size=(k, len(totals))).reshape(k, -1)

            obs_counts = votes.reshape(-1)
            obs_hist = {which: _digit_hist(obs_counts, which) for which in ("last", "second")}
            # One pilot batch for both digits' expected frequencies, drawn before the ranked simulations.
            pilot = _digit_hists(redraw(self.pilot))
            expected = {which: h.sum(axis=0) / h.sum() for which, h in pilot.items()}
            obs_stat = {which: float(_chi2(obs_hist[which], expected[which])) for which in expected}

            def digit_stats(k: int) -> dict[str, np.ndarray]:
                hists = _digit_hists(redraw(k))  # one draw serves both digit tests
                return {which: _chi2(hists[which], expected[which]) for which in expected}

            for which, (p, drawn) in self._sequential_p(obs_stat, digit_stats).items():
                out[f"{which}_digit"] = {
                    "p_value": round(p, 4), "chi2": round(obs_stat[which], 2), "simulations": drawn,
                    "observed": [int(x) for x in obs_hist[which]],
                    "expected_share": [round(float(x), 4) for x in expected[which]],
                    "null": null}

        t = np.clip(voters / reg, 0, 1.5)
        is_int = (voters * 100) % reg == 0
        obs_int = int(is_int.sum())
        int_means: list[float] = []

        def integer_counts(k: int) -> dict[str, np.ndarray]:
            sim_v = rng.binomial(reg[None, :], np.clip(t, 0, 1)[None, :], size=(k, len(reg)))
            counts = ((sim_v * 100) % reg[None, :] == 0).sum(axis=1)
            int_means.append(float(counts.mean()))
            return {"integer": counts}

        p, drawn = self._sequential_p({"integer": obs_int}, integer_counts)["integer"]
        out["integer_turnout"] = {"p_value": round(p, 4), "observed": obs_int, "simulations": drawn,
                                  "expected": round(float(np.mean(int_means)), 2), "n_tps": int(len(reg)),
                                  "null": "voters redrawn Binomial(registered, own turnout)"}

        winner = int(np.argmax(votes.sum(axis=0)))
        w = votes[:, winner] / np.maximum(valid, 1)
        both = int(((t > 0.9) & (w > 0.9)).sum())
        lt, lw = _logit(np.minimum(t, 1.0)), _logit(w)

        def tail(x: np.ndarray) -> float:
            med = float(np.median(x))
            sd = max(1.4826 * float(np.median(np.abs(x - med))), 0.1)
            return float(ndtr(-(_logit(np.array([0.9]))[0] - med) / sd))

        expected = len(t) * tail(lt) * tail(lw)
        p = float(pdtrc(both - 1, expected)) if both >= self.min_corner else 1.0
        out["fingerprint"] = {"p_value": round(p, 6), "observed": both, "expected": round(expected, 3),
                              "n_tps": int(len(t)), "winner": winner,
                              "null": "independent logit-normal turnout and winner share, fitted by median/MAD"}
        return out

    def _sequential_p(self, observed: dict[str, float], simulate) -> dict[str, tuple[float, int]]:  # noqa: ANN001
        """Monte Carlo p-value of each statistic in ``observed`` (larger = more extreme), stopped early.

        ``simulate(k)`` returns ``k`` simulated values of every statistic still
        running. Returns ``{name: (p_value, simulations drawn)}``.
        """
        exceed = dict.fromkeys(observed, 0)
        drawn = dict.fromkeys(observed, 0)
        running = set(observed)
        while running:
            k = min(self.batch, self.n_sim - max(drawn[n] for n in running))
            sims = simulate(k)
            for name in list(running):
                exceed[name] += int((sims[name] >= observed[name]).sum())
                drawn[name] += k
                if exceed[name] >= self.stop_after or drawn[name] >= self.n_sim:
                    running.discard(name)
        return {name: (exceed[name] / drawn[name] if exceed[name] >= self.stop_after
                       else (1 + exceed[name]) / (self.n_sim + 1), drawn[name]) for name in observed}

    def _finding(self, regency: str, contest: str, test: str, res: dict, event: dict, region: dict,
                 n_tps: int, resolved: bool = False) -> Finding:
        p = res["p_value"]
        what = {"last_digit": "last digits of candidate counts", "second_digit": "second digits of candidate counts",
                "integer_turnout": "integer-percent turnouts",
                "fingerprint": "TPS with turnout and winner share both above 90%"}[test]
        summary = (f"Regency {regency} {contest}: {what} depart from the data-respecting null over {n_tps} TPS "
                   f"(p = {p:.2g}); a statistical signal, not proof." if not resolved else
                   f"Regency {regency} {contest}: {what} are back within the null over {n_tps} TPS (p = {p:.2g}).")
        return Finding(
            detector=self.name, key=f"{regency}|{contest}|{test}", severity="info",
            score=0.0 if resolved else round(min(1.0, -math.log10(max(p, 1e-12)) / 12), 3),
            subject_kind="region", subject_id=regency, summary=summary,
            evidence={"test": test, **res, "n_tps": n_tps, "caveat": CAVEAT,
                      "model": self.name, "version": self.version},
            event_ids=[event["event_id"]],
            region={"province": region.get("province") or regency[:2], "regency": regency},
            occurred_at=_when(event), status="resolved" if resolved else "open", kind=test,
        )
