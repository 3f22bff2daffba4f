"""Classical CSI-aware precoding baselines on N parallel subchannels (core.classical_precoding)."""
import math

import pytest
import torch

from gnuradio.e2e.core import classical_precoding as cp
from gnuradio.e2e.core import mpa, subchannels, theory


def _gains(family, batch, N=8, seed=0):
    return subchannels.SubchannelChannel(N, family).draw_gains(batch, torch.Generator().manual_seed(seed))


class _UnitGains(subchannels.SubchannelChannel):
    """h = 1 on every subchannel (AWGN per subchannel), drawn through the usual interface."""

    def draw_gains(self, batch, generator=None, device="cpu", dtype=torch.complex64):
        return torch.ones(batch, self.N, device=device, dtype=dtype)


class _Recording(subchannels.SubchannelChannel):
    """A SubchannelChannel that keeps what it was given and the noise it added."""

    def forward(self, x, n0, generator=None, h=None):
        y = super().forward(x, n0, generator, h=h)
        self.seen_h, self.seen_noise = h.clone(), y - h * x
        return y


@pytest.mark.parametrize("M,N", [(4, 3), (16, 8), (64, 6), (256, 8), (256, 16)])
def test_codebook_rate_energy_and_groups(M, N):
    c = cp.codebook(M, N)
    K = int(math.log2(M)) // 2
    assert c.shape == (M, N) and c.dtype == torch.complex64
    assert torch.allclose(c.abs(), torch.ones(M, N))                       # Es = 1 on every use
    assert len({tuple(row.tolist()) for row in torch.view_as_real(c).reshape(M, -1)}) == M   # log2(M) bits
    groups = cp.assignment(M, N)
    assert groups.shape == (K, N // K)
    assert sorted(groups.reshape(-1).tolist()) == list(range(N))           # a partition of the band
    for k, g in enumerate(groups):
        assert torch.equal(c[:, g], c[:, g[:1]].expand(-1, len(g)))         # symbol k repeated on its group
        if len(g) > 1:
            assert {int(i) % 2 for i in g} == {0, 1}                        # diversity on 'deep_fade'


def test_gray_labelling_of_each_symbol():
    # Messages differing in one bit differ in exactly one quadrature of exactly one symbol.
    M, N = 16, 8
    c = cp.codebook(M, N)
    first = cp.assignment(M, N)[:, 0]
    for m in range(M):
        for b in range(4):
            d = c[m, first] - c[m ^ (1 << b), first]
            assert int((d.real.abs() > 1e-6).sum() + (d.imag.abs() > 1e-6).sum()) == 1


@pytest.mark.parametrize("family", subchannels.FAMILIES)
@pytest.mark.parametrize("scheme", cp.PRECODERS)
def test_precoded_block_energy_is_N(scheme, family):
    M, N = 16, 8
    h = _gains(family, 200, N)
    w = cp.precode(h, 0.3, scheme, M)
    assert w.shape == h.shape and w.dtype == h.dtype
    energy = ((w[:, None, :] * cp.codebook(M, N)[None]).abs() ** 2).sum(dim=-1)     # [B, M]
    assert torch.allclose(energy, torch.full_like(energy, N), rtol=1e-4)


def test_inversion_equalises_received_gains():
    h = _gains("selective", 100)
    g = cp.effective_gains(h, cp.precode(h, 0.3, "inversion", 16))
    assert torch.allclose(g, g[:, :1].expand_as(g), rtol=1e-4, atol=1e-6)
    assert torch.allclose(g.imag, torch.zeros_like(g.imag), atol=1e-5)


def test_selection_uses_best_of_each_group_with_equal_received_snr():
    M, N = 16, 8
    h = _gains("selective", 100)
    g = cp.effective_gains(h, cp.precode(h, 0.3, "selection", M)).abs() ** 2
    for group in cp.assignment(M, N):
        on = g[:, group] > 0
        assert torch.equal(on.sum(dim=1), torch.ones(100, dtype=torch.int64))          # one subchannel per symbol
        assert torch.equal(on.int().argmax(dim=1), h[:, group].abs().argmax(dim=1))   # the strongest one
    received = g[g > 0].reshape(100, -1)
    assert torch.allclose(received, received[:, :1].expand_as(received), rtol=1e-4)


def test_waterfilling_meets_the_water_level_conditions():
    n0 = 0.5
    h = _gains("selective", 100)
    gain = (h.abs() ** 2).double()
    p = cp.effective_gains(torch.ones_like(h), cp.precode(h, n0, "waterfilling", 16)).abs().double() ** 2
    level = p + n0 / gain                                   # mu on the filled subchannels
    for row in range(100):
        filled = p[row] > 1e-9
        mu = level[row, filled]
        assert torch.allclose(mu, mu[:1].expand_as(mu), rtol=1e-4)
        assert bool((n0 / gain[row, ~filled] >= mu[0] * (1 - 1e-4)).all())


@pytest.mark.parametrize("scheme", cp.PRECODERS)
@pytest.mark.parametrize("M,N", [(4, 4), (16, 8), (64, 6)])
def test_detection_is_exact_without_noise(scheme, M, N):
    h = _gains("selective", 50, N)
    w = cp.precode(h, 1e-3, scheme, M)
    words = cp.codebook(M, N)
    m = torch.arange(M).repeat(50)
    hb, wb = h.repeat_interleave(M, dim=0), w.repeat_interleave(M, dim=0)
    y = hb * wb * words[m]
    assert torch.equal(cp.detect(y, hb, wb, words), m)


def test_none_on_unit_gains_matches_repetition_theory():
    # Each QPSK symbol sits on N/K uses; maximal-ratio combining gives it SNR (N/K) / N0 = 2 Eb/N0, so
    # p_bit = Q(sqrt(2 Eb/N0)), Ps = 1 - (1 - p_bit)^2 and P_block = 1 - (1 - Ps)^K.
    M, N, ebn0_db = 16, 8, 4.0
    errors, blocks = cp.block_errors(_UnitGains(N, "flat"), ebn0_db, "none", M=M, channels=2000, block=10)
    snr = (N / 2) / mpa.noise_density(ebn0_db, M, N)
    ps = 1.0 - (1.0 - theory.qfunc(math.sqrt(snr))) ** 2
    expected = 1.0 - (1.0 - ps) ** 2
    assert expected == pytest.approx(theory.uncoded_bpsk_bler(ebn0_db, 4))
    low, high = theory.wilson_interval(errors, blocks, confidence=0.999)
    assert low <= expected <= high


def test_selection_beats_none_on_the_selective_family():
    channel = subchannels.SubchannelChannel(8, "selective")
    none = cp.block_errors(channel, 8.0, "none", M=16, channels=1000, block=10)
    selection = cp.block_errors(channel, 8.0, "selection", M=16, channels=1000, block=10)
    assert theory.wilson_interval(*selection, confidence=0.999)[1] < theory.wilson_interval(*none, confidence=0.999)[0]


def test_block_errors_meets_the_learned_links_draws():
    # The same channels and noise as core.mpa.block_errors with the same seed (messages come from the
    # same stream call in both).
    M, N = 16, 8
    torch.manual_seed(0)
    encoder, decoder = mpa.PlainEncoder(M, N).eval(), mpa.CsiDecoder(M, N).eval()
    learned, classical = _Recording(N, "train"), _Recording(N, "train")
    mpa.block_errors(encoder, decoder, learned, 6.0, channels=20, block=3, seed=5)
    errors, blocks = cp.block_errors(classical, 6.0, "mmse", M=M, channels=20, block=3, seed=5)
    assert blocks == 60 and 0 <= errors <= blocks
    assert torch.equal(learned.seen_h, classical.seen_h)
    assert torch.allclose(learned.seen_noise, classical.seen_noise, atol=1e-5)


@pytest.mark.parametrize("call,name", [
    (lambda: cp.codebook(8, 8), "M"),
    (lambda: cp.codebook(2, 8), "M"),
    (lambda: cp.codebook(16, 7), "N"),
    (lambda: cp.assignment(64, 8), "N"),
    (lambda: cp.precode(torch.ones(2, 8, dtype=torch.complex64), 0.1, "zf", 16), "scheme"),
    (lambda: cp.precode(torch.ones(2, 8, dtype=torch.complex64), 0.0, "mmse", 16), "n0"),
    (lambda: cp.precode(torch.ones(2, 8), 0.1, "mmse", 16), "h"),
    (lambda: cp.block_errors(subchannels.SubchannelChannel(8), 8.0, "none", M=16, channels=0, block=1), "channels"),
    (lambda: cp.block_errors(subchannels.SubchannelChannel(7), 8.0, "none", M=16, channels=1, block=1), "N"),
])
def test_bad_parameters_raise_naming_them(call, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()
