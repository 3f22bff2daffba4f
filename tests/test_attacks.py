"""core.attacks: PSR budgets, FGM, universal perturbations, jamming, attacks as channels."""
import math

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import attacks, baselines, channels, evaluation, learned, prng, snr, theory
from gnuradio.e2e.core.models import complex_to_real, decide

EBN0_DB, PSR_DB = 8.0, -6.0


def _cplx(shape, seed):
    return torch.randn(shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


# --- budgets and scaling -------------------------------------------------------------

def test_budget_is_n_times_the_psr():
    assert attacks.budget(0.0, 7) == 7.0
    assert attacks.budget(-10.0, 4) == pytest.approx(0.4, rel=1e-12)
    assert attacks.budget(-6.0, 7) == pytest.approx(7 * 10 ** -0.6, rel=1e-12)


@pytest.mark.parametrize("bad", [21.0, -61.0, float("nan"), float("inf"), "3", True])
def test_budget_refuses_bad_psr_naming_it(bad):
    with pytest.raises(ValueError, match="psr_db"):
        attacks.budget(bad, 7)


def test_scale_to_psr_is_exact_per_row():
    p = _cplx((50, 7), 0) * torch.linspace(0.01, 100.0, 50)[:, None]
    for psr in (-20.0, -6.0, 3.0):
        q = attacks.scale_to_psr(p, psr)
        assert q.shape == p.shape and q.dtype == torch.complex64
        energy = q.abs().double().pow(2).sum(dim=1)
        assert torch.allclose(energy, torch.full_like(energy, attacks.budget(psr, 7)), rtol=1e-6, atol=0)
        assert attacks.psr_db_of(q) == pytest.approx(psr, abs=1e-5)
        # Scaling keeps each row's direction.
        cos = (q * p.conj()).sum(1).real / (q.abs().pow(2).sum(1).sqrt() * p.abs().pow(2).sum(1).sqrt())
        assert torch.allclose(cos, torch.ones(50), atol=1e-5)
    single = attacks.scale_to_psr(p[3], -6.0)
    assert single.shape == (7,)
    assert float(single.abs().double().pow(2).sum()) == pytest.approx(attacks.budget(-6.0, 7), rel=1e-6)


def test_scale_to_psr_refuses_an_all_zero_row():
    p = _cplx((3, 7), 1)
    p[1] = 0
    with pytest.raises(ValueError, match="all-zero row"):
        attacks.scale_to_psr(p, -6.0)


def test_psr_db_of_a_batch_is_that_of_the_mean_energy():
    p = torch.stack([attacks.scale_to_psr(_cplx(7, 2), -10.0), attacks.scale_to_psr(_cplx(7, 3), 0.0)])
    assert attacks.psr_db_of(p) == pytest.approx(10 * math.log10((0.1 + 1.0) / 2), abs=1e-5)


# --- FGM --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def attacker_data(tiny_link):
    """2000 received blocks of tiny_link at 8 dB (the attacker's data) and their messages."""
    msgs = torch.from_numpy(prng.numpy_rng(0, prng.ATTACK).integers(0, 16, 2000))
    y = attacks.received_signals(tiny_link.encoder, msgs, EBN0_DB, prng.torch_generator(0, prng.ATTACK, 1))
    return y, msgs


def test_received_signals_have_the_noise_of_their_ebn0(tiny_link):
    msgs = torch.arange(16).repeat(2000)
    y = attacks.received_signals(tiny_link.encoder, msgs, EBN0_DB, torch.Generator().manual_seed(0))
    noise = y - torch.from_numpy(tiny_link.encoder.symbol_table())[msgs]
    n0 = snr.n0_from_ebn0_db(EBN0_DB, 16, 7)
    # Mean of |w|^2 over 224000 draws of an exponential(N0): relative std 1/sqrt(224000).
    assert float(noise.abs().pow(2).mean()) == pytest.approx(n0, rel=5 / math.sqrt(noise.numel()))


def test_fgm_raises_the_loss_more_than_a_random_direction(tiny_link, attacker_data):
    y, msgs = attacker_data
    dec = tiny_link.decoder
    dec.zero_grad(set_to_none=True)
    p = attacks.fgm(dec, y, msgs, PSR_DB)
    assert all(q.grad is None for q in dec.parameters())  # only the input was differentiated
    assert p.shape == y.shape and p.dtype == torch.complex64
    energy = p.abs().double().pow(2).sum(1)
    assert torch.allclose(energy, torch.full_like(energy, attacks.budget(PSR_DB, 7)), rtol=1e-5)
    rand = attacks.scale_to_psr(_cplx(y.shape, 4), PSR_DB)

    def ce(z):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(dec(complex_to_real(z)), msgs, reduction="none")

    clean, attacked, random_dir = ce(y), ce(y + p), ce(y + rand)
    # First order: a random direction barely changes the loss on average; FGM raises it by far.
    assert float(attacked.mean()) > 10 * float(random_dir.mean())
    assert float(attacked.mean()) > 10 * float(clean.mean())
    assert float((attacked > random_dir).float().mean()) > 0.95


def test_fgm_in_real_mode_has_zero_imaginary_parts(tiny_link, attacker_data):
    y, msgs = attacker_data
    p = attacks.fgm(tiny_link.decoder, y[:100], msgs[:100], PSR_DB, mode="real")
    assert torch.all(p.imag == 0) and torch.all(p.real.abs().sum(1) > 0)


def test_loss_gradient_survives_a_saturated_softmax():
    # Logits 1e4 apart: the cross-entropy's gradient underflows to zero in
    # float32; the margin's gradient still points at the boundary.
    dec = torch.nn.Linear(4, 2)
    with torch.no_grad():
        dec.weight.copy_(torch.tensor([[1e4, 0, 0, 0], [-1e4, 0, 0, 0]]))
        dec.bias.zero_()
    y = torch.tensor([[1.0 + 0j, 0.0]], dtype=torch.complex64)
    g = attacks.loss_gradient(dec, y, torch.tensor([0]))
    assert float(g[0, 0].real) < 0 and float(g.abs().sum()) > 0


# --- universal perturbations ------------------------------------------------------------

def _bler(link, channel, blocks, seed=5):
    r = evaluation.evaluate_bler(link, [EBN0_DB], channel=channel, min_errors=10**9, max_blocks=blocks,
                                 batch_size=blocks, seed=seed)[0]
    return r["block_errors"], blocks


def _disjoint_above(stronger, weaker):
    """Wilson 95% intervals: stronger's is wholly above weaker's."""
    return theory.wilson_interval(*stronger)[0] > theory.wilson_interval(*weaker)[1]


def test_universal_perturbation_beats_jamming_of_equal_power(tiny_link, attacker_data):
    y, msgs = attacker_data
    p = attacks.universal_perturbation(tiny_link.decoder, y, msgs, PSR_DB,
                                       generator=prng.torch_generator(0, prng.ATTACK, 2))
    assert p.shape == (7,) and p.dtype == torch.complex64
    assert float(p.abs().double().pow(2).sum()) == pytest.approx(attacks.budget(PSR_DB, 7), rel=1e-6)
    link = learned.LearnedLink(tiny_link.encoder, tiny_link.decoder)
    blocks = 100_000
    universal = _bler(link, attacks.Perturbed(channels.AWGN(), p), blocks)
    jammed = _bler(link, attacks.Jammed(channels.AWGN(), PSR_DB), blocks)
    clean = _bler(link, channels.AWGN(), blocks)
    # Measured: universal about 1e-2, jamming about 2.7e-3, clean about 1e-5.
    assert _disjoint_above(universal, jammed), (universal, jammed)
    assert _disjoint_above(jammed, clean), (jammed, clean)


def test_shift_invariant_perturbation_beats_jamming_under_random_shifts(tiny_link, attacker_data):
    y, msgs = attacker_data
    p = attacks.universal_perturbation(tiny_link.decoder, y, msgs, PSR_DB, shift_invariant=True,
                                       generator=prng.torch_generator(0, prng.ATTACK, 2))
    assert float(p.abs().double().pow(2).sum()) == pytest.approx(attacks.budget(PSR_DB, 7), rel=1e-6)
    link = learned.LearnedLink(tiny_link.encoder, tiny_link.decoder)
    blocks = 200_000
    shifted = _bler(link, attacks.Perturbed(channels.AWGN(), p, shift="random"), blocks)
    jammed = _bler(link, attacks.Jammed(channels.AWGN(), PSR_DB), blocks)
    # Measured: about 4e-3 against 2.5e-3.
    assert _disjoint_above(shifted, jammed), (shifted, jammed)


def test_universal_perturbation_is_reproducible_and_checks_its_arguments(tiny_link, attacker_data):
    y, msgs = attacker_data
    y, msgs = y[:300], msgs[:300]
    a = attacks.universal_perturbation(tiny_link.decoder, y, msgs, PSR_DB, passes=2,
                                       generator=prng.torch_generator(3, prng.ATTACK))
    b = attacks.universal_perturbation(tiny_link.decoder, y, msgs, PSR_DB, passes=2,
                                       generator=prng.torch_generator(3, prng.ATTACK))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="passes"):
        attacks.universal_perturbation(tiny_link.decoder, y, msgs, PSR_DB, passes=0)
    with pytest.raises(ValueError, match="psr_db"):
        attacks.universal_perturbation(tiny_link.decoder, y, msgs, 40.0)
    with pytest.raises(ValueError, match="labels"):
        attacks.universal_perturbation(tiny_link.decoder, y, msgs[:10], PSR_DB)


def test_real_mode_universal_perturbation_has_zero_imaginary_parts():
    # The Hamming (7,4) surrogate: a real-mode receiver.
    hamming = baselines.hamming74_link("soft")
    msgs = torch.from_numpy(prng.numpy_rng(1, prng.ATTACK).integers(0, 16, 1000))
    y = attacks.received_signals(hamming.codebook, msgs, 6.0, prng.torch_generator(1, prng.ATTACK))
    p = attacks.universal_perturbation(attacks.hamming_soft_decoder(), y, msgs, PSR_DB, mode="real",
                                       passes=2, generator=prng.torch_generator(1, prng.ATTACK, 1))
    assert torch.all(p.imag == 0)
    assert float(p.real.double().pow(2).sum()) == pytest.approx(attacks.budget(PSR_DB, 7), rel=1e-6)
    assert attacks.Perturbed(channels.AWGN(), p).preserves_real


# --- jamming and Perturbed ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["complex", "real"])
def test_jamming_power_matches_its_psr(mode):
    batch, n = 20_000, 7
    p = attacks.jamming(batch, n, PSR_DB, torch.Generator().manual_seed(0), mode)
    assert p.shape == (batch, n) and p.dtype == torch.complex64
    if mode == "real":
        assert torch.all(p.imag == 0)
    # Per row, ||p||^2 is budget/dof times chi-square with dof = 2n (complex) or n (real)
    # degrees of freedom: relative std sqrt(2/dof) per row, sqrt(2/(dof B)) for the mean.
    dof = 2 * n if mode == "complex" else n
    mean = float(p.abs().double().pow(2).sum(1).mean())
    assert mean == pytest.approx(attacks.budget(PSR_DB, n), rel=5 * math.sqrt(2 / (dof * batch)))
    again = attacks.jamming(batch, n, PSR_DB, torch.Generator().manual_seed(0), mode)
    assert torch.equal(p, again)


def _identity(x, n0, generator=None):
    return x


def test_perturbed_adds_the_perturbation_rolled_by_its_shift():
    p = torch.arange(1, 8, dtype=torch.float32).to(torch.complex64) * (1 + 0.5j)
    x = _cplx((4, 7), 5)
    for shift in range(7):
        ch = attacks.Perturbed(_identity, p, shift=shift)
        y = ch(x, 0.0)
        # Delayed by `shift` symbols: symbol k carries p[k - shift].
        expected = torch.stack([p[(k - shift) % 7] for k in range(7)])
        assert torch.allclose(y - x, expected.expand(4, 7))
    for bad in (7, -1, 1.5):
        with pytest.raises(ValueError, match="shift"):
            attacks.Perturbed(_identity, p, shift=bad)


def test_perturbed_random_shift_is_reproducible_and_uses_every_shift():
    p = torch.arange(1, 8, dtype=torch.float32).to(torch.complex64)
    x = torch.zeros(2000, 7, dtype=torch.complex64)
    ch = attacks.Perturbed(_identity, p, shift="random")
    a = ch(x, 0.0, torch.Generator().manual_seed(11))
    b = ch(x, 0.0, torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    # Each row is some cyclic shift of p; the shift is where p[0] = 1 landed.
    shifts = (a.real == 1).float().argmax(dim=1)
    assert torch.equal(a, torch.stack([torch.roll(p, int(s)) for s in shifts]))
    counts = torch.bincount(shifts, minlength=7)
    assert counts.min() > 200  # 2000 uniform draws over 7 shifts: about 286 each
    assert not torch.equal(a, ch(x, 0.0, torch.Generator().manual_seed(12)))


def test_perturbed_is_differentiable_and_knows_real_mode():
    p_real = torch.ones(7, dtype=torch.complex64)
    ch = attacks.Perturbed(channels.AWGN(), p_real)
    assert ch.preserves_real
    assert not attacks.Perturbed(channels.AWGN(), p_real * 1j).preserves_real
    assert not attacks.Perturbed(channels.RayleighBlockFading(), p_real).preserves_real
    assert not attacks.Jammed(channels.AWGN(), PSR_DB).preserves_real
    assert attacks.Jammed(channels.AWGN(), PSR_DB, mode="real").preserves_real
    x = torch.zeros(3, 7, dtype=torch.complex64, requires_grad=True)
    ch(x, 0.1, torch.Generator().manual_seed(0)).real.sum().backward()
    assert torch.allclose(x.grad, torch.ones(3, 7, dtype=torch.complex64))


def test_perturbed_takes_a_per_message_callable():
    def doubling(x, generator=None):
        return 2 * x
    x = _cplx((5, 7), 6)
    assert torch.allclose(attacks.Perturbed(_identity, doubling)(x, 0.0), 3 * x)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    jammed = attacks.Jammed(_identity, PSR_DB)(torch.zeros_like(x), 0.0, gen_a)
    assert torch.equal(jammed, attacks.jamming(5, 7, PSR_DB, gen_b))
    with pytest.raises(ValueError, match="shift"):
        attacks.Perturbed(_identity, doubling, shift=2)


# --- the Hamming surrogate -----------------------------------------------------------

def test_hamming_soft_decoder_decides_like_soft_ml():
    link = baselines.hamming74_link("soft")
    rng = np.random.default_rng(0)
    msgs = rng.integers(0, 16, 20_000)
    n0 = snr.n0_from_ebn0_db(2.0, 16, 7)
    y = link.transmit(msgs) + rng.normal(0, math.sqrt(n0 / 2), (20_000, 7)) \
        + 1j * rng.normal(0, 1.0, (20_000, 7))  # imaginary parts are ignored by both
    ml = link.receive(y, n0)
    logits = attacks.hamming_soft_decoder()(torch.from_numpy(complex_to_real(y)))
    assert np.array_equal(decide(logits).numpy(), ml)
    assert np.count_nonzero(ml != msgs) > 1000  # the test covers wrong decisions too
