"""The channel interface, channel(x, n0, generator) -> y, against the DESIGN.md noise convention.

Variance checks use the exact law of a sum of squared zero-mean Gaussians,
sum(z**2) / sigma**2 ~ chi-square(N), two-sided at significance 1e-6
(quantiles by Wilson-Hilferty, relative error far below the interval widths
at these N). Proportions use Wilson intervals at 1 - 1e-6. A correct channel
fails a check about once in a million runs; seeds are fixed anyway.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gnuradio.e2e.core import channels, models, snr, theory

torch.set_num_threads(1)
ALPHA = 1e-6


def chi2_quantile(p, k):
    z = theory.normal_quantile(p)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3


def assert_variance(z, sigma2, what=""):
    """z: zero-mean Gaussian samples claimed to have variance sigma2."""
    z = np.asarray(z, dtype=np.float64).ravel()
    k = z.size
    stat = float((z ** 2).sum() / sigma2)
    lo, hi = chi2_quantile(ALPHA / 2, k), chi2_quantile(1 - ALPHA / 2, k)
    assert lo <= stat <= hi, (f"{what}: sample variance {stat / k * sigma2:.5g} vs {sigma2:.5g} "
                              f"(ratio {stat / k:.4f} outside [{lo / k:.4f}, {hi / k:.4f}])")


def assert_mean_zero(z, var, what=""):
    z = np.asarray(z, dtype=np.float64).ravel()
    bound = theory.two_sided_z(1 - ALPHA) * math.sqrt(var / z.size)
    assert abs(z.mean()) <= bound, f"{what}: mean {z.mean():.4g}, bound {bound:.4g}"


def assert_proportion(hits, trials, p, what=""):
    lo, hi = theory.wilson_interval(hits, trials, 1 - ALPHA)
    assert lo <= p <= hi, f"{what}: {hits}/{trials} = {hits / trials:.4g}, expected {p:.4g}"


def gen(seed):
    return torch.Generator().manual_seed(seed)


def unit_symbols(B, n, seed, dtype=torch.complex64):
    """Random unit-modulus complex symbols, complex [B, n]."""
    phi = 2 * math.pi * torch.rand(B, n, generator=gen(seed), dtype=torch.float64)
    return torch.polar(torch.ones_like(phi), phi).to(dtype)


# --- self-check of the statistics helper ---------------------------------------------

def test_variance_helper_detects_a_wrong_variance():
    z = np.random.default_rng(0).standard_normal(100_000)
    assert_variance(z, 1.0)
    with pytest.raises(AssertionError):
        assert_variance(z, 1.03)  # a 3% error is far outside the bound at N = 1e5


# --- AWGN ------------------------------------------------------------------------------

@pytest.mark.parametrize("ebn0_db, M, n", [(4.0, 16, 7), (0.0, 2, 1), (10.0, 256, 4), (-3.0, 64, 10)])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_awgn_variance_per_real_dimension(ebn0_db, M, n, dtype):
    B = 40_000 // n + 1000
    n0 = snr.n0_from_ebn0_db(ebn0_db, M, n)
    x = unit_symbols(B, n, 2, dtype)
    y = channels.AWGN()(x, n0, gen(1))
    assert y.dtype == dtype and y.shape == x.shape
    noise = (y - x).numpy()
    assert_variance(noise.real, n0 / 2, "real parts")
    assert_variance(noise.imag, n0 / 2, "imaginary parts")
    assert_mean_zero(noise.real, n0 / 2)
    # real and imaginary noise are uncorrelated: E[zr zi] = 0, Var = (n0/2)**2
    assert_mean_zero(noise.real * noise.imag, (n0 / 2) ** 2, "cross product")


def test_awgn_carries_a_real_mode_link():
    """A real-mode receiver reads real parts only, and finds N0/2 there: the DESIGN.md convention."""
    M, n, ebn0_db = 16, 7, 2.0
    x = torch.randn(20_000, n, generator=gen(4)).to(torch.complex64)
    y = channels.AWGN()(x, snr.n0_from_ebn0_db(ebn0_db, M, n), gen(3))
    assert_variance((y - x).real.numpy(), snr.n0_from_ebn0_db(ebn0_db, M, n) / 2, "real mode")
    assert channels.check_mode(channels.AWGN(), "real")


def test_same_generator_seed_same_noise():
    x = torch.zeros(100, 7, dtype=torch.complex64)
    a, b, c = (channels.AWGN()(x, 0.5, gen(s)) for s in (9, 9, 10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_n0_per_example_broadcasts():
    """n0 [B, 1]: each example gets its own noise level."""
    B, n = 2, 20_000
    n0 = torch.tensor([[0.01], [1.0]])
    noise = channels.AWGN()(torch.zeros(B, n, dtype=torch.complex64), n0, gen(5)).numpy()
    assert_variance(noise[0].real, 0.005, "example 0")
    assert_variance(noise[1].imag, 0.5, "example 1")


def test_noise_level_range_per_example():
    """NoiseLevel draws Eb/N0 uniformly in dB over (lo, hi), one per example."""
    lo, hi, M, n = 0.0, 10.0, 16, 7
    level = channels.NoiseLevel((lo, hi), M, n)
    n0 = level.sample(100_000, gen(5)).numpy().ravel()
    n0_lo, n0_hi = snr.n0_from_ebn0_db(hi, M, n), snr.n0_from_ebn0_db(lo, M, n)
    assert n0.min() >= n0_lo * (1 - 1e-6) and n0.max() <= n0_hi * (1 + 1e-6)
    ebn0 = 10 * np.log10(1 / (snr.rate(M, n) * n0))
    assert ebn0.min() < lo + 0.01 and ebn0.max() > hi - 0.01
    # uniform in dB: the fraction below the midpoint is 1/2
    assert_proportion(int((ebn0 < (lo + hi) / 2).sum()), len(ebn0), 0.5, "uniform in dB")
    fixed = channels.NoiseLevel(4.0, M, n).sample(3)
    assert fixed.shape == (3, 1) and torch.allclose(fixed, torch.tensor(snr.n0_from_ebn0_db(4.0, M, n)))


@pytest.mark.parametrize("bad", ["abc", float("nan"), (3.0, "x"), (0.0, float("inf")), (8.0, 3.0), None])
def test_noise_level_rejects_bad_ebn0(bad):
    with pytest.raises(ValueError, match="^ebn0_db"):
        channels.NoiseLevel(bad, 16, 7)


def test_noise_level_rejects_bad_sizes():
    with pytest.raises(ValueError, match="^M must"):
        channels.NoiseLevel(3.0, 1, 7)
    with pytest.raises(ValueError, match="^n must"):
        channels.NoiseLevel(3.0, 16, 0)


# --- Rayleigh block fading -----------------------------------------------------------

def _gain(ch, B, n, seed):
    """Per-message complex ratio y/x, [B, n], without noise."""
    x = unit_symbols(B, n, seed, torch.complex128)
    return (ch(x, 0.0, gen(seed + 100)) / x).numpy()


def test_rayleigh_unit_power_and_block_structure():
    B, n = 100_000, 7
    ratio = _gain(channels.RayleighBlockFading(), B, n, 7)
    h = ratio[:, 0]
    # one gain per message: the same ratio on all n symbols
    np.testing.assert_allclose(ratio, np.repeat(h[:, None], n, axis=1), rtol=1e-9, atol=1e-12)
    assert np.std(h) > 0.5  # gains differ between messages
    # h ~ CN(0, 1): real and imaginary parts N(0, 1/2), 2|h|^2 ~ chi2(2) so |h|^2 mean 1
    assert_variance(h.real, 0.5, "Re h")
    assert_variance(h.imag, 0.5, "Im h")
    p2 = np.abs(h) ** 2
    stat = 2 * p2.sum()
    assert chi2_quantile(ALPHA / 2, 2 * B) <= stat <= chi2_quantile(1 - ALPHA / 2, 2 * B)
    # |h|^2 ~ Exp(1): P(|h|^2 < 1) = 1 - 1/e
    assert_proportion(int((p2 < 1).sum()), B, 1 - math.exp(-1), "P(|h|^2 < 1)")


def test_rayleigh_noise_added_after_fading():
    M, n, ebn0_db = 16, 7, 5.0
    n0 = snr.n0_from_ebn0_db(ebn0_db, M, n)
    y = channels.RayleighBlockFading()(torch.zeros(10_000, n, dtype=torch.complex64), n0, gen(8)).numpy()
    assert_variance(y.real, n0 / 2, "noise after fading, real")  # h * 0 = 0: only noise remains
    assert_variance(y.imag, n0 / 2, "noise after fading, imaginary")


@pytest.mark.parametrize("make", [channels.RayleighBlockFading, channels.PhaseOffset,
                                  lambda: channels.Chain(channels.PhaseOffset(), channels.AWGN())])
def test_rotating_channels_refuse_real_mode(make):
    ch = make()
    assert not ch.preserves_real
    assert channels.check_mode(ch, "complex") is ch
    with pytest.raises(ValueError, match="^mode must be 'complex'"):
        channels.check_mode(ch, "real")


# --- phase offset and chains --------------------------------------------------------------

@pytest.mark.parametrize("phase", [0.0, 0.3, -1.2, math.pi, 5.0])
def test_phase_offset_fixed(phase):
    x = unit_symbols(200, 7, 11) * 1.7
    y = channels.PhaseOffset(phase)(x, 0.5, gen(1))  # noiseless whatever n0 says
    torch.testing.assert_close(y, x * complex(math.cos(phase), math.sin(phase)), rtol=1e-5, atol=1e-6)


def test_phase_offset_random_per_message():
    B, n = 100_000, 5
    ratio = _gain(channels.PhaseOffset(), B, n, 13)
    np.testing.assert_allclose(np.abs(ratio), 1.0, rtol=1e-9)  # energy preserved
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], n, axis=1), rtol=1e-9, atol=1e-12)
    phi = np.angle(ratio[:, 0]) % (2 * np.pi)
    # uniform on [0, 2 pi): E cos = E sin = 0, Var = 1/2; each quarter holds 1/4
    assert_mean_zero(np.cos(phi), 0.5, "E cos phi")
    assert_mean_zero(np.sin(phi), 0.5, "E sin phi")
    for q in range(4):
        inside = (phi >= q * np.pi / 2) & (phi < (q + 1) * np.pi / 2)
        assert_proportion(int(inside.sum()), B, 0.25, f"quarter {q}")


def test_chain_applies_each_stage_with_the_same_n0():
    n0 = 0.2
    x = unit_symbols(20_000, 4, 30, torch.complex128)
    y = channels.Chain(channels.PhaseOffset(0.5), channels.AWGN())(x, n0, gen(31))
    noise = (y - x * complex(math.cos(0.5), math.sin(0.5))).numpy()
    assert_variance(noise.real, n0 / 2, "chain noise")
    assert channels.Chain(channels.AWGN(), channels.AWGN()).preserves_real
    with pytest.raises(ValueError, match="at least one"):
        channels.Chain()


def test_by_name_and_function_channel():
    assert isinstance(channels.by_name("awgn"), channels.AWGN)
    assert isinstance(channels.by_name("rayleigh"), channels.RayleighBlockFading)
    assert isinstance(channels.by_name("phase"), channels.Chain)
    assert isinstance(channels.by_name("pa"), channels.Chain)
    with pytest.raises(ValueError, match=r"^channel must be one of \('awgn', 'rayleigh', 'phase', 'pa'\)"):
        channels.by_name("rician")
    ch = channels.FunctionChannel(lambda z: 2 * z)
    x = unit_symbols(5, 3, 32)
    assert torch.equal(ch(x, 0.1, None), 2 * x) and ch(x, 0.1).dtype == torch.complex64
    with pytest.raises(ValueError, match=r"returned shape \(5, 2\), expected \(5, 3\)"):
        channels.FunctionChannel(lambda z: z[:, :2])(x)


def test_through_keeps_the_models_real_layout():
    x = torch.randn(10, 14, generator=gen(33))
    y = channels.through(channels.PhaseOffset(math.pi), x, 0.0)
    torch.testing.assert_close(y, -x)


# --- gradients --------------------------------------------------------------------

@pytest.mark.parametrize("make", [channels.AWGN, channels.RayleighBlockFading, lambda: channels.PhaseOffset(0.4),
                                  channels.PhaseOffset, lambda: channels.Chain(channels.PhaseOffset(), channels.AWGN())])
def test_gradients_flow(make):
    x = torch.randn(64, 14, generator=gen(22), requires_grad=True)
    channels.through(make(), x, torch.full((64, 1), 0.3), gen(20)).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad[:, :7]) > 0


def test_awgn_gradient_is_identity():
    x = torch.randn(32, 14, generator=gen(23), requires_grad=True)
    channels.through(channels.AWGN(), x, 0.5, gen(24)).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_gradients_reach_encoder_through_channel():
    from gnuradio.e2e.core import config
    enc, dec = models.build(config.LinkConfig(M=16, n=7), seed=0)
    y = channels.through(channels.RayleighBlockFading(), enc(torch.arange(16)), 0.1, gen(25))
    nn.functional.cross_entropy(dec(y), torch.arange(16)).backward()
    for name, p in list(enc.named_parameters()) + list(dec.named_parameters()):
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
