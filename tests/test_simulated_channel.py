"""simulated_channel: the noise it adds, no sample lost, tags kept, the core channel offline, setters, checks."""
import math

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.core import channels, snr, theory
from gnuradio.e2e.simulated_channel import CHUNK_MESSAGES, noise_generator

M, N = 16, 7


def run(block, x, max_items=None):
    """vector_source_c(x) -> block -> vector_sink_c; (output complex64, the sink's tags)."""
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(np.asarray(x, np.complex64).tolist()), block, sink)
    tb.run(max_items) if max_items else tb.run()
    return np.array(sink.data(), dtype=np.complex64), sink.tags()


def symbols(count, seed=0):
    """i.i.d. CN(0, 1) symbols (Es = 1): complex64 [count * N]."""
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(count * N) + 1j * rng.standard_normal(count * N)) / math.sqrt(2)).astype(np.complex64)


def chi_square_quantile(p, dof):
    """Wilson-Hilferty: the p quantile of chi-square(dof), relative error < 1e-4 for dof > 1000."""
    z = theory.normal_quantile(p)
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


@pytest.mark.timeout(60)
def test_awgn_noise_variance_within_its_chi_square_interval():
    """sum |y - x|^2 / (N0/2) over 2 * count * n real parts is chi-square(2 count n): 99.9% interval."""
    count, ebn0_db = 20000, 4.0
    x = symbols(count)
    y, _ = run(e2e.simulated_channel("awgn", M, N, ebn0_db, seed=3), x)
    assert len(y) == len(x)
    w = (y - x).astype(np.complex128)
    n0 = snr.n0_from_ebn0_db(ebn0_db, M, N)
    dof = 2 * len(w)
    for parts in ((w.real, w.imag), (w.real,), (w.imag,)):  # both parts carry N0/2 each
        d = dof * len(parts) // 2
        stat = sum(float(np.sum(p ** 2)) for p in parts) / (n0 / 2)
        assert chi_square_quantile(0.0005, d) < stat < chi_square_quantile(0.9995, d), (stat, d)
    # The check is not vacuous: the same statistic at 0.5 dB more noise falls outside.
    wrong = snr.n0_from_ebn0_db(ebn0_db - 0.5, M, N)
    assert float(np.sum(np.abs(w) ** 2)) / (wrong / 2) < chi_square_quantile(0.0005, dof)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", channels.NAMES)
def test_the_output_is_the_core_channel_offline_whatever_the_buffers(name):
    """Chunk c of messages through channels.by_name(name) with noise_generator(seed, c): the same y.

    count is not a multiple of the chunk: the last chunk is padded with zero
    messages offline (a channel's draws depend only on its input's shape).
    """
    count, seed, ebn0_db = CHUNK_MESSAGES + 300, 5, 6.0
    x = symbols(count, seed=1)
    whole, _ = run(e2e.simulated_channel(name, M, N, ebn0_db, seed=seed), x)
    cut, _ = run(e2e.simulated_channel(name, M, N, ebn0_db, seed=seed), x, max_items=3 * N + 1)
    np.testing.assert_array_equal(whole, cut)
    rows = x.reshape(count, N)
    channel, n0 = channels.by_name(name), snr.n0_from_ebn0_db(ebn0_db, M, N)
    offline = []
    with torch.no_grad():
        for c in range(-(-count // CHUNK_MESSAGES)):
            chunk = np.zeros((CHUNK_MESSAGES, N), np.complex64)
            part = rows[c * CHUNK_MESSAGES:(c + 1) * CHUNK_MESSAGES]
            chunk[:len(part)] = part
            offline.append(channel(torch.from_numpy(chunk), n0, noise_generator(seed, c)).numpy()[:len(part)])
    np.testing.assert_allclose(whole.reshape(count, N), np.concatenate(offline), rtol=0, atol=1e-6)
    other, _ = run(e2e.simulated_channel(name, M, N, ebn0_db, seed=seed + 1), x[:7 * N])
    assert not np.allclose(other, whole[:7 * N])  # the seed matters


@pytest.mark.timeout(60)
def test_fades_and_phases_are_per_message():
    """Noise-free (Eb/N0 200 dB): y / x is one complex number per message, another for each message."""
    x = symbols(500)
    for name in ("rayleigh", "phase"):
        y, _ = run(e2e.simulated_channel(name, M, N, 200.0), x, max_items=2 * N + 3)
        h = (y / x).reshape(-1, N)
        np.testing.assert_allclose(h, h[:, :1] * np.ones((1, N)), rtol=1e-4)
        assert len(np.unique(np.round(h[:, 0], 4))) == 500
        if name == "phase":
            np.testing.assert_allclose(np.abs(h), 1.0, rtol=1e-4)


@pytest.mark.timeout(60)
def test_no_sample_lost_and_tags_kept(tiny_link):
    """training_source -> nn_encoder -> simulated_channel('pa'): every sample and tag, where it was."""
    batches, batch_size = 30, 50
    tb = gr.top_block()
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    before, after = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(e2e.training_source(M, batch_size, 1, num_batches=batches), enc, before)
    tb.connect(enc, e2e.simulated_channel("pa", M, N, 5.0), after)
    tb.run()
    assert len(after.data()) == len(before.data()) == batches * batch_size * N

    def tags(sink):
        return [(t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in sink.tags()]
    assert tags(after) == tags(before)
    assert [t for t in tags(after) if t[1] == "batch_index"] == [(b * batch_size * N, "batch_index", b)
                                                                 for b in range(batches)]


@pytest.mark.timeout(60)
def test_set_ebn0_db_changes_the_noise_and_refuses_bad_values(record_logs):
    block = e2e.simulated_channel("awgn", M, N, 4.0)
    log = record_logs(block)
    assert block.n0() == pytest.approx(snr.n0_from_ebn0_db(4.0, M, N))
    assert block.set_ebn0_db(10.0) is True
    assert block.ebn0_db() == 10.0 and block.n0() == pytest.approx(snr.n0_from_ebn0_db(10.0, M, N))
    y, _ = run(block, np.zeros(2000 * N, np.complex64))
    power = float(np.mean(np.abs(y.astype(np.complex128)) ** 2))
    assert abs(power - block.n0()) < 5 * block.n0() / math.sqrt(len(y))  # exponential mean: sd N0/sqrt(k)
    for bad in (float("nan"), "4", None):
        assert block.set_ebn0_db(bad) is False
    assert block.ebn0_db() == 10.0
    assert len(log.of("error")) == 3 and all("set_ebn0_db refused" in e for e in log.of("error"))


@pytest.mark.parametrize("args, pattern", [
    (("saleh", M, N, 4.0), r"^channel must be one of \('awgn', 'rayleigh', 'phase', 'pa'\), got 'saleh'"),
    (("awgn", 1, N, 4.0), r"^M must be an integer in \[2, 256\], got 1"),
    (("awgn", M, 0, 4.0), r"^n must be an integer"),
    (("awgn", M, N, float("inf")), r"^ebn0_db must be a finite number"),
    (("awgn", M, N, "4"), r"^ebn0_db must be a finite number"),
])
def test_bad_parameters_are_refused_naming_them(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        e2e.simulated_channel(*args)
    with pytest.raises(ValueError, match=r"^seed must be an integer"):
        e2e.simulated_channel("awgn", M, N, 4.0, seed=-1)


def test_grc_template_and_ports():
    from gnuradio.grc.core.platform import Platform
    platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    fg = platform.make_flow_graph()
    block = fg.new_block("e2e_simulated_channel")
    block.params["channel"].set_value("'pa'")
    fg.rewrite()
    assert block.templates.render("make") == "e2e.simulated_channel('pa', 16, 7, 8.0, seed=0)"
    assert block.templates.render("callbacks") == ["set_ebn0_db(8.0)"]
    assert [(p.key, p.domain, p.dtype) for p in block.sinks] == [("0", "stream", "complex")]
    assert [(p.key, p.domain, p.dtype) for p in block.sources] == [("0", "stream", "complex")]
