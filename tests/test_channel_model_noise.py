"""GNU Radio's stock channels.channel_model, as the loopback examples use it.

1. Its noise: snr.channel_model_noise_voltage(Eb/N0, M, n) must give complex
   noise of total variance N0 = 1 / (R Eb/N0) (N0/2 per real dimension).
2. Its timing: at epsilon = 1.0 it passes samples through unchanged but
   drops the first 3 (and strands a few, 5 to 12 seen, at the end of a
   finite stream), which is why the examples put a 3-sample delay in front
   of it.

channel_model's noise comes from analog.fastnoise_source_c, which draws with
replacement from a pool of P pre-generated Gaussian samples (P = 16384 in
GNU Radio 3.10). The variance estimate therefore has two sources of
spread: the pool's own sample variance (a chi-square with 2P real degrees of
freedom) and the N draws from it. For the total power |z|^2 (exponential,
relative variance 1 per draw) the relative variance of the estimate is
1/P + 1/N, i.e. that of chi2(nu)/nu with nu = 2 / (1/P + 1/N); per real
dimension it is 2/P + 2/N, nu = 1 / (1/P + 1/N). The tolerances are the
99.9% two-sided chi-square bounds for that nu (Wilson-Hilferty).
"""
import math

import numpy as np
import pytest
from gnuradio import blocks, channels, gr

from gnuradio.e2e.core import snr, theory

CONFIDENCE = 0.999
TAIL = 16  # most samples channel_model may strand at the end of a finite stream


def chi2_ratio_bounds(nu, confidence=CONFIDENCE):
    """(lo, hi) with P(lo <= chi2(nu)/nu <= hi) = confidence (Wilson-Hilferty)."""
    z = theory.two_sided_z(confidence)
    a = 2.0 / (9.0 * nu)
    return (1 - a - z * math.sqrt(a)) ** 3, (1 - a + z * math.sqrt(a)) ** 3


def channel_output(x, noise_voltage, seed=7, delay=0):
    tb = gr.top_block()
    src = blocks.vector_source_c(np.asarray(x).tolist()) if not np.isscalar(x) else None
    if src is None:  # x is a sample count: zero input
        src = blocks.null_source(gr.sizeof_gr_complex)
        head = blocks.head(gr.sizeof_gr_complex, int(x))
        tb.connect(src, head)
        src = head
    chain = [src]
    if delay:
        chain.append(blocks.delay(gr.sizeof_gr_complex, delay))
    cm = channels.channel_model(noise_voltage=noise_voltage, frequency_offset=0.0, epsilon=1.0,
                                taps=[1.0], noise_seed=seed, block_tags=False)
    snk = blocks.vector_sink_c()
    tb.connect(*chain, cm, snk)
    tb.run()
    return np.array(snk.data(), dtype=np.complex128)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ebn0_db, M, n", [(3.0, 16, 7), (10.0, 4, 2), (-2.0, 256, 1)])
def test_noise_variance_matches_n0(ebn0_db, M, n):
    n0 = 1.0 / ((math.log2(M) / n) * 10 ** (ebn0_db / 10))  # DESIGN.md, written out
    voltage = snr.channel_model_noise_voltage(ebn0_db, M, n)
    y = channel_output(2 ** 20, voltage)
    N = len(y)
    P = len(np.unique(y))  # distinct noise values: the pool actually drawn from
    assert P > 1000, "too few distinct noise samples to estimate a variance"

    lo, hi = chi2_ratio_bounds(2.0 / (1.0 / P + 1.0 / N))
    total = np.mean(np.abs(y) ** 2) / n0
    assert lo <= total <= hi, f"total noise variance / N0 = {total:.4f}, 99.9% bounds [{lo:.4f}, {hi:.4f}]"

    lo, hi = chi2_ratio_bounds(1.0 / (1.0 / P + 1.0 / N))
    for part in (y.real, y.imag):
        per_dim = np.mean(part ** 2) / (n0 / 2)
        assert lo <= per_dim <= hi, f"per-dimension variance / (N0/2) = {per_dim:.4f}, bounds [{lo:.4f}, {hi:.4f}]"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("L", [100, 1000, 100_000])
def test_epsilon_one_drops_three_samples_and_a_delay_of_three_realigns(L):
    x = (np.arange(1, L + 1) * (1 + 0.5j)).astype(np.complex64)
    y = channel_output(x, 0.0)
    # Exact values (no interpolation at mu = 0), first 3 gone; the resampler's
    # 8-tap look-ahead also strands a few samples at the end of a finite stream
    # (5 to 12 measured over many lengths: it depends on how the scheduler cut
    # the buffers), so only a loose bound is asserted on the tail.
    assert L - 3 - TAIL <= len(y) < L - 3
    np.testing.assert_array_equal(y, x[3:3 + len(y)])
    y = channel_output(x, 0.0, delay=3)
    assert L - TAIL <= len(y) < L
    np.testing.assert_array_equal(y, x[:len(y)])
