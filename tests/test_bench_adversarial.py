"""bench/adversarial.py at a tiny scale: every stage runs and writes its report, figures and files.

The quality bars themselves are measured by the full benchmark (README);
here the same code runs with 1% of the training so the suite stays fast.
"""
import json
import os
import subprocess
import sys

import pytest

from gnuradio.e2e.core import adversary, checkpoint, perturbation

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(300)
def test_adversarial_benchmark_runs_at_small_scale(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "adversarial.py"), "--scale", "0.01",
                           "--max-blocks", "5000", "--min-errors", "20", "--attack-messages", "200", "--restarts", "1", "--snapshots", "1", "--quiet",
                           "--out", str(tmp_path), "--runs", str(runs)],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "adversarial.json").read_text())
    receivers = [f"{d} {a}" for a in ("MLP", "CNN") for d in ("regular", "adversarial", "GAN-defended")]
    for r in receivers:
        for attack in ("no attack", "jamming", "white-box", "black-box"):
            assert len(report["curves"][f"{r}, {attack}"]) == len(report["setting"]["grid"])
    assert len(report["bars"]) == 9 and all(isinstance(b["pass"], bool) for b in report["bars"])
    for fig in ("fig3", "fig5a", "fig5b", "fig6a", "fig6b"):
        assert (tmp_path / f"adversarial_{fig}.png").stat().st_size > 0
    # what the example flowgraphs read
    checkpoint.load_link(runs / "regular.safetensors")
    checkpoint.load_link(runs / "defended.safetensors")
    adversary.load_adversary(runs / "adversary.safetensors")
    for name in ("universal", "blackbox", "universal_hamming"):
        perturbation.load_perturbation(runs / f"{name}.safetensors", expect={"M": 16, "n": 7})
