"""Fidelity statistics of learned channels: moments against their sampling distributions, the MMD
permutation test's level and power, chi-square intervals, and a learned AWGN channel's noise variance."""
import math

import pytest
import torch

from gnuradio.e2e.core import channel_dataset as cd
from gnuradio.e2e.core import channel_gan as cg
from gnuradio.e2e.core import channel_gan_training as cgt
from gnuradio.e2e.core import channels, fidelity, snr

N, M = 7, 16
N0 = snr.n0_from_ebn0_db(3.0, M, N)


def _awgn(x, n0, seed):
    return channels.AWGN()(x, n0, torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def codebook_rows():
    """K = 400 rows of each of 16 codewords (unit-energy symbols): x complex128 [6400, 7], messages [6400]."""
    codebook = torch.randn(M, N, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    messages = torch.arange(M).repeat(400)
    return codebook[messages], messages


def test_chi2_quantiles_match_tables():
    # Standard table values of the chi-square distribution.
    for p, dof, table in ((0.995, 100, 140.169), (0.005, 100, 67.328), (0.975, 1000, 1088.49), (0.025, 1000, 913.30)):
        assert fidelity.chi2_quantile(p, dof) == pytest.approx(table, rel=2e-3)
    lo, hi = fidelity.variance_interval(1.0, 1000, 0.95)
    assert (lo, hi) == pytest.approx((1000 / 1088.49, 1000 / 913.30), rel=2e-3)


def test_conditional_moments_of_two_awgn_samples_match_their_sampling_distribution(codebook_rows):
    x, messages = codebook_rows
    r = fidelity.fidelity_report(x, _awgn(x, N0, 1), _awgn(x, N0, 2), messages, permutations=50, max_samples=300)
    k, dims = 400, 2 * N
    assert r["groups"] == M and r["rows"] == M * k
    # Per group the mean difference is N(0, N0/k) on each of 14 real dims: ||d|| sqrt(k/N0) ~ chi(14),
    # mean sqrt(2) Gamma(7.5)/Gamma(7), sd below 0.7; averaged over 16 groups: within 4 sd / sqrt(16).
    chi_mean = math.sqrt(2) * math.exp(math.lgamma(7.5) - math.lgamma(7.0))
    assert abs(r["mean_error"] * math.sqrt(k / N0) - chi_mean) < 4 * 0.7 / 4
    # Two sample covariances of sigma^2 I_p (k rows): E||S1 - S2||_F^2 / ||Sigma||_F^2 = 2 (p + 1) / (k - 1).
    expected = math.sqrt(2 * (dims + 1) / (k - 1))
    assert 0.8 * expected < r["covariance_error"] < 1.1 * expected
    # Noise variance per real dimension: N0/2 for both, each within its 99.9% chi-square interval.
    for key in ("noise_variance_real", "noise_variance_fake"):
        lo, hi = fidelity.variance_interval(r[key], M * k * dims - dims, 0.999)
        assert lo < N0 / 2 < hi, (key, r[key])


def test_moments_see_a_phase_offset_and_a_doubled_noise(codebook_rows):
    x, messages = codebook_rows
    real = _awgn(x, N0, 1)
    turned = fidelity.fidelity_report(x, real, _awgn(x * complex(math.cos(0.3), math.sin(0.3)), N0, 2), messages,
                                      permutations=50, max_samples=300)
    # |x (e^{j0.3} - 1)| = 2 sin(0.15) ||x|| against a sampling error of ~3.7 sqrt(N0/k) = 0.17.
    assert turned["mean_error"] > 0.5
    doubled = fidelity.fidelity_report(x, real, _awgn(x, 2 * N0, 2), messages, permutations=50, max_samples=300)
    # C_fake = 2 C_real: relative error 1, sampling error ~0.3.
    assert 0.6 < doubled["covariance_error"] < 1.6
    assert doubled["noise_variance_fake"] / doubled["noise_variance_real"] == pytest.approx(2.0, rel=0.1)


def test_distinct_rows_form_the_groups_without_messages(codebook_rows):
    x, messages = codebook_rows
    y1, y2 = _awgn(x, N0, 1), _awgn(x, N0, 2)
    a = fidelity.fidelity_report(x, y1, y2, None, permutations=20, max_samples=100)
    b = fidelity.fidelity_report(x, y1, y2, messages, permutations=20, max_samples=100)
    assert a["groups"] == M and a["mean_error"] == pytest.approx(b["mean_error"])
    iid = torch.randn(50, N, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    r = fidelity.fidelity_report(iid, _awgn(iid, N0, 1), _awgn(iid, N0, 2), permutations=20)
    assert r["groups"] == 0 and r["mean_error"] is None and r["covariance_error"] is None
    assert r["mmd_samples"] == 50


def test_mmd_same_distribution_is_not_significant_and_double_noise_is():
    x = torch.randn(500, N, dtype=torch.complex128, generator=torch.Generator().manual_seed(4))
    same = fidelity.fidelity_report(x, _awgn(x, N0, 1), _awgn(x, N0, 2), permutations=200, seed=1)
    assert same["mmd_p_value"] > 0.01
    double = fidelity.fidelity_report(x, _awgn(x, N0, 1), _awgn(x, 2 * N0, 2), permutations=200, seed=1)
    assert double["mmd_p_value"] <= 0.01 and double["mmd2"] > same["mmd2"]
    assert double["mmd_permutations"] == 200 and double["mmd_samples"] == 500


def test_mmd_permutation_p_values_are_uniform_under_the_null():
    """Level of the test: over 60 independent null pairs, about 10% of p-values fall at or below 0.1."""
    x = torch.randn(60, N, dtype=torch.complex128, generator=torch.Generator().manual_seed(5))
    hits = 0
    trials = 60
    for t in range(trials):
        a, b = fidelity.mmd_test(torch.view_as_real(_awgn(x, N0, 2 * t)).flatten(1),
                                 torch.view_as_real(_awgn(x, N0, 2 * t + 1)).flatten(1), permutations=99, seed=t)[:2]
        hits += b <= 0.1
    # Binomial(60, 0.1): mean 6, sd 2.3; 99.9% of draws lie in [0, 15].
    assert hits <= 15


def test_report_refuses_mismatched_inputs():
    x = torch.zeros(4, N, dtype=torch.complex64)
    with pytest.raises(ValueError, match="one shape"):
        fidelity.fidelity_report(x, x[:, :3], x)
    with pytest.raises(ValueError, match="y_real must be complex"):
        fidelity.fidelity_report(x, x.real, x)
    with pytest.raises(ValueError, match="messages has 3 entries"):
        fidelity.fidelity_report(x, x, x, messages=[0, 1, 2])


@pytest.mark.slow
def test_learned_awgn_channel_has_the_noise_variance_of_awgn():
    """Fit a residual GAN on AWGN pairs (no L2 penalty: it pulls the variance down); the learned noise
    variance per real dimension must lie in the 99% chi-square interval of 100 generated messages
    (1400 values, about +-10%), which an untrained model misses by far."""
    data = cd.simulate_dataset("awgn", N, 3.0, 4000, seed=0)
    config = cg.ChannelModelConfig(n=N, hidden=(64, 64), ebn0_db=3.0)
    G, D = cg.build_channel_model(config, seed=0)
    untrained = cg.LearnedChannel(cg.build_channel_model(config, seed=0)[0])
    cgt.fit_channel(G, D, data, steps=1500, l2=0.0, seed=0)
    x = torch.randn(100, N, dtype=torch.complex64, generator=torch.Generator().manual_seed(11))
    values = 100 * 2 * N
    for model, should_match in ((cg.LearnedChannel(G), True), (untrained, False)):
        with torch.no_grad():
            w = torch.view_as_real(model(x, None, torch.Generator().manual_seed(12)) - x).double()
        lo, hi = fidelity.variance_interval(float(w.pow(2).mean()), values, 0.99)  # noise mean is 0: dof = values
        assert (lo < N0 / 2 < hi) == should_match, (lo, hi, N0 / 2)
