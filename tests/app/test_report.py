"""app.report: the HTML replay report, rendered for real in headless Chromium.

Chromium comes from Debian's ``chromium`` package; without it the test fails.
The screenshot is decoded with zlib + numpy (no imaging library needed).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from app.report import main, render_report

DETECTORS = [("volume", "warning"), ("duplicate_nik", "critical"), ("tally_arithmetic", "critical"),
             ("ocr_misread", "warning"), ("peer_outlier", "info")]
# (province, regency, registered per TPS, voters per TPS)
PROVINCES = [("32", "3273", 200, 160), ("35", "3578", 200, 120), ("73", "7371", 250, 200)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def replay(tmp_path):
    events, alerts = [], []
    for p, (province, regency, registered, voters) in enumerate(PROVINCES):
        for i in range(10):
            events.append({
                "event_id": f"res-{province}-{i}", "submitted_at": f"2024-02-14T{14 + i // 4:02d}:{(i * 13) % 60:02d}:00+07:00",
                "tps": f"{regency}010001{i:03d}", "region": {"province": province, "regency": regency},
                "contest": "PPWP", "revision": 0, "registered": {"dpt": registered, "dptb": 0, "dpk": 0},
                "voters": voters, "votes": {"01": voters - 5}, "valid": voters - 5, "invalid": 5,
            })
    # A revision of one TPS in 32 replaces its first upload (voters 160 -> 60).
    events.append({**events[0], "event_id": "res-32-0-rev1", "revision": 1, "voters": 60})
    # Another contest with fewer TPS does not mix into the PPWP turnout.
    events.append({**events[1], "event_id": "dpr-32-1", "contest": "DPR", "voters": 1})
    for n in range(40):
        detector, severity = DETECTORS[n % len(DETECTORS)]
        ev = events[n % 30]
        alerts.append({
            "schema": "alert.v1", "alert_id": f"{detector}-{n:020x}", "detector": detector, "severity": severity,
            "score": 0.9, "subject": {"kind": "tps", "id": ev["tps"]}, "region": ev["region"],
            "summary": "Jumlah suara <b>tidak</b> sesuai", "evidence": {}, "event_ids": [ev["event_id"]],
            "detected_at": "2026-11-28T03:00:00Z", "status": "open",
        })
    # The same alert updated then resolved counts once, with its latest severity.
    alerts.append({**alerts[0], "status": "updated"})
    alerts.append({**alerts[0], "status": "resolved"})
    return (write_jsonl(tmp_path / "alerts.jsonl", alerts + ["{not json"]),
            [write_jsonl(tmp_path / "results.jsonl", events)], tmp_path / "out" / "report.html")


def test_report_contents(replay):
    alerts, events, out = replay
    page = render_report(alerts, events, out).read_text()
    assert page.startswith("<!DOCTYPE html>")
    # Self-contained: nothing fetched from anywhere.
    for forbidden in ("http://", "https://", "<script", "<link", "src=", "@import", "url("):
        assert forbidden not in page, forbidden
    assert "40 distinct alerts" in page and "42 alert records" in page
    assert "1 in alert files" in page  # the line that is not JSON
    for detector, _ in DETECTORS:
        assert detector in page
    # PPWP turnout: 32 = (9*160 + 60) / 2000, 35 = 60 %, 73 = 80 %.
    assert "Turnout by province — PPWP" in page
    assert "75.0%" in page and "60.0%" in page and "80.0%" in page
    assert "Jawa Barat" in page and "3273 (Jawa Barat)" in page
    # Alert text is escaped, never markup.
    assert "<b>tidak</b>" not in page


def test_main_cli(replay, capsys):
    alerts, events, out = replay
    assert main([str(alerts), *map(str, events), "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(alerts), str(alerts.with_name("missing.jsonl")), "--out", str(out)])


# --- rendering in a real browser ----------------------------------------------

def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG into an (h, w, channels) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: running sum per channel
            cur = line.reshape(-1, bpp).cumsum(axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average (3) and Paeth (4) depend on the byte to the left
            raw, up, cur_l = line.tolist(), prev.tolist(), [0] * stride
            for i in range(stride):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    cur_l[i] = (raw[i] + (a + b) // 2) & 0xFF
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                    cur_l[i] = (raw[i] + pred) & 0xFF
            cur = np.array(cur_l, np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def colour_stats(pixels: np.ndarray) -> tuple[int, float, set[tuple[int, int, int]]]:
    """(distinct colours, share of non-white pixels, the colours)."""
    flat = pixels.reshape(-1, 3)
    packed = (flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]
    unique = np.unique(packed)
    colours = {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in unique}
    non_white = float(np.mean(flat.min(axis=1) < 240))
    return len(unique), non_white, colours


def _png(width: int, height: int, rgb: tuple[int, int, int], filter_type: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    row = bytes(rgb) * width
    if filter_type == 1:  # Sub-filtered: first pixel as is, then zero differences
        row = bytes(rgb) + bytes(3 * (width - 1))
    raw = b"".join(bytes([filter_type]) + row for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_decoder_sees_a_blank_page_as_blank():
    for filter_type in (0, 1):
        n, non_white, colours = colour_stats(png_pixels(_png(40, 30, (255, 255, 255), filter_type)))
        assert (n, non_white, colours) == (1, 0.0, {(255, 255, 255)})
        n, _, colours = colour_stats(png_pixels(_png(4, 3, (31, 119, 180), filter_type)))
        assert colours == {(31, 119, 180)}


def test_report_renders_in_headless_chromium(replay, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium not found on PATH: install it with `apt-get install chromium`", pytrace=False)
    alerts, events, out = replay
    render_report(alerts, events, out)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
         out.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    pixels = png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (1600, 1200)
    n, non_white, colours = colour_stats(pixels)
    assert n >= 20, f"the page looks blank: {n} distinct colours"
    assert non_white > 0.03, f"the page looks blank: {non_white:.1%} non-white pixels"
    # The charts drew: detector colours of the timeline, the critical severity
    # bar and the turnout bars (green >= 75 %, red < 60 % ... 35 is exactly 60 %: orange).
    for name, rgb in {"volume": (0x1F, 0x77, 0xB4), "duplicate_nik": (0xD6, 0x27, 0x28),
                      "critical": (0xC0, 0x39, 0x2B), "turnout >= 75%": (0x27, 0xAE, 0x60),
                      "turnout 60-75%": (0xE6, 0x7E, 0x22)}.items():
        assert rgb in colours, f"no {name} bar ({rgb}) in the screenshot"
