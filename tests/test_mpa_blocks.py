"""The attention-precoder blocks: mpa_precoder, csi_decoder, subchannel_fading.

Each block runs in a flowgraph and is compared with the core (core.mpa,
core.subchannels) on the same data. Messages reach a block mid-stream by
flowgraph_helpers.post_at, so the runs end by themselves.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, e2e, gr

from flowgraph_helpers import call_at, compile_examples, post_at, run_gui_offscreen
from gnuradio.e2e.core import checkpoint, mpa, prng, subchannels, theory
from gnuradio.e2e.mpa_precoder import csi_pmt
from gnuradio.e2e.subchannel_fading import CHUNK_MESSAGES, realisation_gains, unit_noise

M, N = 16, 8
EBN0_DB = 8.0


def gains(seed=0, family="selective"):
    """One channel measurement: complex64 [N]."""
    return subchannels.SubchannelChannel(N, family).draw_gains(1, prng.torch_generator(seed, prng.MPA))[0].numpy()


def adapted_codebook(link, h, ebn0_db=EBN0_DB):
    """(alpha float32 [L, N], codebook complex64 [M, N]) the core computes for h."""
    result = link.encoder.adapt(torch.from_numpy(h)[None], mpa.noise_density(ebn0_db, M, N))
    with torch.no_grad():
        return result.alpha[0].numpy(), link.encoder.codebook(result.alpha[0]).numpy()


def base_codebook(link):
    with torch.no_grad():
        return link.encoder.codebook().numpy()


def run_precoder(path, msgs, messages=(), at_message=0, port="csi", **kwargs):
    """msgs through mpa_precoder, `messages` posted to its `port` once at_message messages are out.

    Returns (block, output complex64 [len(msgs), N], tags of the output, metrics message_debug).
    """
    tb = gr.top_block()
    src = blocks.vector_source_b([int(m) for m in msgs])
    prec = e2e.mpa_precoder(path, M, N, **kwargs)
    poster = post_at(np.complex64, at_message * N, prec, port, messages)
    snk = blocks.vector_sink_c()
    debug = blocks.message_debug()
    tb.connect(src, prec, poster, snk)
    tb.msg_connect(prec, "metrics", debug, "store")
    tb.run()
    return prec, np.array(snk.data(), dtype=np.complex64).reshape(-1, N), snk.tags(), debug


def update_tags(tags):
    return [(t.offset, pmt.to_long(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "mpa_update"]


def metrics_of(debug):
    out = []
    for i in range(debug.num_messages()):
        d = debug.get_message(i)
        items = pmt.dict_items(d)
        out.append({pmt.symbol_to_string(pmt.car(pmt.nth(j, items))): pmt.to_python(pmt.cdr(pmt.nth(j, items)))
                    for j in range(pmt.length(items))})
    return out


# --- mpa_precoder ---------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_precoder_sends_the_codebook_and_swaps_it_on_csi(tiny_precoder):
    msgs = np.random.default_rng(0).integers(0, M, 20000)
    h = gains(1)
    prec, out, tags, debug = run_precoder(tiny_precoder.path, msgs, [csi_pmt(h)], at_message=5000)
    alpha, adapted = adapted_codebook(tiny_precoder, h)
    [(offset, update)] = update_tags(tags)
    assert update == 1 and offset % N == 0
    switch = offset // N
    assert 5000 <= switch < len(msgs)  # after the point it was posted at, within the run
    np.testing.assert_allclose(out[:switch], base_codebook(tiny_precoder)[msgs[:switch]], atol=1e-6)
    np.testing.assert_allclose(out[switch:], adapted[msgs[switch:]], atol=1e-5)
    np.testing.assert_allclose(prec.alpha(), alpha, atol=1e-6)
    assert not np.allclose(adapted, base_codebook(tiny_precoder), atol=1e-2)  # the swap is visible
    assert (prec.updates(), prec.csi_messages(), prec.dropped()) == (1, 1, 0)
    # Es = 1 per symbol before and after.
    assert np.mean(np.abs(adapted) ** 2) == pytest.approx(1.0, rel=1e-4)
    [m] = metrics_of(debug)
    assert set(m) == {"updates", "steps", "delta", "converged", "seconds", "dropped"}
    assert m["updates"] == 1 and m["steps"] == mpa.DEFAULT_STEPS and m["dropped"] == 0
    assert 0 <= m["delta"] and m["converged"] == (m["delta"] <= mpa.DEFAULT_TOL) and m["seconds"] > 0
    assert m == prec.metrics()


@pytest.mark.timeout(60)
def test_malformed_csi_is_logged_and_dropped(tiny_precoder, record_logs):
    msgs = np.random.default_rng(1).integers(0, M, 8000)
    h = gains(2)
    bad = [pmt.init_c32vector(N - 1, [1 + 0j] * (N - 1)),                  # wrong length
           pmt.init_c32vector(N, [complex("nan")] + [1 + 0j] * (N - 1)),  # NaN
           pmt.init_c32vector(N, [0j] * N),                               # all zero
           pmt.init_f32vector(N, [1.0] * N),                              # not a complex vector
           pmt.intern("hello"),                                           # a string
           pmt.from_long(3)]
    tb = gr.top_block()
    src = blocks.vector_source_b([int(m) for m in msgs])
    prec = e2e.mpa_precoder(tiny_precoder.path, M, N)
    logs = record_logs(prec)
    first = post_at(np.complex64, 1000 * N, prec, "csi", bad)
    # A good one after them, as a PDU: accepted, and the metrics count the dropped ones.
    second = post_at(np.complex64, 4000 * N, prec, "csi", [pmt.cons(pmt.make_dict(), csi_pmt(h))])
    snk = blocks.vector_sink_c()
    debug = blocks.message_debug()
    tb.connect(src, prec, first, second, snk)
    tb.msg_connect(prec, "metrics", debug, "store")
    tb.run()
    out = np.array(snk.data(), dtype=np.complex64).reshape(-1, N)
    assert len(out) == len(msgs)  # the flowgraph ran to its end
    errors = logs.of("error")
    assert len(errors) == len(bad) and prec.dropped() == len(bad)
    for needle in ("got 7", "NaN", "all zero", "f32vector", "symbol", "integer"):
        assert any(needle in e for e in errors), (needle, errors)
    [(offset, update)] = update_tags(snk.tags())
    assert update == 1
    switch = offset // N
    assert switch >= 4000
    np.testing.assert_allclose(out[:switch], base_codebook(tiny_precoder)[msgs[:switch]], atol=1e-6)
    np.testing.assert_allclose(out[switch:], adapted_codebook(tiny_precoder, h)[1][msgs[switch:]], atol=1e-5)
    assert metrics_of(debug)[0]["dropped"] == len(bad)


@pytest.mark.timeout(60)
def test_bad_csi_keeps_the_last_good_codebook(tiny_precoder):
    h = gains(3)
    prec, out, tags, _ = run_precoder(tiny_precoder.path, np.arange(20000) % M,
                                      [csi_pmt(h), pmt.init_c32vector(3, [1j] * 3)], at_message=100)
    assert (prec.updates(), prec.dropped()) == (1, 1)
    np.testing.assert_allclose(prec.symbol_table(), adapted_codebook(tiny_precoder, h)[1], atol=1e-5)
    assert len(update_tags(tags)) == 1


@pytest.mark.timeout(60)
def test_without_adaptation_csi_changes_nothing(tiny_precoder, tiny_plain_precoder):
    msgs = np.random.default_rng(2).integers(0, M, 20000)
    prec, out, tags, debug = run_precoder(tiny_precoder.path, msgs, [csi_pmt(gains(4))], at_message=100,
                                          adapt=False)
    np.testing.assert_allclose(out, base_codebook(tiny_precoder)[msgs], atol=1e-6)
    np.testing.assert_allclose(prec.alpha(), tiny_precoder.encoder.alpha0.numpy())
    assert (prec.csi_messages(), prec.updates(), debug.num_messages()) == (1, 0, 0) and update_tags(tags) == []
    # The plain link (no layer): its codebook, whatever the csi.
    prec, out, tags, debug = run_precoder(tiny_plain_precoder.path, msgs, [csi_pmt(gains(4))], at_message=100)
    with torch.no_grad():
        np.testing.assert_allclose(out, tiny_plain_precoder.encoder.codebook().numpy()[msgs], atol=1e-6)
    assert prec.architecture() == "plain" and prec.alpha() is None
    assert (prec.csi_messages(), prec.updates(), debug.num_messages()) == (1, 0, 0) and update_tags(tags) == []


@pytest.mark.timeout(60)
def test_ebn0_setting_is_the_one_the_iteration_assumes(tiny_precoder, record_logs):
    h = gains(5, "deep_fade")
    tb = gr.top_block()
    prec = e2e.mpa_precoder(tiny_precoder.path, M, N, ebn0_db=8.0)
    logs = record_logs(prec)
    assert prec.set_ebn0_db(float("nan")) is False and prec.ebn0_db() == 8.0 and len(logs.of("error")) == 1
    assert prec.set_ebn0_db(2.0) is True and prec.n0() == pytest.approx(mpa.noise_density(2.0, M, N))
    src = blocks.vector_source_b([0] * 20000)
    poster = post_at(np.complex64, 10 * N, prec, "csi", [csi_pmt(h)])
    tb.connect(src, prec, poster, blocks.null_sink(gr.sizeof_gr_complex))
    tb.run()
    np.testing.assert_allclose(prec.alpha(), adapted_codebook(tiny_precoder, h, 2.0)[0], atol=1e-6)
    assert not np.allclose(prec.alpha(), adapted_codebook(tiny_precoder, h, 8.0)[0], atol=1e-4)


@pytest.mark.timeout(60)
def test_precoder_out_of_range_and_tags(tiny_precoder):
    msgs = np.array([0, 16, 5, 255, 3], dtype=np.uint8)
    tag = gr.tag_utils.python_to_tag((2, pmt.intern("batch_index"), pmt.from_long(7)))
    tb = gr.top_block()
    src = blocks.vector_source_b(msgs.tolist(), tags=[tag])
    prec = e2e.mpa_precoder(tiny_precoder.path, M, N)
    snk = blocks.vector_sink_c()
    tb.connect(src, prec, snk)
    tb.run()
    out = np.array(snk.data()).reshape(-1, N)
    assert np.all(out[[1, 3]] == 0) and prec.out_of_range() == 2
    np.testing.assert_allclose(out[[0, 2, 4]], base_codebook(tiny_precoder)[[0, 5, 3]], atol=1e-6)
    [t] = [t for t in snk.tags() if pmt.symbol_to_string(t.key) == "batch_index"]
    assert t.offset == 2 * N


def test_precoder_construction_checks(tiny_precoder, tiny_link, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="is a autoencoder checkpoint; expected precoder"):
        e2e.mpa_precoder(tiny_link.path, M, N)
    with pytest.raises(checkpoint.CheckpointError, match="N=8 but N=4"):
        e2e.mpa_precoder(tiny_precoder.path, M, 4)
    with pytest.raises(checkpoint.CheckpointError, match="M=16 but M=32"):
        e2e.csi_decoder(tiny_precoder.path, 32, N)
    missing = tmp_path / "none.safetensors"
    with pytest.raises(checkpoint.CheckpointError, match=f"^{missing}: no such file.*runs/mpa/precoder_mpa"):
        e2e.mpa_precoder(str(missing), M, N)
    with pytest.raises(ValueError, match="adapt"):
        e2e.mpa_precoder(tiny_precoder.path, M, N, adapt="yes")
    with pytest.raises(ValueError, match="ebn0_db"):
        e2e.mpa_precoder(tiny_precoder.path, M, N, ebn0_db=float("inf"))
    with pytest.raises(ValueError, match="M"):
        e2e.mpa_precoder(tiny_precoder.path, 300, N)


@pytest.mark.timeout(60)
def test_precoder_weights_port_takes_a_precoder_file(tiny_precoder, tiny_plain_precoder, tiny_link, record_logs):
    data = open(tiny_plain_precoder.path, "rb").read()
    u8 = pmt.init_u8vector(len(data), list(data))
    msgs = np.arange(3000) % M
    prec, out, _, _ = run_precoder(tiny_precoder.path, msgs, [u8], at_message=10, port="weights")
    with torch.no_grad():
        plain = tiny_plain_precoder.encoder.codebook().numpy()
    np.testing.assert_allclose(prec.symbol_table(), plain, atol=1e-6)
    np.testing.assert_allclose(out[-1000:], plain[msgs[-1000:]], atol=1e-6)
    assert prec.architecture() == "plain"
    # A link file is not a precoder: logged, dropped, the codebook stays.
    link = open(tiny_link.path, "rb").read()
    tb = gr.top_block()
    prec = e2e.mpa_precoder(tiny_precoder.path, M, N)
    logs = record_logs(prec)
    # Held in a variable: a Python block built inline in connect() is collected while it runs.
    poster = post_at(np.complex64, 0, prec, "weights", [pmt.init_u8vector(len(link), list(link))])
    tb.connect(blocks.vector_source_b([0] * 20000), prec, poster, blocks.null_sink(gr.sizeof_gr_complex))
    tb.run()
    assert prec.architecture() == "mpa" and "expected precoder" in logs.of("error")[0]


# --- subchannel_fading --------------------------------------------------------------------------

def run_fading(x, **kwargs):
    """x complex64 [k, N] through subchannel_fading; returns (block, y [k, N], csi tags, csi message_debug)."""
    tb = gr.top_block()
    src = blocks.vector_source_c(x.reshape(-1).tolist())
    ch = e2e.subchannel_fading(N, **kwargs)
    snk = blocks.vector_sink_c()
    debug = blocks.message_debug()
    tb.connect(src, ch, snk)
    tb.msg_connect(ch, "csi", debug, "store")
    tb.run()
    csi = [(t.offset, np.array(pmt.c32vector_elements(t.value))) for t in snk.tags()
           if pmt.symbol_to_string(t.key) == "csi"]
    published = [np.array(pmt.c32vector_elements(debug.get_message(i))) for i in range(debug.num_messages())]
    return ch, np.array(snk.data(), dtype=np.complex64).reshape(-1, N), csi, published


def random_symbols(k, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal((k, N)) + 1j * rng.standard_normal((k, N))) / np.sqrt(2)).astype(np.complex64)


@pytest.mark.timeout(60)
def test_fading_is_the_core_channel_with_csi_at_each_realisation():
    k, coherence, seed = 2500, 300, 4
    x = random_symbols(k)
    ch, y, csi, published = run_fading(x, family="selective", coherence=coherence, ebn0_db=5.0, seed=seed)
    # Offline: SubchannelChannel with the realisations' gains and the chunk noise streams.
    realisations = -(-k // coherence)
    core = subchannels.SubchannelChannel(N, "selective")
    expected_h = np.stack([core.draw_gains(1, prng.torch_generator(seed, prng.MPA, 0, r))[0].numpy()
                           for r in range(realisations)])
    h_rows = np.repeat(expected_h, coherence, axis=0)[:k]
    n0 = mpa.noise_density(5.0, M, N)
    chunks = -(-k // CHUNK_MESSAGES)
    w = np.concatenate([unit_noise(seed, c, N) for c in range(chunks)])[:k]
    assert np.var(w) == pytest.approx(1.0, rel=0.05)
    with torch.no_grad():
        gens = [prng.torch_generator(seed, prng.MPA, 1, c) for c in range(chunks)]
        expected = np.concatenate([
            core(torch.from_numpy(np.pad(x[c * CHUNK_MESSAGES:(c + 1) * CHUNK_MESSAGES],
                                         ((0, max(0, (c + 1) * CHUNK_MESSAGES - k)), (0, 0)))),
                 n0, gens[c], h=torch.from_numpy(np.pad(h_rows[c * CHUNK_MESSAGES:(c + 1) * CHUNK_MESSAGES],
                                                        ((0, max(0, (c + 1) * CHUNK_MESSAGES - k)), (0, 0))))
                 ).numpy() for c in range(chunks)])[:k]
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert [o for o, _ in csi] == [r * coherence * N for r in range(realisations)]
    for r, (_, h) in enumerate(csi):
        np.testing.assert_allclose(h, expected_h[r], atol=1e-7)
        np.testing.assert_allclose(published[r], expected_h[r], atol=1e-7)
    assert len(published) == ch.realisations() == realisations
    np.testing.assert_allclose(realisation_gains(seed, 3, N, "selective"), expected_h[3])


@pytest.mark.timeout(60)
def test_fading_same_seed_same_channel():
    x = random_symbols(3000, seed=1)
    _, a, csi_a, _ = run_fading(x, coherence=700, seed=2)
    _, b, csi_b, _ = run_fading(x, coherence=700, seed=2)
    _, c, _, _ = run_fading(x, coherence=700, seed=3)
    np.testing.assert_array_equal(a, b)
    assert all(o1 == o2 and np.array_equal(h1, h2) for (o1, h1), (o2, h2) in zip(csi_a, csi_b))
    assert not np.allclose(a, c, atol=0.1)


@pytest.mark.timeout(60)
def test_fading_without_noise_is_h_times_x_and_the_family_switches_at_a_realisation(record_logs):
    # The switch comes from downstream (at message 3000), and the channel is at most a few buffers
    # (~1000 messages each) ahead of it: it takes effect within the run, at a realisation boundary.
    x = random_symbols(20000, seed=2)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.reshape(-1).tolist())
    ch = e2e.subchannel_fading(N, family="train", coherence=2000, noise=False, seed=5)
    logs = record_logs(ch)
    assert ch.set_family("nope") is False and len(logs.of("error")) == 1
    switcher = call_at(np.complex64, 3000 * N, lambda: ch.set_family("deep_fade"))
    snk = blocks.vector_sink_c()
    tb.connect(src, ch, switcher, snk)
    tb.run()
    y = np.array(snk.data(), dtype=np.complex64).reshape(-1, N)
    history = ch.history()
    assert [r for r, _, _ in history] == list(range(10))
    families = [f for _, f, _ in history]
    # Realisations 0 and 1 started before the switch; the last ones after it; none changed midway.
    assert families[:2] == ["train", "train"] and families[-1] == "deep_fade"
    assert families == sorted(families, key=lambda f: f == "deep_fade")
    for r, family, h in history:
        np.testing.assert_allclose(h, realisation_gains(5, r, N, family))
        np.testing.assert_allclose(y[r * 2000:(r + 1) * 2000], x[r * 2000:(r + 1) * 2000] * h, atol=1e-6)
    # deep_fade: two equal paths half an FFT apart, so the even and odd subcarriers alternate g0 +- g1.
    h = history[-1][2]
    np.testing.assert_allclose(h[0::2], h[0], atol=1e-5)
    np.testing.assert_allclose(h[1::2], h[1], atol=1e-5)


def test_fading_construction_checks():
    with pytest.raises(ValueError, match="family"):
        e2e.subchannel_fading(N, family="urban")
    with pytest.raises(ValueError, match="N"):
        e2e.subchannel_fading(1, family="deep_fade")
    with pytest.raises(ValueError, match="coherence"):
        e2e.subchannel_fading(N, coherence=0)
    with pytest.raises(ValueError, match="seed"):
        e2e.subchannel_fading(N, seed=-1)


# --- csi_decoder ----------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_csi_decoder_uses_the_tag_that_applies_to_each_message(tiny_precoder, record_logs):
    k = 6000
    rng = np.random.default_rng(7)
    msgs = rng.integers(0, M, k)
    with torch.no_grad():
        x = base_codebook(tiny_precoder)[msgs]
    # Gains change at messages 0 (none: h = 1 until the first tag), 500, 2600 (tag mid-message 2599: applies
    # from 2600), 2600 again (a malformed tag there, ignored) and 5000.
    hs = {500: gains(10), 2600: gains(11), 5000: gains(12)}
    starts = sorted(hs)
    h_rows = np.ones((k, N), dtype=np.complex64)
    for a, b in zip(starts, starts[1:] + [k]):
        h_rows[a:b] = hs[a]
    n0 = mpa.noise_density(EBN0_DB, M, N)
    noise = (rng.standard_normal((k, N)) + 1j * rng.standard_normal((k, N))) * np.sqrt(n0 / 2)
    y = (h_rows * x + noise).astype(np.complex64)
    tags = [gr.tag_utils.python_to_tag((500 * N, pmt.intern("csi"), csi_pmt(hs[500]))),
            gr.tag_utils.python_to_tag((2599 * N + 3, pmt.intern("csi"), csi_pmt(hs[2600]))),
            gr.tag_utils.python_to_tag((2600 * N, pmt.intern("csi"), pmt.init_c32vector(2, [1j, 1j]))),
            gr.tag_utils.python_to_tag((5000 * N, pmt.intern("csi"), csi_pmt(hs[5000])))]
    tb = gr.top_block()
    src = blocks.vector_source_c(y.reshape(-1).tolist(), tags=tags)
    dec = e2e.csi_decoder(tiny_precoder.path, M, N)
    logs = record_logs(dec)
    snk = blocks.vector_sink_b()
    tb.connect(src, dec, snk)
    tb.run()
    decided = np.array(snk.data())
    with torch.no_grad():
        expected = tiny_precoder.decoder(torch.from_numpy(y), torch.from_numpy(h_rows)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(decided, expected)
    assert (dec.csi_tags(), dec.bad_tags(), dec.messages_without_csi()) == (3, 1, 500)
    assert len(logs.of("warn")) == 1 and len(logs.of("error")) == 1 and "got 2" in logs.of("error")[0]
    np.testing.assert_array_equal(dec.gains(), hs[5000])
    # The right gains matter: decoding with the first ones everywhere decides differently.
    wrong = tiny_precoder.decoder(torch.from_numpy(y), torch.from_numpy(np.broadcast_to(hs[500], y.shape).copy()))
    assert (wrong.argmax(dim=1).numpy() != expected).sum() > 100


@pytest.mark.timeout(60)
def test_the_link_precoder_fading_decoder_matches_the_core(tiny_precoder):
    """mpa_precoder -> subchannel_fading -> csi_decoder with genie CSI fed back, on one realisation per run."""
    k, seed = 4000, 6
    msgs = np.random.default_rng(8).integers(0, M, k)
    tb = gr.top_block()
    src = blocks.vector_source_b(msgs.tolist())
    prec = e2e.mpa_precoder(tiny_precoder.path, M, N)
    ch = e2e.subchannel_fading(N, family="selective", coherence=10 * k, seed=seed)
    dec = e2e.csi_decoder(tiny_precoder.path, M, N)
    snk = blocks.vector_sink_b()
    tb.connect(src, prec, ch, dec, snk)
    tb.msg_connect(ch, "csi", prec, "csi")
    tb.run()
    decided = np.array(snk.data())
    assert len(decided) == k and prec.updates() == 1
    h = realisation_gains(seed, 0, N, "selective")
    np.testing.assert_allclose(prec.alpha(), adapted_codebook(tiny_precoder, h)[0], atol=1e-6)
    # Offline, the same link: alpha0 until the update tag (carried through to the decisions), adapted from it.
    [(switch, update)] = update_tags(snk.tags())
    assert update == 1
    assert 0 < switch < k  # the feedback lags: the first messages go out before the csi comes back
    x = np.concatenate([base_codebook(tiny_precoder)[msgs[:switch]],
                        adapted_codebook(tiny_precoder, h)[1][msgs[switch:]]])
    w = np.concatenate([unit_noise(seed, c, N) for c in range(-(-k // CHUNK_MESSAGES))])[:k]
    y = h * x + np.sqrt(mpa.noise_density(EBN0_DB, M, N)) * w
    with torch.no_grad():
        expected = tiny_precoder.decoder(torch.from_numpy(y.astype(np.complex64)),
                                         torch.from_numpy(np.broadcast_to(h, y.shape).copy())).argmax(dim=1).numpy()
    assert np.mean(decided == expected) > 0.999  # float rounding may flip a near tie


# --- the example flowgraph ------------------------------------------------------------------------

CONFIDENCE = 0.999


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A folder laid out as the gr-e2e checkout: examples/ with the generated scripts, runs/ empty."""
    return compile_examples(tmp_path_factory.mktemp("checkout"), ("mpa_fading_headless.grc", "mpa_fading.grc"))


def run_headless(root, cwd, *args):
    script = root / "examples" / "mpa_fading_headless.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=200, cwd=cwd)


def offline_errors(encoder, decoder, segments, ebn0_db, repeat=2, seed=21):
    """(errors, trials) of `repeat` times each segment's messages offline: segments [(count, alpha or None, h)]."""
    n0 = mpa.noise_density(ebn0_db, M, N)
    gen = torch.Generator().manual_seed(seed)
    errors = trials = 0
    with torch.no_grad():
        for count, alpha, h in segments:
            count *= repeat
            m = torch.randint(0, M, (count,), generator=gen)
            x = (encoder.codebook(torch.as_tensor(alpha)) if alpha is not None else encoder.codebook())[m]
            hb = torch.from_numpy(h).expand(count, N)
            y = hb * x + torch.randn(x.shape, generator=gen, dtype=torch.complex64) * n0 ** 0.5
            errors += int((decoder(y, hb).argmax(dim=1) != m).sum())
            trials += count
    return errors, trials


def meet(a, b):
    """The Wilson intervals of (errors, trials) a and b meet."""
    (lo_a, hi_a), (lo_b, hi_b) = theory.wilson_interval(*a, CONFIDENCE), theory.wilson_interval(*b, CONFIDENCE)
    return lo_a <= hi_b and lo_b <= hi_a


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_headless_example_measures_the_three_links(checkout, tiny_precoder, tiny_plain_precoder, tmp_path):
    """As GRC's Run button: defaults found next to the script; each BLER as offline on the same channels."""
    before = run_headless(checkout, tmp_path, "-n", "1000")
    assert before.returncode != 0
    expected = checkout / "runs" / "mpa" / "precoder_mpa.safetensors"
    # Whichever of the two files a block looks for first: named with the path, and what writes it.
    assert f"{expected.parent}/precoder_" in before.stderr and "no such file" in before.stderr, before.stderr[-2000:]
    assert "gr_e2e train --method mpa-tandem" in before.stderr
    expected.parent.mkdir(parents=True)
    expected.write_bytes(pathlib.Path(tiny_precoder.path).read_bytes())
    (expected.parent / "precoder_plain.safetensors").write_bytes(pathlib.Path(tiny_plain_precoder.path).read_bytes())

    num, coherence, seed, family = 40000, 2000, 3, "deep_fade"
    proc = run_headless(checkout, tmp_path, "-n", str(num), "-k", str(coherence), "-s", str(seed), "-f", family)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    realisations = num // coherence
    assert (r["messages"], r["realisations"], r["updates"], r["family"]) == (num, realisations, realisations, family)
    # The same channels offline: gains of the fading blocks' seed (seed + 1); link a sends each realisation's
    # first messages, up to its update, with the previous coefficients (the feedback lag).
    ebn0_db = r["ebn0_db"]
    n0 = mpa.noise_density(ebn0_db, M, N)
    hs = [realisation_gains(seed + 1, k, N, family) for k in range(realisations)]
    alphas = [tiny_precoder.encoder.alpha0.numpy()] + [
        tiny_precoder.encoder.adapt(torch.from_numpy(h)[None], n0).alpha[0].numpy() for h in hs]
    lags = [s - k * coherence for k, s in enumerate(r["update_messages"])]
    assert all(0 <= lag < coherence // 4 for lag in lags), lags
    adapted = [seg for k, h in enumerate(hs)
               for seg in ((lags[k], alphas[k], h), (coherence - lags[k], alphas[k + 1], h))]
    fixed = [(coherence, alphas[0], h) for h in hs]
    offline = {"adapted": offline_errors(tiny_precoder.encoder, tiny_precoder.decoder, adapted, ebn0_db),
               "fixed": offline_errors(tiny_precoder.encoder, tiny_precoder.decoder, fixed, ebn0_db),
               "plain": offline_errors(tiny_plain_precoder.encoder, tiny_plain_precoder.decoder,
                                       [(count, None, h) for count, _, h in fixed], ebn0_db)}
    measured = {k: (round(r[k] * num), num) for k in offline}
    for k in offline:
        assert meet(measured[k], offline[k]), (k, measured[k], offline[k])
    # On these channels adaptation helps the tiny link clearly (0.03 against 0.07 offline): the measured
    # intervals are apart.
    lo_fixed, _ = theory.wilson_interval(*measured["fixed"], CONFIDENCE)
    _, hi_adapted = theory.wilson_interval(*measured["adapted"], CONFIDENCE)
    assert hi_adapted < lo_fixed, measured


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_gui_example_runs_the_three_links(checkout, tiny_precoder, tiny_plain_precoder):
    folder = checkout / "runs" / "mpa"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "precoder_mpa.safetensors").write_bytes(pathlib.Path(tiny_precoder.path).read_bytes())
    (folder / "precoder_plain.safetensors").write_bytes(pathlib.Path(tiny_plain_precoder.path).read_bytes())
    script = checkout / "examples" / "mpa_fading.py"
    counted = run_gui_offscreen(script, {"num_messages": 6000, "coherence": 2000},
                                "[tb.e2e_block_error_counter_0.blocks(), tb.e2e_block_error_counter_1.blocks(), "
                                "tb.e2e_block_error_counter_2.blocks(), tb.e2e_mpa_precoder_0.updates()]",
                                until="tb.e2e_block_error_counter_2.blocks() == 6000")
    assert counted == [6000, 6000, 6000, 3]
    text = script.read_text()
    for i in range(3):  # the family chooser reaches every channel
        assert f"self.e2e_subchannel_fading_{i}.set_family(self.family)" in text
