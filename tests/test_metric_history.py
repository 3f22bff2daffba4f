"""metric_history: metrics messages in, the recent history of one metric out as a PDU a stock QT time sink plots."""
import math
import os
import subprocess
import sys
import time

import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio.e2e import metric_history
from gnuradio.e2e.block_common import dict_message


def run(block, messages, expect_out, timeout=10.0):
    """Post `messages` to block's metrics port in a running flowgraph; returns the PDUs it published."""
    tb = gr.top_block()
    sink = blocks.message_debug()
    tb.msg_connect(block, "history", sink, "store")
    tb.start()
    try:
        for msg in messages:
            block.to_basic_block()._post(pmt.intern("metrics"), msg)
        deadline = time.monotonic() + timeout
        while sink.num_messages() < expect_out and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # anything beyond what was expected would show now
    finally:
        tb.stop()
        tb.wait()
    return [sink.get_message(i) for i in range(sink.num_messages())]


def unpack(pdu):
    meta, data = pmt.car(pdu), pmt.cdr(pdu)
    key = pmt.symbol_to_string(pmt.dict_ref(meta, pmt.intern("key"), pmt.PMT_NIL))
    count = pmt.to_long(pmt.dict_ref(meta, pmt.intern("count"), pmt.PMT_NIL))
    return key, count, list(pmt.f32vector_elements(data))


def test_each_value_is_published_with_the_history_before_it_oldest_first():
    block = metric_history("loss", length=3)
    losses = [2.5, 1.25, 0.5, 0.25, 0.125]
    out = run(block, [dict_message({"loss": v, "receiver_steps": 10 * i}) for i, v in enumerate(losses)], 5)
    assert [unpack(p) for p in out] == [
        ("loss", 1, [2.5]), ("loss", 2, [2.5, 1.25]), ("loss", 3, [2.5, 1.25, 0.5]),
        ("loss", 4, [1.25, 0.5, 0.25]), ("loss", 5, [0.5, 0.25, 0.125])]  # the oldest dropped once 3 are kept
    assert block.history() == [0.5, 0.25, 0.125] and block.count() == 5 and block.skipped() == 0


def test_integer_metrics_are_plotted_too():
    block = metric_history("receiver_steps")
    out = run(block, [dict_message({"receiver_steps": s}) for s in (10, 20)], 2)
    assert unpack(out[-1]) == ("receiver_steps", 2, [10.0, 20.0])


def test_messages_without_a_finite_value_add_no_point():
    block = metric_history("bler")
    messages = [dict_message({"bler": float("nan")}),      # before the first receiver batch
                dict_message({"loss": 0.3}),               # another metric only
                dict_message({"bler": "high"}),            # not a number
                pmt.from_double(0.1),                      # not a dict
                dict_message({"bler": float("inf")}),
                dict_message({"bler": 0.05})]
    out = run(block, messages, 1)
    assert [unpack(p) for p in out] == [("bler", 1, pytest.approx([0.05]))]
    assert block.skipped() == 5 and block.count() == 1


@pytest.mark.parametrize("kwargs, word", [
    (dict(key=""), "key"), (dict(key=3), "key"), (dict(key="loss", length=1), "length"),
    (dict(key="loss", length=2.5), "length")])
def test_bad_parameters_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        metric_history(**kwargs)


# A QApplication in the pytest process would outlive the test: the QT part runs in a fresh process.
_QT_SINK_DRIVER = """
import math, sys, time
import numpy as np, pmt
from PyQt5 import Qt
from gnuradio import gr, qtgui
from gnuradio.e2e import metric_history
from gnuradio.e2e.block_common import dict_message
app = Qt.QApplication(sys.argv)
block = metric_history("loss", length=50)
time_sink = qtgui.time_sink_f(1024, 1.0, "loss", 0, None)  # 0 stream inputs: the message ("in") variant
time_sink.set_update_time(0.0)
tb = gr.top_block()
tb.msg_connect(block, "history", time_sink, "in")
tb.start()
for i in range(37):
    block.to_basic_block()._post(pmt.intern("metrics"), dict_message({"loss": math.exp(-i / 10)}))
deadline = time.monotonic() + 10
while time_sink.nsamps() != 37 and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
tb.stop()
tb.wait()
print("RESULT", block.count(), time_sink.nsamps(), np.allclose(block.history(), np.exp(-np.arange(37) / 10), rtol=1e-6))
del tb, time_sink  # a parentless QT sink must go before the QApplication, or the exit segfaults
"""


@pytest.mark.timeout(60)
def test_the_stock_qt_time_sink_plots_the_whole_history():
    """A QT GUI Time Sink of type Float Message takes the PDU and redraws with one sample per point."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", _QT_SINK_DRIVER], capture_output=True, text=True, env=env,
                          timeout=50)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, nsamps, same = proc.stdout.split("RESULT ", 1)[1].split()
    assert int(count) == 37
    assert int(nsamps) == 37, nsamps  # the sink's trace is the history, not its 1024 default
    assert same == "True"


def test_training_blocks_give_a_function_probe_one_metric(tmp_path):
    """What the GUI's Function Probes call: metric(name) -> a number; a wrong name says which there are."""
    from gnuradio.e2e import model_free_rx, model_free_tx
    from gnuradio.e2e.core import checkpoint, config, models
    cfg = config.LinkConfig(M=16, n=7)
    checkpoint.save_link(tmp_path / "start.safetensors", cfg, *models.build(cfg, seed=0))
    rx = model_free_rx(str(tmp_path / "start.safetensors"), 16, 7, batch_size=10)
    tx = model_free_tx(str(tmp_path / "start.safetensors"), 16, 7, batch_size=10)
    assert rx.metric("receiver_steps") == 0 and tx.metric("transmitter_steps") == 0
    assert math.isnan(rx.metric("loss"))  # no receiver batch yet
    with pytest.raises(KeyError, match="'receiver_steps'"):
        rx.metric("steps")
