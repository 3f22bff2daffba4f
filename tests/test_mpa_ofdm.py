"""The attention precoder carried by OFDM: core.ofdm_subchannels, ofdm_subchannel_fading, ofdm_csi_tagger and
examples/mpa_ofdm_headless.grc."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import e2e
from gnuradio.e2e.core import ofdm, ofdm_subchannels as osc, theory
from gnuradio.e2e.subchannel_fading import realisation_gains

ROOT = pathlib.Path(__file__).resolve().parent.parent
N, FFT, CP = 8, 128, 56


def layout(messages_per_frame=28):
    data, pilots = osc.aligned_carriers(N, FFT)
    return ofdm.OfdmLayout(n=N, messages_per_frame=messages_per_frame, fft_len=FFT, cp_len=CP, data_carriers=data,
                           pilot_carriers=pilots, mapping="symbol")


# --- core ---------------------------------------------------------------------------------------

def test_aligned_carriers_put_symbol_i_of_every_message_on_a_carrier_i_mod_n():
    lay = layout()
    assert len(lay.data_carriers) == 112 and len(lay.pilot_carriers) == 4 and 0 not in lay.data_carriers
    carriers = lay.carrier_of_message()
    assert (carriers % N == np.arange(N)[None, :]).all()
    assert not set(lay.pilot_carriers) & set(lay.data_carriers)
    with pytest.raises(ValueError, match="fft_len"):
        osc.aligned_carriers(8, 100)


@pytest.mark.parametrize("family", ["train", "flat", "deep_fade"])
def test_taps_give_subchannel_fadings_gains_and_the_filter_repeats_them_every_n_carriers(family):
    for r in range(3):
        g = osc.realisation_taps(5, r, N, family)
        assert np.allclose(osc.taps_gains(g, N), realisation_gains(5, r, N, family), atol=1e-5)
    # One OFDM symbol through the filter with a prefix longer than every echo (t 16 <= 112 samples): each carrier k
    # gets h_(k mod N).
    g = osc.realisation_taps(5, 0, N, family)
    filt = osc.BlockFadingFilter(FFT // N, 10 ** 6, len(g), lambda r: g)
    X = np.random.default_rng(0).standard_normal(FFT) + 0j
    x = np.fft.ifft(X)
    y = filt(np.concatenate([x[-120:], x]), 0)[120:]
    H = np.fft.fft(y) / X
    assert np.allclose(H, osc.taps_gains(g, N)[np.arange(FFT) % N])


def test_the_filter_is_a_convolution_with_each_samples_realisation_whatever_the_chunks():
    taps = {r: osc.realisation_taps(1, r, N, "train") for r in range(5)}
    x = np.random.default_rng(1).standard_normal(3000) + 1j * np.random.default_rng(2).standard_normal(3000)
    filt = osc.BlockFadingFilter(16, 700, N, taps.get)
    y = np.concatenate([filt(x[a:b], a) for a, b in ((0, 1), (1, 690), (690, 1500), (1500, 3000))])
    ref = np.zeros_like(x)
    for s in range(len(x)):
        g = taps[s // 700]
        ref[s] = sum(g[t] * x[s - 16 * t] for t in range(N) if s - 16 * t >= 0)
    assert np.allclose(y, ref)
    assert [r for r, _ in filt.realisations] == [0, 1, 2, 3, 4] and filt.started == 5


def test_frame_gains_scale_and_common_gains():
    lay = layout()
    est = (np.arange(112) + 1j).astype(np.complex64)
    gains = osc.FrameGains(lay)(est)
    assert gains.shape == (28, N)
    assert np.allclose(gains[15], est[(15 % 14) * N:(15 % 14 + 1) * N] / np.sqrt(FFT))
    common = osc.common_gains(gains)
    assert np.allclose(common, np.sqrt(np.mean(np.abs(gains) ** 2, axis=0))) and (common.imag == 0).all()


def test_frame_errors_align_by_frame_number_and_lags():
    sent = np.arange(12) % 4
    decided = np.concatenate([sent[3:6], sent[9:12]])  # frames 1 and 3 of 3 messages
    decided[4] += 1
    assert osc.frame_errors(sent, decided, [(0, 1), (3, 3)], 3) == {1: 0, 3: 1}
    assert osc.frame_errors(sent, decided, [(3, 3), (4, 3)], 3) == {3: 1}  # the second is past the end
    # update 1 from frame 0 reached item 5 frames * 3 messages * 8 symbols in; update 2 (frame 2) never went out.
    assert osc.feedback_lags([0, 2, 4], [(1, 5 * 24), (3, 6 * 24)], 8, 3) == [5, 2]


# --- the tagger ---------------------------------------------------------------------------------

def frame_pdu(frame, est):
    meta = pmt.make_dict()
    meta = pmt.dict_add(meta, pmt.intern("frame_number"), pmt.from_uint64(frame))
    return pmt.cons(meta, pmt.init_c32vector(len(est), est.tolist()))


@pytest.mark.parametrize("equalizer", ["none", "one-tap"])
def test_tagger_tags_each_message_with_its_gains_and_multiplies_back(equalizer):
    lay = layout(messages_per_frame=14)
    S = lay.message_symbols
    rng = np.random.default_rng(3)
    est = {f: (rng.standard_normal(112) + 1j * rng.standard_normal(112)).astype(np.complex64) for f in (7, 8)}
    x = (rng.standard_normal(2 * S) + 1j * rng.standard_normal(2 * S)).astype(np.complex64)
    tags = [gr.tag_utils.python_to_tag((f * S, pmt.intern("frame_number"), pmt.from_uint64(7 + f), pmt.intern("rx")))
            for f in range(2)]
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False, 1, tags)
    tagger = e2e.ofdm_csi_tagger(N, 14, FFT, CP, lay.data_carriers, lay.pilot_carriers, "symbol", equalizer)
    sink, debug = blocks.vector_sink_c(), blocks.message_debug()
    tb.connect(src, tagger, sink)
    tb.msg_connect(tagger, "csi_out", debug, "store")
    for f in (7, 8):  # the PDUs first, as ofdm_e2e_rx sends them
        tagger.to_basic_block()._post(pmt.intern("csi"), frame_pdu(f, est[f]))
    tb.run()
    y = np.asarray(sink.data())
    gains = np.concatenate([osc.FrameGains(lay)(est[f]).reshape(-1) for f in (7, 8)])
    assert np.allclose(y, x if equalizer == "none" else x * gains, atol=1e-5)
    csi = sorted((t.offset, np.asarray(pmt.c32vector_elements(t.value))) for t in sink.tags()
                 if pmt.symbol_to_string(t.key) == "csi")
    assert [o for o, _ in csi] == list(range(0, 2 * S, N))
    assert np.allclose(np.stack([h for _, h in csi]).reshape(-1), gains)
    assert tagger.frames_tagged() == 2 and tagger.frames_without_csi() == 0 and tagger.csi_frames() == [7, 8]
    assert debug.num_messages() == 2
    assert np.allclose(pmt.c32vector_elements(pmt.cdr(debug.get_message(1))),
                       osc.common_gains(osc.FrameGains(lay)(est[8])))


def test_tagger_passes_a_frame_without_csi_after_max_wait_and_drops_bad_pdus(record_logs):
    lay = layout(messages_per_frame=14)
    S = lay.message_symbols
    x = np.ones(S, dtype=np.complex64)
    tags = [gr.tag_utils.python_to_tag((0, pmt.intern("frame_number"), pmt.from_uint64(3), pmt.intern("rx")))]
    tb = gr.top_block()
    tagger = e2e.ofdm_csi_tagger(N, 14, FFT, CP, lay.data_carriers, lay.pilot_carriers, "symbol", "tracking",
                                 max_wait=0.05)
    logs = record_logs(tagger)
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(x.tolist(), False, 1, tags), tagger, sink)
    tagger.to_basic_block()._post(pmt.intern("csi"), pmt.init_c32vector(3, [1, 2, 3]))
    tb.run()
    assert len(sink.data()) == S and tagger.frames_without_csi() == 1 and tagger.frames_held() == 1
    assert tagger.bad_csi() == 1 and any("dropped csi PDU" in text for _, text in logs.records)
    with pytest.raises(ValueError, match="equalizer"):
        e2e.ofdm_csi_tagger(N, 14, FFT, CP, lay.data_carriers, lay.pilot_carriers, "symbol", "zf")


# --- the example --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def script(tmp_path_factory):
    out = tmp_path_factory.mktemp("grcc")
    env = dict(os.environ)
    paths = [p for p in env.get("GRC_BLOCKS_PATH", "").split(os.pathsep) if p]
    if not any(pathlib.Path(p, "e2e_ofdm_csi_tagger.block.yml").is_file() for p in paths):
        env["GRC_BLOCKS_PATH"] = os.pathsep.join(paths + [str(ROOT / "grc")])  # not installed yet: the checkout's
    proc = subprocess.run(["grcc", "-o", str(out), str(ROOT / "examples" / "mpa_ofdm_headless.grc")],
                          capture_output=True, text=True, timeout=100, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "mpa_ofdm_headless.py"


def run_example(script, precoder, plain, *args):
    proc = subprocess.run([sys.executable, str(script), "-c", precoder.path, "-p", plain.path, *args],
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_example_at_high_snr_decodes_every_delivered_frame(script, tiny_precoder, tiny_plain_precoder):
    """Plumbing: wrong gains per message (another message's carriers, a missing 1/sqrt(fft_len), a misaligned
    tag) cost errors even at 40 dB; with them right, the adapted and the plain link decode every frame."""
    frames, k = 150, 25
    # equalizer none: the raw symbols must meet the gains of their own carriers (tracking multiplies them back).
    r = run_example(script, tiny_precoder, tiny_plain_precoder, "-n", str(frames), "-k", str(k), "-e", "40",
                    "-q", "none")
    assert r["realisations"] == frames // k and r["frames_without_csi"] == 0
    for name in ("adapted", "fixed", "plain"):
        c = r[name]["counters"]
        assert c["misframed"] == c["frames_repeated"] == 0, c
        # Deep fades of single carriers can cost a header even at 40 dB; the last frame stays in the receiver.
        assert r[name]["frames"] >= 0.8 * frames, r[name]
    assert r["adapted"]["errors"] == 0 and r["plain"]["errors"] == 0, r
    # Every delivered frame's estimate went back; coefficients reach the channel after their measurement (how long
    # after depends on how far the scheduler lets the transmitter run ahead).
    assert len(r["csi_frames"]) == r["adapted"]["counters"]["frames_out"], r["csi_frames"]
    assert r["updates"] >= 1 and r["lags"] and min(r["lags"]) >= 0, r["lags"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_example_at_8_db_works_with_the_receivers_estimates(script, tiny_precoder, tiny_plain_precoder):
    r = run_example(script, tiny_precoder, tiny_plain_precoder, "-n", "150", "-k", "25")
    assert r["ebn0_db"] == 8.0 and r["common_frames"] >= 10, r
    for name in ("adapted", "fixed", "plain"):
        errors, messages = r[name]["errors_common"], r["common_frames"] * r["messages_per_frame"]
        # A link with wrong gains decides at random (BLER 15/16); these decode most messages.
        assert theory.wilson_interval(errors, messages, 0.999)[1] < 0.3, (name, r[name])
