"""Seasonal, robust, online anomaly detector for one univariate series."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from river.base import AnomalyDetector

__all__ = ["VolumeModel"]

_DAY = 86400.0
_HOUR = 3600.0
# Values beyond this are learned as +/- this bound, so no update can overflow.
_MAX_ABS = 1e100
# A scale never falls below this fraction of its slow (long-memory) twin.
_SLOW_FLOOR = 0.7
# Smallest scale of a count series in Anscombe space (where Poisson noise has sd 1).
_COUNT_FLOOR = 0.7
_UNSET = object()
# Anscombe's transform of 0.
_TX_ZERO = 2.0 * math.sqrt(0.375)
# sqrt(pi / 2): turns a mean absolute deviation into a Gaussian standard deviation.
_MAD_TO_SD = 1.2533141373155003
# Pseudo-visits of the hour-of-day share of empty buckets in the hour-of-week one.
_WEEK_PRIOR = 2.0


def _epoch(ts: Any) -> float | None:
    """Seconds since the epoch (UTC) of a datetime or a number; None if unusable."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            # Naive datetimes are taken as UTC: only consistency matters for the slots.
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    if isinstance(ts, (int, float)) and math.isfinite(ts):
        return float(ts)
    return None


class VolumeModel(AnomalyDetector):
    """Robust seasonal online anomaly detector for a univariate series.

    Each observation ``x = {"timestamp": datetime, "value": float}`` is compared with
    two forecasts, and the one that has been more accurate lately is used:

    * a **seasonal** forecast, Holt-Winters style: a robust level plus an additive
      hour-of-day profile (24 slots) refined by an hour-of-week profile (168 slots),
      linearly interpolated between slot centres so a smooth daily curve has no
      steps. A slot's learning rate is scaled by how many points fall in one visit
      of the slot, which is inferred online from the median gap between timestamps,
      so the same defaults work from one-minute to hourly sampling;
    * a **plain** forecast: the level of the raw values (for series without rhythm).

    While the series holds only non-negative integers it is modelled as counts,
    after Anscombe's variance-stabilising transform :math:`2\\sqrt{x + 3/8}`, so that
    a silence at a busy hour and a burst at a quiet hour weigh alike; the first
    non-count value restarts the model on raw values (``n_restarts``).

    The residual is divided by a robust scale (an exponentially weighted mean
    absolute deviation, per hour-of-day slot for the seasonal forecast, never below
    a fraction of its slow twin nor below Poisson noise for counts) to give a robust
    z. A run of moderate same-side deviations also adds up, through the running
    mean of recent z (``persist_alpha``). The stronger of the two is squashed
    smoothly into [0, 1):

    .. math:: u = \\log(1 + (z / c)^2), \\qquad score = u / (1 + u)

    The log keeps extreme deviations apart (a 10-fold larger spike always scores
    higher, up to the largest floats), so scores rank anomalies without saturating.
    Spikes and drops are symmetric: a bucket of 0 when 50 were expected scores high.

    Learning is protected against anomalies, as River's ``QuantileFilter`` with
    ``protect_anomaly_detector`` does, but softly: residuals are clipped to
    ``clip_z`` scales (Huber) before they update any state, so a spike barely moves
    the baseline. A lasting change is different from a spike: after
    ``shift_patience`` consecutive points beyond ``shift_z`` on the same side, the
    levels jump to the new regime and the model stops alarming.

    Rules for awkward input:

    * a non-finite or non-numeric ``value`` (NaN, inf, None) is ignored: it is not
      learned, scores 0, and is counted in ``n_ignored``;
    * values beyond +/-1e100 are scored as they are but learned as +/-1e100;
    * a missing or unusable timestamp disables the seasonal forecast for that point;
    * out-of-order timestamps are scored and learned in their own slot; only forward
      gaps feed the sampling-interval estimate;
    * variances are never computed by subtraction (mean absolute deviations only)
      and every scale has a floor, so constant series and runs of zeros are safe.

    A silence of a count series is judged as a whole: each empty bucket adds
    -log P(empty) to the run, P from the hour's empirical share of empty buckets
    shrunk towards Poisson's exp(-expected), refined by the same share for the
    hour of the week as its visits add up (a nearly idle Sunday is learned as
    such), and the run's Gaussian-equivalent z,
    sqrt(2 * sum), competes with the point's own z. So four silent office hours of a
    series with two events a bucket alarm, while empty nights never do. A silence
    is adopted like a level shift once it has been anomalous (run z beyond
    ``shift_z``) for ``shift_patience`` buckets *and* its run z is beyond twice
    ``shift_z``: a sparse series' silence gathers evidence slowly, and is not
    taken for the new normal before it could ever alarm. The levels from before
    an adopted silence are remembered: the first non-empty bucket after it is
    scored against whichever of the two regimes it fits better, and if that is
    the old one, the old levels come back (an office that reopens at its usual
    pace is not a spike).

    Memory is fixed: 24 + 168 seasonal slots, 24 + 24 + 24 scale and empty-share
    slots, 168 + 168 hour-of-week empty-share slots, at most ``interval_window``
    recent gaps and ``shift_patience`` run values, whatever the length of the series.

    Parameters
    ----------
    grace_period
        Number of learned points before which ``score_one`` returns 0.
    level_alpha
        Smoothing factor of the levels: per point for the plain forecast, per hour of
        data (or per point if sparser) for the seasonal forecast.
    season_alpha
        Smoothing factor of a seasonal slot per visit of that slot (a visit is all the
        points that fall into one hour).
    scale_alpha
        Smoothing factor of the absolute deviations (per point, or per visit for the
        slot scales).
    z_scale
        Robust z at which the score's inner ratio is 1 (score about 0.41).
    clip_z
        Residuals are clipped to this many scales before they are learned.
    shift_z
        Robust z beyond which a point counts towards a level shift.
    shift_patience
        Consecutive points beyond ``shift_z`` on one side that make a level shift.
    interval_window
        Number of recent forward gaps whose median is the sampling interval.
    persist_alpha
        Smoothing factor of the running mean of recent z (each clipped to ``shift_z``),
        which lets several moderate same-side deviations add up to an anomaly.

    Attributes
    ----------
    n_seen
        Number of points learned.
    n_ignored
        Number of points ignored because their value was not a finite number.
    n_shifts
        Number of level shifts adopted.
    interval
        Inferred sampling interval in seconds (None until two timestamps are known).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> import random
    >>> rng = random.Random(7)
    >>> model = VolumeModel()
    >>> t0 = datetime(2024, 1, 1)
    >>> for i in range(24 * 12 * 7):  # one week of 5-minute buckets
    ...     t = t0 + timedelta(minutes=5 * i)
    ...     daily = 40 + 30 * math.sin(2 * math.pi * (t.hour + t.minute / 60) / 24)
    ...     model.learn_one({"timestamp": t, "value": rng.gauss(daily, 3)})
    >>> model.warm
    True
    >>> t = t0 + timedelta(days=7, hours=6)  # the daily peak, about 70 expected
    >>> abs(model.expected({"timestamp": t}) - 70) < 5
    True
    >>> normal = model.score_one({"timestamp": t, "value": 71.0})
    >>> spike = model.score_one({"timestamp": t, "value": 250.0})
    >>> silence = model.score_one({"timestamp": t, "value": 0.0})
    >>> normal < 0.3 < 0.7 < silence < spike < 1.0
    True
    >>> model.direction({"timestamp": t, "value": 0.0})
    'drop'
    >>> model.score_one({"timestamp": t, "value": float("nan")})
    0.0

    References
    ----------
    .. [1] Hyndman, R.J. and Athanasopoulos, G. (2021). *Forecasting: principles and
       practice*, 3rd ed., section 8.3 (Holt-Winters' additive method). OTexts.
    .. [2] Huber, P.J. (1964). Robust estimation of a location parameter. *The Annals
       of Mathematical Statistics*, 35(1), 73-101.
    .. [3] Gelper, S., Fried, R. and Croux, C. (2010). Robust forecasting with
       exponential and Holt-Winters smoothing. *Journal of Forecasting*, 29(3), 285-300.
    .. [4] Anscombe, F.J. (1948). The transformation of Poisson, binomial and
       negative-binomial data. *Biometrika*, 35(3/4), 246-254.
    .. [5] Lavin, A. and Ahmad, S. (2015). Evaluating real-time anomaly detection
       algorithms - the Numenta Anomaly Benchmark. *IEEE ICMLA*.

    """

    VERSION = "2"
    #: State versions load_state_dict accepts (version 1 lacks the pre-silence levels).
    _LOADABLE = ("1", "2")

    # Everything the model has learned; state_dict() copies exactly these.
    _STATE = (
        "n_seen", "n_ignored", "n_shifts", "n_restarts", "first_t", "last_t", "gaps", "interval",
        "level_s", "level_p", "daily", "daily_n", "weekly", "weekly_n", "mad_s",
        "mad_p", "slow_s", "slow_p", "slot_mad", "slot_mad_n", "err_s", "err_p", "is_count", "ewz", "prev_v",
        "zero_p", "zero_n", "zero_wp", "zero_wn", "zero_mass", "zero_run",
        "run_sign", "run_vals", "run_des", "pre_silence", "silence_from",
    )
    # State added after version 1, and its value when an older state lacks it.
    _ADDED = {"pre_silence": None, "silence_from": None, "zero_wp": [0.0] * 168, "zero_wn": [0.0] * 168}

    def __init__(
        self,
        grace_period: int = 48,
        level_alpha: float = 0.05,
        season_alpha: float = 0.2,
        scale_alpha: float = 0.05,
        z_scale: float = 3.0,
        clip_z: float = 3.0,
        shift_z: float = 4.0,
        shift_patience: int = 24,
        interval_window: int = 15,
        persist_alpha: float = 0.3,
    ):
        for name, value in (("level_alpha", level_alpha), ("season_alpha", season_alpha),
                            ("scale_alpha", scale_alpha),
                            ("persist_alpha", persist_alpha)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        for name, value in (("z_scale", z_scale), ("clip_z", clip_z), ("shift_z", shift_z)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if grace_period < 0 or shift_patience < 1 or interval_window < 1:
            raise ValueError("grace_period must be >= 0, shift_patience and interval_window >= 1")
        self.grace_period = grace_period
        self.level_alpha = level_alpha
        self.season_alpha = season_alpha
        self.scale_alpha = scale_alpha
        self.z_scale = z_scale
        self.clip_z = clip_z
        self.shift_z = shift_z
        self.shift_patience = shift_patience
        self.interval_window = interval_window
        self.persist_alpha = persist_alpha
        self._reset()

    def _reset(self) -> None:
        self.n_seen = 0
        self.n_ignored = 0
        self.n_shifts = 0
        self.n_restarts = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.gaps: list[float] = []
        self.interval: float | None = None
        self.level_s: float | None = None  # level of the deseasonalised values
        self.level_p: float | None = None  # level of the raw values
        self.daily = [0.0] * 24
        self.daily_n = [0.0] * 24  # weighted number of points learned per slot
        self.weekly = [0.0] * 168
        self.weekly_n = [0.0] * 168
        self.mad_s = 0.0
        self.mad_p = 0.0
        # Slow twins of the deviations: a floor, so that a long flat stretch does not
        # shrink the scale to nothing and make the first ordinary wiggle an alarm.
        self.slow_s = 0.0
        self.slow_p = 0.0
        self.prev_v: float | None = None
        self.ewz = 0.0  # exponentially weighted recent z: evidence that piles up
        self.zero_p = [0.0] * 24  # share of empty buckets per hour slot (counts only)
        self.zero_n = [0.0] * 24
        self.zero_wp = [0.0] * 168  # the same per hour of the week, which refines it
        self.zero_wn = [0.0] * 168
        self.zero_mass = 0.0  # -log probability of the current run of empty buckets
        self.zero_run = 0  # anomalous empty buckets in a row
        self.slot_mad = [0.0] * 24
        self.slot_mad_n = [0.0] * 24
        self.err_s = 0.0  # recent mean absolute error of each forecast, to pick one
        self.err_p = 0.0
        self.is_count = True
        self.run_sign = 0
        self.run_vals: list[float] = []  # values of the current same-side run
        self.run_des: list[float] = []  # the same, deseasonalised
        # [level_s, level_p, err_s, err_p] from before an adopted silence (None when
        # there is none to go back to), and the same when the current anomalous
        # silence began (what adopting it would replace).
        self.pre_silence: list[float] | None = None
        self.silence_from: list[float] | None = None

    # -- state -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as plain JSON-serialisable data (lists, floats, ints)."""
        state = {name: getattr(self, name) for name in self._STATE}
        for name, value in state.items():
            if isinstance(value, list):
                state[name] = list(value)
        return {"version": self.VERSION, "params": self._get_params(), "state": state}

    def load_state_dict(self, d: dict[str, Any]) -> VolumeModel:
        """Restore what :meth:`state_dict` returned (parameters are not changed)."""
        if d.get("version") not in self._LOADABLE:
            raise ValueError(f"VolumeModel state version {d.get('version')!r}, expected one of {self._LOADABLE}")
        state = {**self._ADDED, **d["state"]}
        missing = [name for name in self._STATE if name not in state]
        if missing:
            raise ValueError(f"VolumeModel state lacks {missing}")
        for name in self._STATE:
            value = state[name]
            setattr(self, name, list(value) if isinstance(value, list) else value)
        return self

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> VolumeModel:
        """A new model with the saved parameters and state."""
        return cls(**d["params"]).load_state_dict(d)

    # -- properties ------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True once ``grace_period`` points were learned (scores are no longer 0)."""
        return self.n_seen >= self.grace_period

    @property
    def span_seconds(self) -> float:
        """Time between the first and the latest timestamp learned."""
        if self.first_t is None or self.last_t is None:
            return 0.0
        return self.last_t - self.first_t

    # -- internals -------------------------------------------------------------

    @staticmethod
    def _value(x: dict) -> float | None:
        v = x.get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    def _per_visit(self, alpha: float) -> float:
        """Per-point rate that amounts to ``alpha`` over one visit of an hour slot."""
        # Not state: rates for the current interval (it rarely changes).
        interval = self.interval
        cached = self.__dict__.get("_rate_cache")
        if cached is None or cached[0] != interval:
            cached = self.__dict__["_rate_cache"] = (interval, {})
        rate = cached[1].get(alpha)
        if rate is None:
            points = 1.0 if not interval else max(1.0, _HOUR / interval)
            rate = alpha if points == 1.0 else 1.0 - (1.0 - alpha) ** (1.0 / points)
            cached[1][alpha] = rate
        return rate

    def _slots(self, t: float) -> tuple[int, int, float, int, int]:
        """Neighbouring hour-of-day and hour-of-week slots of ``t`` and the weight of the 2nd."""
        cached = self.__dict__.get("_slot_cache")
        if cached is not None and cached[0] == t:
            return cached[1]
        res = self._compute_slots(t)
        # Not state: a one-entry cache, as one point asks for its slots several times.
        self.__dict__["_slot_cache"] = (t, res)
        return res

    @staticmethod
    def _compute_slots(t: float) -> tuple[int, int, float, int, int]:
        # Slot k is centred on minute 30 of hour k: interpolate between centres.
        pos = (t % _DAY) / _HOUR - 0.5
        lo = math.floor(pos)
        frac = pos - lo
        d0, d1 = lo % 24, (lo + 1) % 24
        # 1970-01-01 was a Thursday (weekday 3); hour-of-week slot = weekday * 24 + hour.
        week_pos = ((t / _DAY + 3.0) % 7.0) * 24.0 - 0.5
        wlo = math.floor(week_pos)
        return d0, d1, frac, wlo % 168, (wlo + 1) % 168

    def _season(self, t: float | None) -> float | None:
        """Seasonal offset at ``t``, or None if its slots were never visited."""
        if t is None:
            return None
        d0, d1, f, w0, w1 = self._slots(t)
        n0, n1 = self.daily_n[d0], self.daily_n[d1]
        if n0 <= 0.0 or n1 <= 0.0:
            return None
        daily, weekly, weekly_n = self.daily, self.weekly, self.weekly_n
        s = (1.0 - f) * daily[d0] + f * daily[d1]
        # The weekly profile refines the daily one as its slots gather visits.
        per_visit = 1.0 if not self.interval else max(1.0, _HOUR / self.interval)
        # Slot w0 refines d0, w1 refines d1 (w1 is never w0).
        visits = weekly_n[w0] / per_visit
        if visits > 0.0:
            s += (1.0 - f) * (visits / (visits + 2.0)) * (weekly[w0] - daily[d0])
        visits = weekly_n[w1] / per_visit
        if visits > 0.0:
            s += f * (visits / (visits + 2.0)) * (weekly[w1] - daily[d1])
        return s

    def _floor(self, expected: float) -> float:
        # Relative floor: constant series keep a tiny positive scale.
        floor = 1e-9 + 1e-6 * abs(expected)
        if self.is_count and _COUNT_FLOOR > floor:  # max(floor, _COUNT_FLOOR)
            # Counts are at least Poisson-noisy (standard deviation 1 after Anscombe).
            floor = _COUNT_FLOOR
        return floor

    def _tx(self, v: float) -> float:
        """Model space: Anscombe's transform for counts, identity otherwise."""
        if not self.is_count:
            return v
        u = v + 0.375
        return math.copysign(2.0 * math.sqrt(abs(u)), u)

    def _inv(self, y: float) -> float:
        if not self.is_count:
            return y
        v = (y / 2.0) ** 2 - 0.375
        return 0.0 if 0.0 > v else v  # max(v, 0.0)

    def _forecast(self, t: float | None, season: Any = _UNSET) -> tuple[float, float]:
        """(expected value, scale) from the forecast that has been more accurate."""
        if season is _UNSET:
            season = self._season(t)
        if season is not None and self.level_s is not None and self.err_s <= self.err_p:
            expected = self.level_s + season
            d0, d1, f, _, _ = self._slots(t)  # type: ignore[arg-type]
            slot = (1.0 - f) * self.slot_mad[d0] + f * self.slot_mad[d1]
            mad = slot if self.slot_mad_n[d0] > 0 and self.slot_mad_n[d1] > 0 else self.mad_s
            # Geometric mean: the hour's own noise, tempered by the overall noise.
            # (max() written out below, as ``b if b > a else a``: this runs for every bucket.)
            g = math.sqrt((0.0 if 0.0 > mad else mad) * self.mad_s)
            slow = _SLOW_FLOOR * self.slow_s
            mad = slow if slow > g else g
        else:
            expected = self.level_p if self.level_p is not None else 0.0
            slow = _SLOW_FLOOR * self.slow_p
            mad = slow if slow > self.mad_p else self.mad_p
        if self.is_count and _TX_ZERO > expected:
            expected = _TX_ZERO
        scale, floor = _MAD_TO_SD * mad, self._floor(expected)
        return expected, floor if floor > scale else scale

    def _z(self, x: dict) -> tuple[float, float] | None:
        """(robust z, expected in model space) of ``x``, or None."""
        v = self._value(x)
        if v is None or self.level_p is None:
            return None
        t = _epoch(x.get("timestamp"))
        expected, scale = self._forecast_for(t, v)
        return (self._tx(v) - expected) / scale, expected

    # -- public API ------------------------------------------------------------

    def expected(self, x: dict) -> float:
        """The value the model expects at ``x["timestamp"]`` (``value`` is not needed).

        Right after an adopted silence, a non-empty ``value`` is compared with the
        regime it fits better (see the class notes), and that regime's value is returned.
        """
        if self.level_p is None:
            return 0.0
        v = self._value(x)
        return self._inv(self._forecast_for(_epoch(x.get("timestamp")), v)[0])

    def _forecast_for(self, t: float | None, v: float | None, season: Any = _UNSET) -> tuple[float, float]:
        """The forecast at ``t``, or the pre-silence one if value ``v`` fits that one better."""
        if season is _UNSET:
            season = self._season(t)
        fc = self._forecast(t, season)
        if self.pre_silence is not None and v is not None and v > 0.0 and self.is_count:
            pre = self._pre_forecast(t, season)
            if self._fits_pre(v, fc, pre):
                return pre
        return fc

    def _remember_before_silence(self) -> None:
        """Keep what an adopted silence replaces: the state when it began, if known."""
        if self.pre_silence is None:
            self.pre_silence = list(self.silence_from or (self.level_s, self.level_p, self.err_s, self.err_p))

    def _fits_pre(self, v: float, fc: tuple[float, float], pre: tuple[float, float]) -> bool:
        """Whether value ``v`` is nearer (in scales) the pre-silence forecast than the current one."""
        tv = self._tx(v)
        return abs(tv - pre[0]) / pre[1] < abs(tv - fc[0]) / fc[1]

    def _pre_forecast(self, t: float | None, season: Any) -> tuple[float, float]:
        """The forecast with the levels from before the adopted silence."""
        now = [self.level_s, self.level_p, self.err_s, self.err_p]
        self.level_s, self.level_p, self.err_s, self.err_p = self.pre_silence  # type: ignore[misc]
        try:
            return self._forecast(t, season)
        finally:
            self.level_s, self.level_p, self.err_s, self.err_p = now

    def direction(self, x: dict) -> str:
        """``"spike"`` if ``x["value"]`` is at or above what was expected, else ``"drop"``."""
        v = self._value(x)
        if v is None:
            return "spike"
        return "spike" if v >= self.expected(x) else "drop"

    def score_one(self, x: dict) -> float:
        """Anomaly score in [0, 1); 0 during warm-up and for ignored values."""
        if not self.warm:
            return 0.0
        res = self._z(x)
        if res is None:
            return 0.0
        z, expected = res
        if not math.isfinite(z):
            return 1.0
        # A run of moderate deviations on one side (a silence at a quiet hour, a small
        # shift) piles up in the weighted mean of z, standardised by its own spread.
        z = max(abs(z), abs(self._next_ewz(z)) / self._ewz_sd)
        if self.is_count and x.get("value") == 0:
            z = max(z, self._zero_z(_epoch(x.get("timestamp")), expected)[0])
        q = z / self.z_scale
        u = math.log1p(q * q) if q < 1e150 else 2.0 * math.log(q)
        return u / (1.0 + u)

    def _zero_z(self, t: float | None, expected: float | None = None) -> tuple[float, float]:
        """(z, -log P) of one more zero bucket of a count series at ``t``.

        A silence is judged by how unlikely the whole run of empty buckets is: the
        sum of -log P(zero) over the run, from each hour's empirical share of empty
        buckets shrunk towards Poisson's exp(-expected). The Gaussian z with that
        tail probability is about sqrt(2 * sum).
        """
        if t is None or self.level_p is None or self.pre_silence is not None:
            return 0.0, 0.0  # (within an adopted silence, one more empty bucket is the norm)
        d0, d1, f, w0, w1 = self._slots(t)
        n = (1.0 - f) * self.zero_n[d0] + f * self.zero_n[d1]
        emp = (1.0 - f) * self.zero_p[d0] + f * self.zero_p[d1]
        if expected is None:
            expected = self._forecast(t)[0]
        e = self._inv(expected)
        pois = math.exp(-(700.0 if 700.0 < e else e))  # min(e, 700)
        # A few pseudo-observations of Poisson's answer: a handful of busy buckets
        # without a zero is no proof that a zero is impossible.
        p0 = (n * emp + 4.0 * pois) / (n + 4.0)
        # The hour of the week refines the hour of the day as its visits add up
        # (a Sunday's empty office hours are no silence), as the seasonal forecast does.
        visits = ((1.0 - f) * self.zero_wn[w0] + f * self.zero_wn[w1]) / (
            1.0 if not self.interval else max(1.0, _HOUR / self.interval))
        if visits > 0.0:
            emp_w = (1.0 - f) * self.zero_wp[w0] + f * self.zero_wp[w1]
            p0 = (visits * emp_w + _WEEK_PRIOR * p0) / (visits + _WEEK_PRIOR)
        nll = -math.log(1e-12 if 1e-12 > p0 else p0)  # max(p0, 1e-12)
        return math.sqrt(2.0 * (self.zero_mass + nll)), nll

    def _learn_zero(self, t: float, is_zero: bool, expected: float, zero: tuple | None = None) -> None:
        z = 0.0  # only a zero needs the run's z (and its -log P)
        if is_zero:
            z, nll = zero if zero is not None else self._zero_z(t, expected)
            self.zero_mass += nll
            self.zero_run = self.zero_run + 1 if z > self.shift_z else 0
            if self.zero_run == 1:
                self.silence_from = [self.level_s, self.level_p, self.err_s, self.err_p]
            if self.zero_run >= self.shift_patience and z > 2.0 * self.shift_z:
                # A lasting silence is the new normal: adopt it rather than alarm
                # forever, but remember what it replaces.
                self._remember_before_silence()
                self.level_p = self.level_s = _TX_ZERO
                self.zero_mass, self.zero_run = 0.0, 0
                self.n_shifts += 1
        else:
            self.zero_mass, self.zero_run = 0.0, 0
        if self.zero_run == 0:
            self.silence_from = None
        if is_zero and (z > self.shift_z or self.pre_silence is not None):
            # An anomalous silence does not teach what silence is normal, nor does
            # an adopted one (its empty buckets are not the hours' usual share).
            return
        d0, d1, f, w0, w1 = self._slots(t)
        g = self._per_visit(self.season_alpha)
        zero_n, zero_p, seen = self.zero_n, self.zero_p, float(is_zero)
        zero_wn, zero_wp = self.zero_wn, self.zero_wp
        for w, d, k in ((1.0 - f, d0, w0), (f, d1, w1)):
            if w > 0.0:
                n = zero_n[d] = zero_n[d] + w
                r = 1.0 / n
                zero_p[d] += w * (r if r > g else g) * (seen - zero_p[d])  # max(g, r)
                n = zero_wn[k] = zero_wn[k] + w
                r = 1.0 / n
                zero_wp[k] += w * (r if r > g else g) * (seen - zero_wp[k])

    @property
    def _ewz_sd(self) -> float:
        a = self.persist_alpha
        return math.sqrt(a / (2.0 - a))

    def _next_ewz(self, z: float) -> float:
        # max(-shift_z, min(shift_z, z)), written out (this runs for every bucket)
        lim = self.shift_z
        zc = z if z < lim else lim
        if not zc > -lim:
            zc = -lim
        return self.ewz + self.persist_alpha * (zc - self.ewz)

    def _note_time(self, t: float) -> None:
        """Track the time span and the sampling interval (median of recent forward gaps)."""
        if self.last_t is None:
            self.first_t = self.last_t = t
        elif t > self.last_t:
            self.gaps.append(t - self.last_t)
            if len(self.gaps) > self.interval_window:
                del self.gaps[0]
            self.interval = sorted(self.gaps)[len(self.gaps) // 2]
            self.last_t = t
        elif self.first_t is not None and t < self.first_t:
            self.first_t = t

    def score_learn_one(self, t: float | None, value: float) -> tuple[float, float, str]:
        """``score_one``, ``expected`` and ``direction`` of one point, then ``learn_one``.

        Exactly what the four calls return and do for ``x = {"timestamp": t,
        "value": value}`` (``t`` in epoch seconds or None), with the forecast
        at ``t`` computed once instead of four or five times: the monitor's
        per-bucket path.

        Examples
        --------
        >>> a, b = VolumeModel(grace_period=3), VolumeModel(grace_period=3)
        >>> out = []
        >>> for i, v in enumerate([3, 5, 4, 0, 6, 40, 0, 5]):
        ...     x = {"timestamp": 1e9 + 300 * i, "value": v}
        ...     out.append((a.score_one(x), a.expected(x), a.direction(x)) == b.score_learn_one(1e9 + 300 * i, v))
        ...     a.learn_one(x)
        >>> all(out) and a.state_dict() == b.state_dict()
        True
        """
        if t is not None:
            t = float(t)
        x = {"timestamp": t, "value": value}
        v = self._value(x)
        if v is None or self.level_p is None or (t is not None and not math.isfinite(t)):
            # Rare paths (ignored values, the first point, odd times): the plain calls.
            res = (self.score_one(x), self.expected(x), self.direction(x))
            self.learn_one(x)
            return res
        season = self._season(t)
        fc = self._forecast(t, season) if self.pre_silence is None else self._forecast_for(t, v, season)
        expected_m, scale = fc
        expected = self._inv(expected_m)
        direction = "spike" if v >= expected else "drop"
        zero = None
        if not self.n_seen >= self.grace_period:
            score = 0.0
        else:
            z = (self._tx(v) - expected_m) / scale
            if not math.isfinite(z):
                score = 1.0
            else:
                z = max(abs(z), abs(self._next_ewz(z)) / self._ewz_sd)
                if self.is_count and value == 0:
                    zero = self._zero_z(t, expected_m)
                    z = max(z, zero[0])
                q = z / self.z_scale
                u = math.log1p(q * q) if q < 1e150 else 2.0 * math.log(q)
                score = u / (1.0 + u)
        # What learn_one would compute again: still valid unless the sampling
        # interval (which scales the seasonal blend) or the model space changes.
        self._learn(v, t, (self.interval, self.is_count, season, fc, zero))
        return score, expected, direction

    def learn_one(self, x: dict) -> None:
        """Update the model with one observation (ignored if the value is not finite)."""
        v = self._value(x)
        if v is None:
            self.n_ignored += 1
            return
        self._learn(v, _epoch(x.get("timestamp")), None)

    def _learn(self, v: float, t: float | None, pre: tuple | None) -> None:
        v = max(-_MAX_ABS, min(_MAX_ABS, v))
        if self.is_count and (v < 0 or v != math.floor(v)):
            # Not a count series after all: what was learned in count space is
            # useless, so start again on raw values (n_restarts says it happened).
            ignored, restarts = self.n_ignored, self.n_restarts
            self._reset()
            self.n_ignored, self.n_restarts, self.is_count = ignored, restarts + 1, False
            pre = None
        if self.pre_silence is not None and v > 0.0:
            # The first events after an adopted silence: back to the old regime if
            # they fit it better (as scored), else the silence's level stays; either
            # way the memory has served.
            season = self._season(t)
            if self._fits_pre(v, self._forecast(t, season), self._pre_forecast(t, season)):
                self.level_s, self.level_p, self.err_s, self.err_p = self.pre_silence
            self.pre_silence = None
            pre = None
        if t is not None:
            self._note_time(t)
        zero = None
        if pre is not None and pre[0] == self.interval and pre[1] == self.is_count:
            season, fc, zero = pre[2], pre[3], pre[4]
        else:
            season = self._season(t)
            fc = self._forecast(t, season)
        if t is not None and self.is_count and self.n_seen > 0:
            shifts = self.n_shifts
            self._learn_zero(t, v == 0.0, fc[0], zero)
            if self.n_shifts != shifts:  # the silence was adopted: the levels moved
                fc = self._forecast(t, season)
        v = self._tx(v)

        self.n_seen += 1
        n = self.n_seen
        if self.level_p is None:
            self.level_p = self.level_s = self.prev_v = v
            return

        level_s = self.level_s if self.level_s is not None else v
        expected, scale = fc
        r = v - expected
        z = r / scale

        # Protection: past the first few points, a residual is learned clipped.
        protect = n > 10
        lim = self.clip_z * scale
        r_p = v - self.level_p
        r_s = v - level_s - (season or 0.0)
        if protect:
            # max(-L, min(L, r)), written out: this runs for every bucket of every series.
            sc, fl = _MAD_TO_SD * self.mad_p, self._floor(self.level_p)
            lim_p = self.clip_z * (fl if fl > sc else sc)
            r_p = r_p if r_p < lim_p else lim_p
            if not r_p > -lim_p:
                r_p = -lim_p
            r_s = r_s if r_s < lim else lim
            if not r_s > -lim:
                r_s = -lim

        # Early on, plain running means; later, exponential smoothing.
        # (``b if b > a else a`` is max(a, b) and ``b if b < a else a`` min(a, b),
        # written out: this runs for every bucket of every series.)
        inv_n = 1.0 / n
        a = inv_n if inv_n > self.level_alpha else self.level_alpha
        err_a = inv_n if inv_n > self.scale_alpha else self.scale_alpha
        dev_p = abs(v - self.level_p)
        if dev_p > 1e300:
            dev_p = 1e300
        if season is not None:
            dev_s = abs(v - level_s - season)
            self.err_s += err_a * ((1e300 if 1e300 < dev_s else dev_s) - self.err_s)
        else:
            # Without a seasonal forecast yet, count it as no better than the plain one.
            self.err_s += err_a * (dev_p - self.err_s)
        self.err_p += err_a * (dev_p - self.err_p)
        # A value repeated exactly (a held reading, a frozen feed) says nothing about
        # the noise: letting it shrink the scales would make the first wiggle after a
        # long flat stretch an alarm.
        held = v == self.prev_v
        self.prev_v = v
        # A likely outlier does not teach the scales either (else a spike or a shift
        # would inflate them and hide what follows); a lasting change is handled by
        # _track_shift instead.
        quiet = not held and not (protect and n > self.grace_period and abs(z) > self.shift_z)
        if quiet:
            self.mad_p += err_a * (abs(r_p) - self.mad_p)
            self.mad_s += err_a * (abs(r_s) - self.mad_s)
            slow_a = self.scale_alpha / 10.0
            if inv_n > slow_a:  # max(scale_alpha / 10, 1 / n)
                slow_a = inv_n
            self.slow_p += slow_a * (abs(r_p) - self.slow_p)
            self.slow_s += slow_a * (abs(r_s) - self.slow_s)
        if n > self.grace_period:
            self.ewz = self._next_ewz(z)
        self.level_p += a * r_p
        # The seasonal forecast's level moves per hour, not per point, so that at any
        # sampling rate the daily shape is carried by the slots, not by the level.
        rate = self._per_visit(self.level_alpha)
        self.level_s = level_s + (inv_n if inv_n > rate else rate) * r_s  # max(rate, 1 / n)

        # Within an adopted silence the hours' shape is not learned: empty buckets say
        # nothing about it, and it is what the series comes back to.
        if t is not None and (self.pre_silence is None or v != _TX_ZERO):
            self._learn_season(t, r_s + (season or 0.0), r_s if quiet else None)

        self._track_shift(z if protect and n > self.grace_period else 0.0, v, v - (season or 0.0))

    def _learn_season(self, t: float, offset: float, resid: float | None) -> None:
        """Move the slots around ``t`` towards ``offset`` (the value minus the level)."""
        d0, d1, f, w0, w1 = self._slots(t)
        g = self._per_visit(self.season_alpha)
        gs = self._per_visit(self.scale_alpha) if resid is not None else 0.0
        daily, daily_n, weekly, weekly_n = self.daily, self.daily_n, self.weekly, self.weekly_n
        slot_mad, slot_mad_n = self.slot_mad, self.slot_mad_n
        # ``r if r > g else g`` is max(g, r), written out: this runs for every bucket of every series.
        for w, d, k in ((1.0 - f, d0, w0), (f, d1, w1)):
            if w <= 0.0:
                continue
            n = daily_n[d] = daily_n[d] + w
            r = 1.0 / n
            daily[d] += w * (r if r > g else g) * (offset - daily[d])
            n = weekly_n[k] = weekly_n[k] + w
            r = 1.0 / n
            weekly[k] += w * (r if r > g else g) * (offset - weekly[k])
            if resid is None:
                continue
            n = slot_mad_n[d] = slot_mad_n[d] + w
            r = 1.0 / n
            slot_mad[d] += w * (r if r > gs else gs) * (abs(resid) - slot_mad[d])

    def _track_shift(self, z: float, v: float, des: float) -> None:
        """Adopt a new level after ``shift_patience`` same-side points beyond ``shift_z``."""
        sign = 1 if z > self.shift_z else -1 if z < -self.shift_z else 0
        if sign == 0 and self.run_sign == 0 and not self.run_vals and not self.run_des:
            return  # no run, and none starts (the common case): nothing to change
        if sign == 0 or sign != self.run_sign:
            self.run_sign = sign
            self.run_vals = [v] if sign else []
            self.run_des = [des] if sign else []
            return
        self.run_vals.append(v)
        self.run_des.append(des)
        if len(self.run_vals) >= self.shift_patience:
            # Medians of the run: the new regime's level, untouched by the clipped updates.
            old = self.level_p
            if self.is_count and self.run_sign < 0 and sorted(self.run_vals)[len(self.run_vals) // 2] <= _TX_ZERO:
                self._remember_before_silence()  # a silence, adopted as a shift
            self.level_p = sorted(self.run_vals)[len(self.run_vals) // 2]
            self.level_s = sorted(self.run_des)[len(self.run_des) // 2]
            # The new regime's noise is unknown: widen the scales a little.
            widen = abs(self.level_p - old) / (4 * _MAD_TO_SD)  # type: ignore[operator]
            self.mad_p = max(self.mad_p, widen)
            self.mad_s = max(self.mad_s, widen)
            self.n_shifts += 1
            self.run_sign, self.run_vals, self.run_des = 0, [], []
