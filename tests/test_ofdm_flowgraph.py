"""The OFDM example flowgraphs, compiled by grcc and run as a user runs them (their generated scripts).

examples/ofdm_loopback_sim_headless.grc: live model-free training, M=16,
n=7, 600 batches of 2 OFDM frames (250 messages each) over the simulated
radio channel at the defaults (3-path multipath with a 0.37-sample timing
offset, 0.3 subcarrier spacings of frequency offset, Eb/N0 12 dB).

Bars (each one can fail):
- every frame is accounted for: none misframed or repeated, and at most 2 %
  lost (measured: 10 of 4000 frames at these settings, 2 of 1200 in a
  600-batch run; a binomial count with mean 3 passes 24 with probability
  ~1e-13);
- the merged link's neural decoder on AWGN at 12 dB: Wilson 99.9 % upper
  bound on its BLER below 0.1 (fresh link: 0.91; measured after 600 batches
  0.015);
- the receiver's last running BLER on the OFDM channel below 0.5 (fresh
  link ~0.9; measured 0.22 after 600 batches, 0.11 after 2000).

examples/ofdm_stock_reference_headless.grc: GNU Radio's ofdm_tx / ofdm_rx
on the same channel. At 40 dB every packet arrives intact; at 20 dB its
packet error rate is 0.21 over 6000 packets (measured), and 300 packets
give a standard error of 0.024, so it must fall in 0.21 +- 0.1 (4 sigma).
That pins the reference's noise level and scaling (payload Es = 1 per
resource element, as the learned link's) to what the README reports.
"""
import ast
import json
import os
import subprocess
import sys

import pytest

from flowgraph_helpers import run_gui_offscreen
from gnuradio.e2e.core import checkpoint, config, evaluation, learned, models, theory

pytestmark = pytest.mark.slow  # each runs a generated flowgraph script for several seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES, FRAMES_PER_BATCH = 600, 2


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    out = tmp_path_factory.mktemp("grcc")
    for name in ("ofdm_loopback_sim_headless", "ofdm_stock_reference_headless"):
        proc = subprocess.run(["grcc", "-o", str(out), os.path.join(ROOT, "examples", name + ".grc")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def run_script(path, *args):
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def printed_dict(stdout, prefix):
    """The dict the script printed on the line starting with `prefix `."""
    lines = [line for line in stdout.splitlines() if line.startswith(prefix + " ")]
    assert lines, f"no '{prefix}' line in:\n{stdout[-2000:]}"
    return ast.literal_eval(lines[-1][len(prefix) + 1:])


@pytest.mark.timeout(240)
def test_live_training_over_the_simulated_ofdm_channel(scripts, tmp_path):
    cfg = config.LinkConfig(M=16, n=7)
    start = tmp_path / "start.safetensors"
    checkpoint.save_link(start, cfg, *models.build(cfg, seed=0))
    out = {k: tmp_path / f"{k}.safetensors" for k in ("tx", "rx", "link")}
    stdout = run_script(scripts / "ofdm_loopback_sim_headless.py", "-c", str(start), "-t", str(out["tx"]),
                        "-o", str(out["rx"]), "-L", str(out["link"]), "-N", str(BATCHES))

    frames = BATCHES * FRAMES_PER_BATCH
    ofdm_rx = printed_dict(stdout, "ofdm receiver")
    assert ofdm_rx["misframed"] == ofdm_rx["frames_repeated"] == 0, ofdm_rx
    assert ofdm_rx["frames_lost"] <= 0.02 * frames, ofdm_rx
    # The receiver holds the last frame of a finite stream (it waits for more samples).
    assert frames - 0.02 * frames <= ofdm_rx["frames_out"] + ofdm_rx["frames_lost"] <= frames - 1, ofdm_rx
    receiver = printed_dict(stdout, "receiver")
    assert receiver["worker_errors"] == receiver["malformed_tags"] == receiver["bad_length_tags"] == 0, receiver
    assert receiver["bler"] < 0.5, receiver

    _, enc, dec = checkpoint.load_link(out["link"])
    point = evaluation.evaluate_bler(learned.LearnedLink(enc, dec), [12.0], min_errors=10 ** 9,
                                     max_blocks=20_000, seed=3)[0]
    upper = theory.wilson_interval(point["block_errors"], point["blocks"], 0.999)[1]
    print(f"\nOFDM live training: {ofdm_rx}; running BLER {receiver['bler']:.3f}; "
          f"AWGN 12 dB BLER {point['bler']:.4f} (upper {upper:.4f})")
    assert upper < 0.1, point


def stock_result(scripts, *args):
    stdout = run_script(scripts / "ofdm_stock_reference_headless.py", *args)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.timeout(120)
def test_the_stock_reference_receives_everything_at_high_snr_and_its_measured_rate_at_20_db(scripts):
    clean = stock_result(scripts, "-e", "40", "-N", "300")
    assert clean["packets_sent"] == clean["packets_intact"] == clean["packets_received"] == 300, clean
    noisy = stock_result(scripts, "-e", "20", "-N", "300")
    print(f"\nstock OFDM: 40 dB {clean['packet_error_rate']:.3f}, 20 dB {noisy['packet_error_rate']:.3f}")
    assert abs(noisy["packet_error_rate"] - 0.21) < 0.1, noisy


@pytest.mark.timeout(120)
def test_the_gui_flowgraph_runs_offscreen_and_its_probes_see_the_counters(tmp_path):
    subprocess.run(["grcc", "-o", str(tmp_path), os.path.join(ROOT, "examples", "ofdm_loopback_sim.grc")],
                   check=True, capture_output=True, timeout=100)
    cfg = config.LinkConfig(M=16, n=7)
    start = tmp_path / "start.safetensors"
    checkpoint.save_link(start, cfg, *models.build(cfg, seed=0))
    out = {k: str(tmp_path / f"{k}.safetensors") for k in ("tx", "rx", "link")}
    result = run_gui_offscreen(
        tmp_path / "ofdm_loopback_sim.py",
        dict(checkpoint=str(start), tx_out=out["tx"], rx_out=out["rx"], link_out=out["link"], num_batches=200,
             rate=1e7),
        '{"probe": tb.ofdm_counters, "counters": tb.e2e_ofdm_e2e_rx_0.counters(), '
        '"loss_label": tb._qtgui_label_loss_label.text(), "loss_points": tb.loss_history.count(), '
        '"steps": tb.e2e_model_free_rx_0.metric("receiver_steps")}',
        until='tb.ofdm_counters.get("frames_out", 0) >= 300 and tb._qtgui_label_loss_label.text() != "nan"',
        close=True)  # close: the stop snippet merges
    counters = result["counters"]
    # 400 frames sent; the receiver holds the last one, and a few may be lost (at most 2 %, as above).
    assert 400 - 8 <= counters["frames_out"] + counters["frames_lost"] <= 399, counters
    assert result["probe"].get("frames_out", 0) >= 300, result  # the GUI's probe saw the receiver's counters
    assert 0 < float(result["loss_label"]) < 5, result  # the loss label shows the receiver's running loss
    assert result["loss_points"] == result["steps"] // 50 >= 1, result  # a point on the loss curve every 50 steps
    assert checkpoint.load_link(out["link"])[0].M == 16  # merged when the window closed
