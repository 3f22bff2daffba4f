"""Power-amplifier channels: Saleh AM/AM and AM/PM as the formulas say, Rapp, and 'pa' by name."""
import math

import pytest
import torch

from gnuradio.e2e.core import channels, evaluation, learned, snr


def _amplitudes(r_values, gain):
    """Input symbols whose amplitude after the back-off is r, on a spread of phases: complex128 [len(r), 1]."""
    r = torch.tensor(r_values, dtype=torch.float64)
    phase = torch.linspace(0.1, 2.9, len(r_values), dtype=torch.float64)
    return torch.polar(r / gain, phase).unsqueeze(1)


def test_saleh_am_am_and_am_pm_follow_the_formulas():
    pa = channels.SalehPA()
    r = [0.05, 0.3, 0.7, 1.0, 1.5, 3.0]
    x = _amplitudes(r, pa.gain)
    y = pa(x, 0.0)
    rr = torch.tensor(r, dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(y.abs(), 2.0 * rr / (1 + rr ** 2))
    turn = torch.angle(y * x.conj())
    torch.testing.assert_close(turn, (math.pi / 3) * rr ** 2 / (1 + rr ** 2))
    torch.testing.assert_close(pa.am_am(rr), 2.0 * rr / (1 + rr ** 2))
    torch.testing.assert_close(pa.am_pm(rr), turn)


def test_saleh_compresses_large_symbols_and_saturates():
    pa = channels.SalehPA()
    x = _amplitudes([0.01, 0.5, 1.0, 2.0], pa.gain)
    gain = (pa(x).abs() / x.abs()).squeeze(1)
    # Small-signal gain alpha_a g; strictly decreasing with amplitude (compression).
    assert gain[0] == pytest.approx(2.0 * pa.gain, rel=1e-3)
    assert torch.all(gain[1:] < gain[:-1])
    # Output amplitude peaks at A_sat = alpha_a / (2 sqrt(beta_a)) = 1 at r = 1.
    assert float(pa(x).abs()[2]) == pytest.approx(1.0)
    big = torch.randn(10_000, 7, dtype=torch.complex64, generator=torch.Generator().manual_seed(0)) * 10
    assert float(pa(big).abs().max()) <= 1.0 + 1e-6


def test_backoff_sets_the_mean_input_power_below_saturation():
    for ibo in (0.0, 3.0, 6.0):
        pa = channels.SalehPA(beta_a=2.0, input_backoff_db=ibo)
        # E r^2 = g^2 (Es = 1) lies IBO dB below r_sat^2 = 1 / beta_a.
        assert 10 * math.log10((1 / 2.0) / pa.gain ** 2) == pytest.approx(ibo)


def test_rapp_am_am_and_no_phase_change():
    pa = channels.RappPA(smoothness=3.0, saturation=0.8)
    r = [0.1, 0.5, 0.8, 2.0]
    x = _amplitudes(r, pa.gain)
    y = pa(x)
    rr = torch.tensor(r, dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(y.abs(), rr / (1 + (rr / 0.8) ** 6) ** (1 / 6))
    torch.testing.assert_close(torch.angle(y * x.conj()), torch.zeros_like(rr), atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", [channels.SalehPA, channels.RappPA])
def test_power_amplifiers_are_differentiable_at_zero_and_beyond(make):
    x = torch.tensor([[0j, 0.3 + 0.4j, -2.0 + 1.0j]], dtype=torch.complex128, requires_grad=True)
    make()(x).abs().pow(2).sum().backward()
    assert torch.isfinite(torch.view_as_real(x.grad)).all()


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha_a=0.0), "alpha_a"), (dict(beta_a=-1.0), "beta_a"), (dict(alpha_p="x"), "alpha_p"),
    (dict(input_backoff_db=float("nan")), "input_backoff_db"), (dict(input_backoff_db=100.0), "input_backoff_db"),
])
def test_saleh_errors_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        channels.SalehPA(**kwargs)


def test_rapp_errors_name_the_parameter():
    with pytest.raises(ValueError, match="^smoothness must"):
        channels.RappPA(smoothness=0.5)
    with pytest.raises(ValueError, match="^saturation must"):
        channels.RappPA(saturation=0.0)


def test_pa_by_name_is_saleh_then_fixed_phase_then_awgn():
    assert "pa" in channels.NAMES
    ch = channels.by_name("pa")
    assert not ch.preserves_real
    with pytest.raises(ValueError, match="mode must be 'complex'"):
        channels.check_mode(ch, "real")
    x = torch.randn(4, 7, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    expected = channels.SalehPA()(x) * complex(math.cos(channels.PA_PHASE_RAD), math.sin(channels.PA_PHASE_RAD))
    torch.testing.assert_close(ch(x, 0.0), expected)
    # The noise is AWGN of N0 on top, from the generator it is given.
    y1 = ch(x, 0.5, torch.Generator().manual_seed(3))
    y2 = ch(x, 0.5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(y1, y2)
    assert not torch.allclose(y1, expected)


def test_evaluator_runs_on_pa_and_the_nonlinearity_costs_blocks(tiny_link):
    link = learned.LearnedLink(tiny_link.encoder, tiny_link.decoder)
    kw = dict(min_errors=10**9, max_blocks=20_000, batch_size=20_000)
    awgn = evaluation.evaluate_bler(link, [4.0], **kw)[0]
    pa = evaluation.evaluate_bler(link, [4.0], channel=channels.by_name("pa"), **kw)[0]
    assert pa["n0"] == pytest.approx(snr.n0_from_ebn0_db(4.0, 16, 7))
    # An AWGN-trained link loses to the PA and its phase offset: the Wilson intervals do not overlap.
    assert awgn["bler_ci95"][1] < pa["bler_ci95"][0]
