"""NAB-style windowed scoring of anomaly scores (own implementation).

Follows the scoring rules described in Lavin & Ahmad (2015), "Evaluating
Real-time Anomaly Detection Algorithms - the Numenta Anomaly Benchmark":

* each labelled anomaly gets a window of ``0.1 * len(series) / n_labels``
  points centred on the label (overlapping windows are merged);
* the first ``min(15 %, 750)`` points of each series are a probationary period
  that is not scored;
* a detection is any point whose score is at or above the threshold; inside a
  window only the earliest detection counts, rewarded by the scaled sigmoid of
  its relative position (1 at the window's left edge, 0 at its right edge);
* every detection outside a window is penalised by ``A_fp`` times the scaled
  sigmoid of its distance past the preceding window (full penalty when no
  window precedes it or it is far behind one);
* a window without a detection costs ``A_fn``;
* the raw corpus score is normalised to 0..100 between the null detector (never
  fires: every window missed) and the perfect one (fires at each window's start);
* the threshold is swept over every distinct score and the best one is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STANDARD = {"A_tp": 1.0, "A_fp": -0.11, "A_fn": -1.0}


def scaled_sigmoid(position: float) -> float:
    """2 * sigmoid(-5 * position) - 1, and -1 from 3 window-widths past a window."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def windows_for(n: int, labels: list[int], fraction: float = 0.1) -> list[tuple[int, int]]:
    """Inclusive (start, end) index windows centred on ``labels``, overlaps merged."""
    if not labels:
        return []
    width = int(fraction * n / len(labels))
    half = width // 2
    raw = sorted((max(0, i - half), min(n - 1, i + half)) for i in labels)
    merged: list[list[int]] = []
    for a, b in raw:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


@dataclass
class Scored:
    """One series prepared for the sweep: per-point weight and window id (-1 outside)."""

    scores: np.ndarray
    weights: np.ndarray
    window_ids: np.ndarray
    n_windows: int
    category: str = ""
    name: str = ""
    extra: dict = field(default_factory=dict)


def prepare(scores, labels: list[int], profile=STANDARD, category: str = "", name: str = "",
            probation: float = 0.15) -> Scored:
    """Per-point NAB weights of one series (probationary points are dropped)."""
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    wins = windows_for(n, labels)
    window_ids = np.full(n, -1, dtype=int)
    weights = np.zeros(n)
    prev_right: int | None = None
    prev_width = 0
    wi = 0
    for i in range(n):
        while wi < len(wins) and i > wins[wi][1]:
            prev_right, prev_width = wins[wi][1], wins[wi][1] - wins[wi][0] + 1
            wi += 1
        if wi < len(wins) and wins[wi][0] <= i <= wins[wi][1]:
            a, b = wins[wi]
            width = b - a + 1
            # Left edge: -1 (full reward); right edge: about 0.
            pos = -(b - i + 1) / width
            weights[i] = scaled_sigmoid(pos) / scaled_sigmoid(-1.0) * profile["A_tp"]
            window_ids[i] = wi
        else:
            if prev_right is None:
                pos = 3.0
            else:
                pos = abs(prev_right - i) / max(prev_width - 1, 1)
            weights[i] = -scaled_sigmoid(pos) * profile["A_fp"]  # A_fp < 0, sigmoid <= 0
    start = int(min(math.floor(probation * n), probation * 5000))
    keep = np.arange(n) >= start
    # Windows that lie wholly inside the probation period are not scored either.
    kept_windows = sorted(set(window_ids[keep & (window_ids >= 0)].tolist()))
    remap = {w: k for k, w in enumerate(kept_windows)}
    ids = np.array([remap.get(w, -1) if w >= 0 else -1 for w in window_ids[keep]], dtype=int)
    return Scored(scores[keep], weights[keep], ids, len(kept_windows), category, name)


def sweep(series: list[Scored], profile=STANDARD) -> list[tuple[float, float]]:
    """(threshold, raw corpus score) for every distinct score, highest threshold first."""
    n_windows = sum(s.n_windows for s in series)
    base = n_windows * profile["A_fn"]  # nothing detected: every window missed
    scores = np.concatenate([s.scores for s in series]) if series else np.zeros(0)
    weights = np.concatenate([s.weights for s in series]) if series else np.zeros(0)
    # Globally unique window ids across series.
    gids = []
    offset = 0
    for s in series:
        g = np.where(s.window_ids >= 0, s.window_ids + offset, -1)
        gids.append(g)
        offset += s.n_windows
    gid = np.concatenate(gids) if gids else np.zeros(0, dtype=int)
    order = np.argsort(-scores, kind="stable")
    best = np.full(offset, -np.inf)
    total = base
    out: list[tuple[float, float]] = [(math.inf, total)]
    i = 0
    n = len(order)
    while i < n:
        thr = scores[order[i]]
        # Every point with this exact score turns on together.
        while i < n and scores[order[i]] == thr:
            k = order[i]
            w = gid[k]
            if w < 0:
                total += weights[k]
            else:
                if best[w] == -np.inf:
                    total += weights[k] - profile["A_fn"]
                    best[w] = weights[k]
                elif weights[k] > best[w]:
                    total += weights[k] - best[w]
                    best[w] = weights[k]
            i += 1
        out.append((float(thr), total))
    return out


def normalise(raw: float, n_windows: int, profile=STANDARD) -> float:
    """0 for the null detector, 100 for the perfect one."""
    null = n_windows * profile["A_fn"]
    perfect = n_windows * profile["A_tp"]
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(series: list[Scored], profile=STANDARD) -> tuple[float, float]:
    """(threshold, normalised score) of the best threshold over the whole set."""
    n_windows = sum(s.n_windows for s in series)
    thr, raw = max(sweep(series, profile), key=lambda p: p[1])
    return thr, normalise(raw, n_windows, profile)


def score_at(series: list[Scored], threshold: float, profile=STANDARD) -> float:
    """Normalised score of the set at a fixed threshold (detections: score >= threshold)."""
    n_windows = sum(s.n_windows for s in series)
    raw = n_windows * profile["A_fn"]
    for s in series:
        on = s.scores >= threshold
        raw += float(s.weights[on & (s.window_ids < 0)].sum())
        for w in range(s.n_windows):
            hit = on & (s.window_ids == w)
            if hit.any():
                raw += float(s.weights[hit].max()) - profile["A_fn"]
    return normalise(raw, n_windows, profile)


def self_check() -> None:
    """Sanity of the scorer itself: null 0, perfect 100, early beats late, FPs cost."""
    n, labels = 1000, [400, 700]
    wins = windows_for(n, labels)
    perfect = np.zeros(n)
    late = np.zeros(n)
    noisy = np.zeros(n)
    for a, b in wins:
        perfect[a] = 1.0
        late[b - 1] = 1.0
        noisy[a] = 1.0
    noisy[900:905] = 1.0
    prep = lambda s: [prepare(s, labels)]  # noqa: E731
    assert abs(best_threshold(prep(np.zeros(n)))[1]) < 1e-9
    assert abs(score_at(prep(perfect), 1.0) - 100.0) < 1e-9
    assert abs(best_threshold(prep(perfect))[1] - 100.0) < 1e-9
    assert 0.0 < score_at(prep(late), 1.0) < score_at(prep(perfect), 1.0)
    assert score_at(prep(noisy), 1.0) < score_at(prep(perfect), 1.0)
    assert abs(score_at(prep(noisy), 1.0) - best_threshold(prep(noisy))[1]) < 1e-9
