"""Same seed, same output; the files and the command line."""

from __future__ import annotations

import json

import pytest

from sim.__main__ import main
from sim.simulator import Simulator, write_files


def _dump(sim: Simulator):
    return ([e.value for e in sim.mixed()], sim.labels())


def test_same_seed_same_events_and_labels():
    a = _dump(Simulator(seed=5, voters=800, regions=["33", "73"]))
    b = _dump(Simulator(seed=5, voters=800, regions=["33", "73"]))
    assert a == b


def test_other_seed_other_events():
    a = _dump(Simulator(seed=5, voters=600, regions=["33"]))
    b = _dump(Simulator(seed=6, voters=600, regions=["33"]))
    assert a[0][0] != b[0][0]


def test_mixed_is_in_time_order_and_complete():
    sim = Simulator(seed=3, voters=600, regions=["32"])
    mixed = list(sim.mixed())
    assert [e.at for e in mixed] == sorted(e.at for e in mixed)
    assert len(mixed) == len(list(sim.registrations())) + len(list(sim.results()))
    assert len(list(sim.registrations(10))) == 10


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="province"):
        Simulator(regions=["99"]).labels()
    with pytest.raises(ValueError, match="contest"):
        Simulator(contests=("PILKADA",))
    with pytest.raises(ValueError, match="voters"):
        Simulator(voters=10)


def test_write_files(tmp_path):
    counts = write_files(tmp_path, seed=2, voters=800, regions=["35"])
    assert set(counts) == {"registrations.jsonl", "results.jsonl", "labels.jsonl"}
    for name, n in counts.items():
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == n > 0
        json.loads(lines[0])
    regs = [json.loads(x) for x in (tmp_path / "registrations.jsonl").read_text().splitlines()]
    assert all("labels" not in r for r in regs)
    labels = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    ids = {r["event_id"] for r in regs}
    assert any(lb["event_ids"] and lb["event_ids"][0] in ids for lb in labels)


def test_write_files_without_results(tmp_path):
    counts = write_files(tmp_path, seed=2, voters=800, regions=["35"], with_results=False)
    assert "results.jsonl" not in counts and not (tmp_path / "results.jsonl").exists()
    labels = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert labels and all(lb["stream"] == "registrations" for lb in labels)


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--seed", "4", "--voters", "600", "--regions", "31"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["registrations.jsonl"] > 600
    assert main(["--out", str(tmp_path), "--regions", "99"]) == 2
    assert "unknown province" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])


def test_same_output_whatever_the_hash_seed(tmp_path):
    """No set or dict ordering leaks into the output: a child process with another
    PYTHONHASHSEED writes the same bytes as this process."""
    import os
    import subprocess
    import sys

    args = ["--out", str(tmp_path / "child"), "--voters", "500", "--regions", "32", "73"]
    seed = "7" if os.environ.get("PYTHONHASHSEED") != "7" else "8"
    subprocess.run([sys.executable, "-m", "sim", *args], check=True, capture_output=True,
                   env={**os.environ, "PYTHONHASHSEED": seed})
    write_files(tmp_path / "here", seed=1, voters=500, regions=["32", "73"])
    for name in ("registrations.jsonl", "results.jsonl", "labels.jsonl"):
        assert (tmp_path / "child" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
