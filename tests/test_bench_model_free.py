"""bench/model_free.py at a tiny scale: every experiment runs and writes its report.

The quality bars themselves are measured by the full benchmark (README); here
the same code runs with 0.5% of the training so the suite stays fast.
"""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs every benchmark experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(300)
def test_model_free_benchmark_runs_at_small_scale(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "model_free.py"), "--scale", "0.005",
                           "--max-blocks", "5000", "--min-errors", "20", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in ("awgn", "rbf", "live"):
        report = json.loads((tmp_path / f"model_free_{kind}.json").read_text())
        free = "model-free, live flowgraph" if kind == "live" else "model-free"
        assert {"model-aware", free} <= set(report["curves"])
        assert len(report["curves"][free]) == len(report["snr_grid_db"])
        assert (tmp_path / f"model_free_{kind}.png").stat().st_size > 0
    fb = json.loads((tmp_path / "model_free_feedback.json").read_text())
    assert [r["snr_fb_db"] for r in fb["rows"]] == [-10.0, -5.0, 0.0, 6.0, 10.0, 20.0, None]
    assert (tmp_path / "model_free_feedback.png").stat().st_size > 0
