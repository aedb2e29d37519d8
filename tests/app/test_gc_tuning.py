"""The worker's and replay's garbage-collector tuning, in a process of its own (it would change this one's)."""

from __future__ import annotations

import subprocess
import sys

from app import gc_tuning


def test_tune_freezes_what_start_up_left_and_collects_less_often():
    code = ("import gc, faust, river, app.pipeline; from app import gc_tuning; "
            "before = gc.get_threshold(); print(gc_tuning.tune(), before, gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    frozen, thresholds = int(out[0]), out[1].strip()
    assert frozen > 10_000, "the imports' objects were not frozen"
    assert thresholds == f"(700, 10, 10) ({gc_tuning.YOUNG_EVERY}, {gc_tuning.OLDER_EVERY}, {gc_tuning.OLDER_EVERY})"
