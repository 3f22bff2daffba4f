"""The live-training GUI (examples/model_free_awgn.grc) shows the training as it happens.

grcc generates the QT flowgraph; a driver in a fresh process
(QT_QPA_PLATFORM=offscreen) starts it from an untrained M=16, n=7 link,
reads what the window displays every 0.1 s while 600 batches (300 receiver
steps) train, and once more when it has ended: the text of the three labels
(running loss, BLER, receiver steps) and the loss curve (the points Metric
History sent to the QT time sink, and the number of samples the sink shows).

Bars, each of which a GUI that does not follow the training fails:
- the steps label shows at least 4 different values while the run goes on,
  never decreasing, and ends at 300;
- the loss label's last value is finite and below a third of its first
  finite one (the untrained link starts near ln 16 = 2.8; in development
  300 steps ended between 0.1 and 0.3);
- the BLER label ends below its first finite value;
- the loss curve has one point per 10 receiver steps, the time sink
  displays that many samples, and the mean of its last 3 points is below a
  third of the mean of its first 3.
"""
import json
import math
import os
import subprocess
import sys

import pytest

from gnuradio.e2e.core import checkpoint, config, models

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # about 15 s: grcc, Qt, torch, 600 batches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES, METRICS_EVERY = 600, 10

DRIVER = """
import importlib.util, json, sys, threading, time
from PyQt5 import Qt
app = Qt.QApplication(sys.argv)
spec = importlib.util.spec_from_file_location("model_free_awgn", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = module.model_free_awgn(**json.loads(sys.argv[2]))


def shown():
    return {"loss": tb._qtgui_label_loss_label.text(), "bler": tb._qtgui_label_bler_label.text(),
            "steps": tb._qtgui_label_steps_label.text()}


tb.start()
tb.show()
running = threading.Thread(target=tb.wait)
running.start()
during = []
while running.is_alive():
    app.processEvents()
    during.append(shown())
    time.sleep(0.1)
final_steps = str(tb.e2e_model_free_rx_0.metric("receiver_steps"))
t0 = time.time()
while shown()["steps"] != final_steps and time.time() - t0 < 10:  # the probes poll 4 times a second
    app.processEvents()
    time.sleep(0.05)
app.processEvents()
print("RESULT " + json.dumps({"during": during, "final": shown(), "steps": int(final_steps),
                              "curve": tb.loss_history.history(), "points": tb.loss_history.count(),
                              "sink_samples": tb.qtgui_time_sink_loss.nsamps()}))
tb.close()
"""


def number(text):
    return float(text) if text not in ("", "nan") else math.nan


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """What the window displayed during and after the run."""
    tmp = tmp_path_factory.mktemp("live_gui")
    subprocess.run(["grcc", "-o", str(tmp), os.path.join(ROOT, "examples", "model_free_awgn.grc")],
                   check=True, capture_output=True, timeout=100)
    cfg = config.LinkConfig(M=16, n=7, mode="complex")
    start = tmp / "start.safetensors"
    checkpoint.save_link(start, cfg, *models.build(cfg, seed=0))
    kwargs = dict(checkpoint=str(start), tx_out=str(tmp / "tx.safetensors"), rx_out=str(tmp / "rx.safetensors"),
                  link_out=str(tmp / "link.safetensors"), num_batches=BATCHES, rate=5e5)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp / "model_free_awgn.py"), json.dumps(kwargs)],
                          capture_output=True, text=True, env=env, timeout=100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])


def test_the_steps_label_counts_up_while_the_run_goes_on(shown):
    steps = [int(s["steps"]) for s in shown["during"]]
    assert steps == sorted(steps), steps
    assert len(set(steps)) >= 4, steps
    assert shown["steps"] == BATCHES // 2 and int(shown["final"]["steps"]) == BATCHES // 2


def test_the_loss_and_bler_labels_follow_the_training(shown):
    losses = [number(s["loss"]) for s in shown["during"]] + [number(shown["final"]["loss"])]
    finite = [v for v in losses if math.isfinite(v)]
    assert len(finite) >= 4, losses
    print(f"\nloss label: first {finite[0]:.4f}, last {finite[-1]:.4f}")
    assert 0 < finite[-1] < finite[0] / 3, finite
    blers = [v for v in (number(s["bler"]) for s in shown["during"] + [shown["final"]]) if math.isfinite(v)]
    assert 0 <= blers[-1] < blers[0] <= 1, blers


def test_the_loss_curve_shows_every_point_and_falls(shown):
    curve = shown["curve"]
    assert shown["points"] == len(curve) == BATCHES // 2 // METRICS_EVERY, (shown["points"], len(curve))
    assert shown["sink_samples"] == len(curve)  # the QT time sink displays the whole history
    first, last = sum(curve[:3]) / 3, sum(curve[-3:]) / 3
    print(f"\nloss curve: {len(curve)} points, first 3 mean {first:.4f}, last 3 mean {last:.4f}")
    assert last < first / 3, curve
