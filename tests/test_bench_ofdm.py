"""bench/ofdm_link.py at its --quick size: every measurement runs and lands in its report.

The comparison itself (operating point, error rates, throughput ratio) is
measured by the full benchmark (README); here the same code runs small.
"""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains live over the OFDM flowgraph and runs the stock reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(240)
def test_ofdm_benchmark_runs_at_small_scale(tmp_path):
    report, plot = tmp_path / "ofdm.json", tmp_path / "ofdm.png"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "ofdm_link.py"), "--quick",
                           "--json", str(report), "--plot", str(plot)], capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r = json.loads(report.read_text())
    fers = [p["fer"] for p in r["stock_sweep"]]
    assert fers == sorted(fers, reverse=True) and fers[0] > fers[-1], r["stock_sweep"]  # falls with Eb/N0
    assert set(r["over_ofdm"]) == {"live model-free", "live model-free, ML detection", "offline model-aware",
                                   "uncoded Gray QPSK", "uncoded Gray QPSK, static one-tap"}
    assert r["train_ebn0_db"] == r["ebn0_db"] - 6
    for name, o in r["over_ofdm"].items():
        assert o["frames"] == 200 and o["false_frames"] == 0 and o["frames_lost"] <= 4, (name, o)
        assert 0 <= o["mer"] <= o["fer"] <= 1, (name, o)
    assert r["live_receiver"]["misframed"] == 0
    assert len(r["offline_curve"]) == 21 and r["offline_curve"][-1][1] < r["offline_curve"][0][1]  # it trained
    assert r["throughput"]["ratio"] > 0 and r["profile"]["block_seconds"]
    assert plot.stat().st_size > 0
