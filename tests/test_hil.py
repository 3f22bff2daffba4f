"""Hardware in the loop: live training over a USRP, run when a radio answers, skipped otherwise.

A B210 (or any USRP UHD finds with E2E_USRP_ARGS, default "type=b200")
transmits and receives at once, over the air or through a cable with an
attenuator (30 dB or more), at E2E_USRP_FREQ (default the paper's 2.3 GHz)
and 5 MS/s, the paper's OFDM (FFT 128, CP 16, 6 guard carriers each side,
DC unused). Live model-free training of an M=16, n=7 link runs for at most
E2E_HIL_SECONDS (default 120) and must bring the receiver's running BLER
below 0.05 within that time. The same chain runs against a simulated channel
in tests/test_ofdm_blocks.py; without a radio these tests say why they skip.

Run them with: source setup_env.sh && python -m pytest -m hil tests/test_hil.py -s
"""
import os
import time

import pytest
from gnuradio import e2e, gr

from gnuradio.e2e.core import checkpoint, config, models

pytestmark = pytest.mark.hil

ARGS = os.environ.get("E2E_USRP_ARGS", "type=b200")
FREQ = float(os.environ.get("E2E_USRP_FREQ", "2.3e9"))
SECONDS = float(os.environ.get("E2E_HIL_SECONDS", "120"))
RATE = 5e6


def find_usrp():
    """The reason no USRP answers, or None when one does (GNU Radio 3.10.5's find_devices is broken)."""
    try:
        from gnuradio import uhd
    except ImportError as e:
        return f"gr-uhd is not installed ({e})"
    try:
        uhd.usrp_source(ARGS, uhd.stream_args(cpu_format="fc32", channels=[0]))
    except Exception as e:  # UHD raises a plain RuntimeError / LookupError naming the device address
        return f"no USRP answers to {ARGS!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return None


@pytest.fixture(scope="module")
def usrp():
    reason = find_usrp()
    if reason:
        pytest.skip(reason)
    from gnuradio import uhd
    return uhd


def test_live_training_over_the_air(usrp, tmp_path):
    M, n, mpf, fpb = 16, 7, 250, 2
    B = mpf * fpb
    cfg = config.LinkConfig(M=M, n=n, decoder_hidden=(64,))
    start = checkpoint.save_link(tmp_path / "start.safetensors", cfg, *models.build(cfg, seed=0))
    tb = gr.top_block()
    src = e2e.training_source(M, B, 0)
    tx = e2e.model_free_tx(start, M, n, batch_size=B, lr=5e-3, blocking=False)
    otx, orx = e2e.ofdm_e2e_tx(n, mpf, gap_symbols=4), e2e.ofdm_e2e_rx(n, mpf, frames_per_batch=fpb)
    rx = e2e.model_free_rx(start, M, n, batch_size=B, lr=5e-3, blocking=False)
    sink = usrp.usrp_sink(ARGS, usrp.stream_args(cpu_format="fc32", channels=[0]), "packet_len")
    source = usrp.usrp_source(ARGS, usrp.stream_args(cpu_format="fc32", channels=[0]))
    for radio in (sink, source):
        radio.set_samp_rate(RATE)
        radio.set_center_freq(FREQ, 0)
    sink.set_normalized_gain(0.6, 0)
    source.set_normalized_gain(0.5, 0)
    from gnuradio import blocks
    tb.connect(src, tx, otx, blocks.multiply_const_cc(0.3), sink)
    tb.connect(source, orx, rx, blocks.null_sink(gr.sizeof_char))
    tb.msg_connect(rx, "loss", tx, "loss")
    tb.start()
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            time.sleep(1.0)
            m = rx.training_counters()
            if m["receiver_steps"] >= 200 and m["bler"] < 0.05:
                break
    finally:
        tb.stop()
        tb.wait()
    m, frames = rx.training_counters(), orx.counters()
    print(f"\nover the air: {frames}, receiver {m}")
    assert frames["frames_out"] > 0, f"no frame received over the air: {frames}"
    assert m["bler"] < 0.05, f"running BLER {m['bler']} after {SECONDS} s ({m['receiver_steps']} steps)"


def test_the_skip_reason_names_the_device_address():
    reason = find_usrp()
    if reason is None:
        pytest.skip("a USRP answered: nothing to check about the reason")
    assert ARGS in reason or "gr-uhd" in reason
