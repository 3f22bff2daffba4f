"""bench/mpa.py at a tiny scale: every stage runs and writes its report, figures and checkpoints.

The quality bar itself is measured by the full benchmark (README); here the
same code runs with 1% of the training and evaluation so the suite stays fast.
"""
import json
import os
import subprocess
import sys

import pytest

from gnuradio.e2e.core import precoder

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["frozen", "alpha0 (MPA link, no adaptation)", "MPA adaptation", "gradient adaptation",
           "classical: selection", "classical: mmse", "classical: inversion", "retrained"]


@pytest.mark.timeout(120)
def test_mpa_benchmark_runs_at_small_scale(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "mpa.py"), "--scale", "0.01", "--quiet",
                           "--out", str(tmp_path), "--runs", str(runs)], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "mpa.json").read_text())
    grid = report["setting"]["grid"]
    assert grid[0] == 0.0 and 8.0 in grid and report["setting"]["train_ebn0_db"] == 8.0
    assert list(report["summary"]) == ["train", "flat", "selective", "deep_fade"]
    for family, curves in report["curves"].items():
        assert list(curves) == METHODS
        for curve in curves.values():
            assert [p["ebn0_db"] for p in curve] == grid and all(0 <= p["bler"] <= 1 for p in curve)
    # One bar per unseen family, each naming the method that closes most of the gap.
    assert [b["bar"].split(":")[0] for b in report["bars"]] == ["flat", "selective", "deep_fade"]
    for b in report["bars"]:
        assert (b["pass"] in (True, False) and b["best_method"] in METHODS) or (b["pass"] is None and b["note"])
    cost = report["cost"]["summary"]
    assert set(cost) == {"train", "flat", "selective", "deep_fade"}
    assert all(c["mpa_ms"] > 0 and c["gradient_ms"] > 0 for c in cost.values())
    assert [k for k, _ in report["cost"]["bler_by_steps"]["deep_fade"]] == [0, 1, 2, 4, 8, 16, 32, 64]
    for fig in ("bler", "gap", "convergence"):
        assert (tmp_path / f"mpa_{fig}.png").stat().st_size > 0
    # What the example flowgraphs read.
    cfg, _, _ = precoder.load_precoder(runs / "precoder_mpa.safetensors", expect={"M": 16, "N": 8})
    assert cfg.architecture == "mpa"
    cfg, _, _ = precoder.load_precoder(runs / "precoder_plain.safetensors", expect={"M": 16, "N": 8})
    assert cfg.architecture == "plain"
