"""N parallel subchannels with tapped-delay-line gains (core.subchannels).

Means are checked against z-bounds at significance 1e-6 (a correct channel
fails about once in a million runs; seeds are fixed anyway): each gain is
CN(0, 1) marginally, so |h_i|^2 has variance 1 and h_i conj(h_j) has second
moment 1 + |rho|^2 <= 2.
"""
import math

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import prng, subchannels, theory

torch.set_num_threads(1)
Z = theory.two_sided_z(1 - 1e-6)
N = 8
DRAWS = 20000


def gains(family, draws=DRAWS, block=1, seed=0):
    ch = subchannels.SubchannelChannel(N, family, block=block)
    return ch.draw_gains(draws, prng.torch_generator(seed, prng.MPA)).to(torch.complex128).numpy()


@pytest.mark.parametrize("family", subchannels.FAMILIES)
def test_unit_average_power_on_every_subchannel(family):
    power = np.abs(gains(family)) ** 2
    bound = Z * math.sqrt(1.0 / DRAWS)
    assert np.all(np.abs(power.mean(axis=0) - 1.0) <= bound), power.mean(axis=0)


@pytest.mark.parametrize("family", ["train", "selective", "deep_fade"])
def test_adjacent_correlation_follows_the_profile(family):
    h = gains(family)
    powers = subchannels.family_powers(family, N)
    for d in (1, 2):
        measured = (h[:, :-d] * h[:, d:].conj()).mean(axis=0)
        exact = subchannels.subcarrier_correlation(powers, N, d)
        bound = Z * math.sqrt(2.0 / DRAWS)
        assert np.all(np.abs(measured - exact) <= bound), (d, measured, exact)


def test_delay_spread_decorrelates_subchannels():
    short, long_ = subchannels.family_powers("train", N), subchannels.family_powers("selective", N)
    assert subchannels.rms_delay_spread(long_) > 2 * subchannels.rms_delay_spread(short)
    rho = [abs((g[:, :-1] * g[:, 1:].conj()).mean()) for g in (gains("train"), gains("selective"))]
    # Exact values about 0.95 and 0.31: the gap dwarfs the sampling error (< 0.04 at 1e-6).
    assert rho[0] > 0.8 and rho[1] < 0.4, rho


def test_flat_and_deep_fade_structure():
    flat = gains("flat", draws=100)
    assert np.allclose(flat, flat[:, :1])
    deep = gains("deep_fade", draws=100)
    assert np.allclose(deep[:, 0::2], deep[:, :1]) and np.allclose(deep[:, 1::2], deep[:, 1:2])


def test_block_shares_gains_and_draws_are_seeded():
    h = gains("train", draws=10, block=4)
    assert np.array_equal(h[0], h[3]) and np.array_equal(h[4], h[7]) and not np.array_equal(h[3], h[4])
    assert np.array_equal(gains("train", draws=10, seed=3), gains("train", draws=10, seed=3))
    assert not np.array_equal(gains("train", draws=10, seed=3), gains("train", draws=10, seed=4))


def test_forward_uses_given_gains_and_adds_noise_of_n0():
    ch = subchannels.SubchannelChannel(N, "selective")
    gen = prng.torch_generator(1, prng.MPA)
    x = torch.ones(4000, N, dtype=torch.complex64)
    h = ch.draw_gains(4000, gen)
    n0 = 0.3
    w = (ch(x, n0, gen, h=h) - h * x).to(torch.complex128).numpy()
    k = 2 * w.size
    stat = float((w.real ** 2).sum() + (w.imag ** 2).sum()) / (n0 / 2)
    assert abs(stat / k - 1) <= Z * math.sqrt(2.0 / k), stat / k
    y = ch(x, n0, gen)
    assert ch.last_gains.shape == (4000, N) and y.shape == (4000, N)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="family"):
        subchannels.SubchannelChannel(N, "nope")
    with pytest.raises(ValueError, match="family"):
        subchannels.SubchannelChannel(N, [1.0] * (N + 1))
    with pytest.raises(ValueError, match="block"):
        subchannels.SubchannelChannel(N, "train", block=0)
    with pytest.raises(ValueError, match="x must"):
        subchannels.SubchannelChannel(N)(torch.ones(2, N + 1, dtype=torch.complex64), 0.1)
