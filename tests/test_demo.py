"""The main job (apps/demo.py) end to end at a small size.

Training is cut to a few percent of its steps and the Monte-Carlo budget to
a few thousand blocks, so the link-quality bars need not hold here (make
demo measures them). What must hold: every stage runs and writes what it
promises, the exit status says whether every bar passed, and the bar that
does not depend on training, the flowgraph counting the same BLER as the
offline evaluator, passes.
"""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the main job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(300)
def test_demo_runs_and_writes_results(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "apps", "demo.py"), "--out", str(out), "--scale", "0.02",
         "--min-errors", "20", "--max-blocks", "20000", "--loopback-messages", "5000", "--loopback-runs", "3"],
        capture_output=True, text=True, timeout=280)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for mode in ("real", "complex"):
        for name in ("checkpoint.safetensors", "loss.png", "constellation.png", "bler.json", "bler.png"):
            assert (out / mode / name).stat().st_size > 0, f"{mode}/{name} missing"
        curves = json.loads((out / mode / "bler.json").read_text())["curves"]
        assert {"learned, neural decoder", "learned, ML detection", "Hamming (7,4) soft ML",
                "Hamming (7,4) hard", "uncoded BPSK (4 bits)"} <= set(curves)
        assert [p["ebn0_db"] for p in curves["learned, neural decoder"]] == list(range(9))
    assert (out / "bler_real_vs_complex.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    bars = summary["quality_bars"]
    assert len(bars) == 5 and all(isinstance(b["pass"], bool) for b in bars)
    assert proc.returncode == (0 if all(b["pass"] for b in bars) else 1), (proc.returncode, bars)
    loopback = bars[-1]
    assert len(loopback["flowgraph"]["runs"]) == 3
    assert all(run["blocks"] == 5000 for run in loopback["flowgraph"]["runs"])  # no message lost in the channel
    assert loopback["pass"], loopback
    assert "quality bars:" in proc.stdout
