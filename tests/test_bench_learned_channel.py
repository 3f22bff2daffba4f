"""bench/learned_channel.py at a tiny scale: every stage runs and writes its report, figures and files.

The quality bars themselves are measured by the full benchmark (README);
here the same code runs with 0.5% of the training so the suite stays fast.
"""
import json
import os
import subprocess
import sys

import pytest

from gnuradio.e2e.core import channel_gan, checkpoint

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AWGN_METHODS = ["known channel", "model-free", "plain GAN", "RA-GAN", "residual only (no L2)",
                "L2 only (plain generator)", "RA-GAN, output-only D", "RA-GAN, project recipe"]
PA_METHODS = ["known channel", "RA-GAN, paper recipe", "RA-GAN, project recipe", "model-free", "plain GAN, project recipe",
              "mismatch (trained on AWGN)"]


@pytest.mark.timeout(120)
def test_learned_channel_benchmark_runs_at_small_scale(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "learned_channel.py"), "--scale", "0.005",
                           "--max-blocks", "5000", "--min-errors", "20", "--quiet", "--out", str(tmp_path),
                           "--runs", str(runs)], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "learned_channel.json").read_text())
    grid = report["setting"]["grid"]
    assert grid == [float(e) for e in range(9)] and report["setting"]["train_ebn0_db"] == 3.0
    for channel, methods in (("awgn", AWGN_METHODS), ("pa", PA_METHODS)):
        assert list(report["curves"][channel]) == methods
        for m in methods:
            assert [p["ebn0_db"] for p in report["curves"][channel][m]] == grid
            row = report["table"][channel][m]
            assert set(row) >= {"bler_3db", "bler_6db", "ebn0_db_at_target", "gap_db"}
            assert 0.0 <= row["bler_3db"] <= 1.0
    # Every trained method is timed; the mismatch link is the AWGN one, trained once.
    assert set(report["seconds"]["awgn"]) == set(AWGN_METHODS)
    assert set(report["seconds"]["pa"]) == set(PA_METHODS) - {"mismatch (trained on AWGN)"}
    assert all(s >= 0 for s in report["seconds"]["awgn"].values())
    assert len(report["bars"]) == 3 and all(isinstance(b["pass"], bool) for b in report["bars"])
    for history in ("AWGN, plain GAN", "AWGN, RA-GAN"):
        h = report["histories"][history]
        assert len(h["step"]) == len(h["transmitter_loss"]) == len(h["receiver_loss"]) > 0
    fid = report["fidelity"]["pa"]["codewords"]
    assert fid["rows"] > 0 and fid["groups"] == 16 and 0.0 < fid["mmd_p_value"] <= 1.0
    assert report["fidelity"]["pa"]["iid_inputs"]["noise_variance_real"] > 0
    for fig in ("awgn", "pa", "losses", "scatter_awgn", "scatter_pa"):
        assert (tmp_path / f"learned_channel_{fig}.png").stat().st_size > 0
    # What the example flowgraphs read: a link and a channel model learned at 3 dB on 'pa'.
    cfg, _, _ = checkpoint.load_link(runs / "link.safetensors")
    assert (cfg.M, cfg.n, cfg.mode) == (16, 7, "complex")
    model_cfg, generator, _ = channel_gan.load_channel_model(runs / "channel_model.safetensors",
                                                             expect={"n": 7, "M": 16})
    assert model_cfg.ebn0_db == 3.0 and model_cfg.generator == "residual"
