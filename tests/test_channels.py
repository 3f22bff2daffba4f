"""Channel models (torch) and their NumPy twins against the DESIGN.md noise convention.

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


def unit_symbols(B, n, seed):
    """Random unit-modulus complex symbols as real [B, 2n]."""
    phi = 2 * math.pi * torch.rand(B, n, generator=gen(seed))
    return torch.cat([torch.cos(phi), torch.sin(phi)], dim=1)


# --- self-check of the statistics helper ---------------------------------------------

def test_variance_helper_detects_a_wrong_variance():
    z = np.random.default_rng(0).standard_normal(100_000)
    assert_variance(z, 1.0)
    with pytest.raises(AssertionError):
        assert_variance(z, 1.03)  # a 3% error is far outside the bound at N = 1e5


# --- AWGN ------------------------------------------------------------------------------

@pytest.mark.parametrize("ebn0_db, M, n", [(4.0, 16, 7), (0.0, 2, 1), (10.0, 256, 4), (-3.0, 64, 10)])
def test_awgn_variance_per_real_dimension(ebn0_db, M, n):
    B = 40_000 // n + 1000
    ch = channels.AWGN(ebn0_db, M, n, "complex", generator=gen(1))
    x = unit_symbols(B, n, 2)
    noise = (ch(x) - x).numpy()
    n0 = 1.0 / ((math.log2(M) / n) * 10 ** (ebn0_db / 10))
    assert_variance(noise[:, :n], n0 / 2, "real parts")
    assert_variance(noise[:, n:], n0 / 2, "imaginary parts")
    assert_mean_zero(noise, n0 / 2)
    # real and imaginary noise are uncorrelated: E[zr zi] = 0, Var = (n0/2)**2
    assert_mean_zero(noise[:, :n] * noise[:, n:], (n0 / 2) ** 2, "cross product")


def test_awgn_real_mode_imaginary_half_untouched():
    M, n, ebn0_db = 16, 7, 2.0
    ch = channels.AWGN(ebn0_db, M, n, "real", generator=gen(3))
    x = torch.cat([torch.randn(20_000, n, generator=gen(4)), torch.zeros(20_000, n)], dim=1)
    y = ch(x)
    assert torch.count_nonzero(y[:, n:]) == 0
    assert_variance((y - x)[:, :n].numpy(), snr.n0_from_ebn0_db(ebn0_db, M, n) / 2, "real mode")


def test_awgn_same_generator_seed_same_noise():
    x = torch.zeros(100, 14)
    a = channels.AWGN(3.0, 16, 7, generator=gen(9))(x)
    b = channels.AWGN(3.0, 16, 7, generator=gen(9))(x)
    c = channels.AWGN(3.0, 16, 7, generator=gen(10))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_awgn_ebn0_range_per_example():
    """Eb/N0 drawn per example in (lo, hi): each example's noise level lies in that range."""
    lo, hi, M, n, B = 0.0, 10.0, 16, 500, 400  # n large so each example's variance is measurable
    ch = channels.AWGN((lo, hi), M, n, "complex", generator=gen(5))
    noise = ch(torch.zeros(B, 2 * n)).double()
    k = 2 * n
    ratio = noise.pow(2).sum(dim=1).numpy()  # per example: (n0/2) * chi2(k)
    # Bonferroni over the B examples keeps the overall level at ALPHA
    q_lo, q_hi = chi2_quantile(ALPHA / (2 * B), k), chi2_quantile(1 - ALPHA / (2 * B), k)
    n0_lo, n0_hi = snr.n0_from_ebn0_db(hi, M, n), snr.n0_from_ebn0_db(lo, M, n)
    assert np.all(ratio >= n0_lo / 2 * q_lo) and np.all(ratio <= n0_hi / 2 * q_hi)
    # and the levels really vary across examples, covering the range
    var = ratio / k
    ebn0_est = 10 * np.log10(1 / (snr.rate(M, n) * 2 * var))
    assert ebn0_est.min() < lo + 1.0 and ebn0_est.max() > hi - 1.0

    # the drawn N0 themselves
    n0 = ch.n0(100_000).numpy().ravel()
    assert n0.min() >= n0_lo * (1 - 1e-6) and n0.max() <= n0_hi * (1 + 1e-6)
    ebn0 = 10 * np.log10(1 / (snr.rate(M, n) * n0))
    # uniform in dB: the fraction below the midpoint is 1/2
    assert_proportion(int((ebn0 < (lo + hi) / 2).sum()), len(ebn0), 0.5, "uniform in dB")


@pytest.mark.parametrize("bad", ["abc", float("nan"), (3.0, "x"), (0.0, float("inf")), None])
def test_awgn_rejects_bad_ebn0(bad):
    with pytest.raises(ValueError, match="ebn0_db"):
        channels.AWGN(bad, 16, 7)


def test_awgn_rejects_bad_sizes_and_mode():
    with pytest.raises(ValueError, match="^M must"):
        channels.AWGN(3.0, 1, 7)
    with pytest.raises(ValueError, match="^n must"):
        channels.AWGN(3.0, 16, 0)
    with pytest.raises(ValueError, match="^mode must"):
        channels.AWGN(3.0, 16, 7, "imag")


# --- Rayleigh block fading -----------------------------------------------------------

def _gain(ch, B, n, seed):
    """Per-message complex ratio y/x, [B, n], at negligible noise."""
    x = unit_symbols(B, n, seed)
    y = ch(x)
    return models.real_to_complex(y).numpy().astype(np.complex128) / \
        models.real_to_complex(x).numpy().astype(np.complex128)


def test_rayleigh_unit_power_and_block_structure():
    B, n = 100_000, 7
    ch = channels.RayleighBlockFading(300.0, 16, n, generator=gen(6))  # noise std ~1e-15
    ratio = _gain(ch, B, n, 7)
    h = ratio[:, 0]
    # one gain per message: the same ratio on all n symbols
    np.testing.assert_allclose(ratio, np.repeat(h[:, None], n, axis=1), rtol=1e-5, atol=1e-6)
    # gains differ between messages
    assert np.std(h) > 0.5
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
    ch = channels.RayleighBlockFading(ebn0_db, M, n, generator=gen(8))
    y = ch(torch.zeros(10_000, 2 * n)).numpy()  # h * 0 = 0: only noise remains
    assert_variance(y, snr.n0_from_ebn0_db(ebn0_db, M, n) / 2, "noise after fading")


def test_rayleigh_refuses_real_mode():
    with pytest.raises(ValueError, match="^mode must be 'complex'"):
        channels.RayleighBlockFading(5.0, 16, 7, mode="real")


# --- phase offset ----------------------------------------------------------------------

@pytest.mark.parametrize("phase", [0.0, 0.3, -1.2, math.pi, 5.0])
def test_phase_offset_fixed(phase):
    x = torch.randn(200, 14, generator=gen(11))
    y = channels.PhaseOffset(phase)(x)
    zx, zy = models.real_to_complex(x), models.real_to_complex(y)
    torch.testing.assert_close(zy, zx * complex(math.cos(phase), math.sin(phase)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(zy.abs(), zx.abs(), rtol=1e-5, atol=1e-6)  # energy kept per symbol


def test_phase_offset_random_per_message():
    B, n = 100_000, 5
    ch = channels.PhaseOffset(None, generator=gen(12))
    ratio = _gain(ch, B, n, 13)
    np.testing.assert_allclose(np.abs(ratio), 1.0, rtol=1e-5)  # energy preserved
    np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], n, axis=1), rtol=1e-5, atol=1e-6)
    phi = np.angle(ratio[:, 0]) % (2 * np.pi)
    # uniform on [0, 2 pi): E cos = E sin = 0, Var = 1/2; each quarter holds 1/4
    assert_mean_zero(np.cos(phi), 0.5, "E cos phi")
    assert_mean_zero(np.sin(phi), 0.5, "E sin phi")
    for q in range(4):
        inside = (phi >= q * np.pi / 2) & (phi < (q + 1) * np.pi / 2)
        assert_proportion(int(inside.sum()), B, 0.25, f"quarter {q}")


# --- NumPy twins --------------------------------------------------------------------

def test_awgn_np_matches_convention_and_torch():
    M, n, ebn0_db = 16, 7, 3.0
    n0 = snr.n0_from_ebn0_db(ebn0_db, M, n)
    rng = np.random.default_rng(14)
    x = np.exp(2j * np.pi * rng.random((20_000, n)))
    y = channels.awgn_np(x, n0, "complex", rng)
    assert y.shape == x.shape and np.iscomplexobj(y)
    w_np = y - x
    assert_variance(w_np.real, n0 / 2, "awgn_np real")
    assert_variance(w_np.imag, n0 / 2, "awgn_np imag")
    w_t = (channels.AWGN(ebn0_db, M, n, generator=gen(15))(torch.zeros(20_000, 2 * n))).numpy()
    # two-sample check on the variances: log(s1/s2) ~ N(0, 2/N1 + 2/N2)
    s_np, s_t = np.mean(np.abs(w_np) ** 2) / 2, np.mean(w_t.astype(np.float64) ** 2)
    sd = math.sqrt(2 / (2 * w_np.size) + 2 / w_t.size)
    assert abs(math.log(s_np / s_t)) <= theory.two_sided_z(1 - ALPHA) * sd
    # real mode: no noise on the imaginary part
    xr = rng.standard_normal((20_000, n)).astype(np.complex128)
    yr = channels.awgn_np(xr, n0, "real", rng)
    assert np.all(yr.imag == 0)
    assert_variance((yr - xr).real, n0 / 2, "awgn_np real mode")


def test_rayleigh_np_matches_torch():
    B, n = 100_000, 3
    rng = np.random.default_rng(16)
    x = np.exp(2j * np.pi * rng.random((B, n)))
    hx, h = channels.rayleigh_block_fading_np(x, rng)
    assert h.shape == (B, 1) and hx.shape == (B, n)
    np.testing.assert_allclose(hx, h * x, rtol=1e-12)
    h = h.ravel()
    assert_variance(h.real, 0.5, "Re h (np)")
    assert_variance(h.imag, 0.5, "Im h (np)")
    h_t = _gain(channels.RayleighBlockFading(300.0, 16, n, generator=gen(17)), B, n, 18)[:, 0]
    # same law: P(|h|^2 < t) agrees between the two at several thresholds (two-proportion z)
    z = theory.two_sided_z(1 - ALPHA)
    for t in (0.1, 0.5, 1.0, 2.0):
        a, b = np.mean(np.abs(h) ** 2 < t), np.mean(np.abs(h_t) ** 2 < t)
        p = (a + b) / 2
        assert abs(a - b) <= z * math.sqrt(2 * p * (1 - p) / B), (t, a, b)
        assert_proportion(int(np.sum(np.abs(h) ** 2 < t)), B, 1 - math.exp(-t), f"np t={t}")


def test_phase_offset_np_matches_torch():
    x = torch.randn(50, 14, generator=gen(19))
    for phase in (0.7, -2.0):
        y_t = models.real_to_complex(channels.PhaseOffset(phase)(x)).numpy()
        y_np = channels.phase_offset_np(models.real_to_complex(x).numpy(), phase)
        np.testing.assert_allclose(y_np, y_t, rtol=1e-5, atol=1e-6)
    # a phase per message, [B, 1]
    phases = np.linspace(0, 6, 50)[:, None]
    z = models.real_to_complex(x).numpy()
    y = channels.phase_offset_np(z, phases)
    np.testing.assert_allclose(y, z * np.exp(1j * phases), rtol=1e-12)
    np.testing.assert_allclose(np.abs(y), np.abs(z), rtol=1e-6)


# --- gradients --------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: channels.AWGN(4.0, 16, 7, generator=gen(20)),
    lambda: channels.AWGN((2.0, 8.0), 16, 7, generator=gen(20)),
    lambda: channels.AWGN(4.0, 16, 7, "real", generator=gen(20)),
    lambda: channels.RayleighBlockFading(4.0, 16, 7, generator=gen(20)),
    lambda: channels.PhaseOffset(0.4),
    lambda: channels.PhaseOffset(None, generator=gen(20)),
    lambda: nn.Sequential(channels.PhaseOffset(None, generator=gen(20)),
                          channels.AWGN(4.0, 16, 7, generator=gen(21))),
])
def test_gradients_flow(make):
    ch = make()
    x = torch.randn(64, 14, generator=gen(22), requires_grad=True)
    ch(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad[:, :7]) > 0


def test_awgn_gradient_is_identity():
    x = torch.randn(32, 14, generator=gen(23), requires_grad=True)
    channels.AWGN(4.0, 16, 7, generator=gen(24))(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_gradients_reach_encoder_through_channel():
    from gnuradio.e2e.core import config
    enc, dec = models.build(config.LinkConfig(M=16, n=7), seed=0)
    ch = channels.RayleighBlockFading(4.0, 16, 7, generator=gen(25))
    loss = nn.functional.cross_entropy(dec(ch(enc(torch.arange(16)))), torch.arange(16))
    loss.backward()
    for name, p in list(enc.named_parameters()) + list(dec.named_parameters()):
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
