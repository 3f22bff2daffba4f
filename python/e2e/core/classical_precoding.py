"""Classical CSI-aware precoding on N parallel subchannels: the baseline of the attention precoder.

The same link as core.mpa's: log2(M) bits per message on the N subchannels
of core.subchannels (y_i = h_i x_i + w_i, w_i ~ CN(0, N0)), genie CSI (h
known at the transmitter and the receiver), Es = 1 per channel use averaged
over a message's N uses, N0 = mpa.noise_density(Eb/N0, M, N).

Codebook (repetition of Gray QPSK). The log2(M) bits (M = 4^K) are cut into
K Gray QPSK symbols, and symbol k is repeated on the R = N / K subchannels
of its group (assignment()):

    K even:  i = j K + k        for the first ceil(R/2) copies j,
             i = j K + (k ^ 1)  for the others (k ^ 1: k with its last bit flipped),
    K odd:   i = j K + k        for every copy j = 0 .. R-1.

Copies of a symbol sit K subchannels apart, the widest even spacing of R
copies in the band, which is what the exponential families (correlation
falling with the subcarrier distance) need. With K even, plain stride-K
interleaving would put all copies on subcarriers of one parity, and the
'deep_fade' family fades even and odd subcarriers together (h_even =
g0 + g1, h_odd = g0 - g1): a symbol would get no diversity at all. Swapping
neighbours in the second half puts half of the copies on each parity,
keeping the spacing odd across the swap. (For M=16, N=8 this gives
{0, 2, 5, 7} and {1, 3, 4, 6}: among all splits of 8 subchannels into two
groups of 4 it ties for the lowest Chernoff bound on pairwise errors with
maximal-ratio combining at 10 dB, multiplied over the four families; for
M=256, N=8 likewise among all pairings.) With K odd, stride K alternates parity itself.

Precoders (per message, a function of h and N0 only, never of the message):
complex weights w [B, N], transmitted x_i = w_i c_i, so the receiver meets
the effective gains h_i w_i (effective_gains()). QPSK has constant modulus,
so sum |w_i c_i|^2 = sum |w_i|^2 = N for every codeword.

- 'none': w = 1, equal power everywhere (CSI at the receiver only).
- 'inversion': zero-forcing w_i proportional to 1 / h_i: every subchannel
  arrives with the same gain; deep fades eat the power.
- 'mmse': regularised inversion w_i proportional to conj(h_i) / (|h_i|^2 + N0).
- 'selection': each symbol only on the strongest subchannel of its group,
  powers across the K symbols set so that they arrive with equal SNR
  (channel inversion over the selected subchannels). With a symbol repeated
  on several subchannels and maximal-ratio combining, the received SNR
  sum_i |h_i w_i|^2 under a power budget is largest with all power on the
  best one; equal SNR across symbols minimises the worst symbol's error.
- 'waterfilling': capacity water-filling powers p_i = max(0, mu - N0/|h_i|^2)
  on the N subchannels, the repetition codebook on top. It maximises the
  capacity of the parallel channel, not this code's error rate (a symbol
  whose whole group falls under the water line is lost).

Receiver: exact maximum-likelihood detection over the M codewords with the
effective channel known, argmin_m ||y - h w c_m||^2, vectorised as a [B, M]
score matrix (detect()).

block_errors() draws channels, messages and noise exactly as
core.mpa.block_errors does, so the classical schemes meet the same channels,
messages and noise as the learned links. Pure torch/numpy.
"""
import math

import numpy as np
import torch

from . import prng, validate
from .mpa import noise_density

PRECODERS = ("none", "inversion", "mmse", "selection", "waterfilling")

# Gray QPSK indexed by the symbol's two bits, MSB first (as core.baselines): first bit the sign of I.
_QPSK = np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / math.sqrt(2.0)


def symbols_per_message(M):
    """K = log2(M) / 2 QPSK symbols per message (int); M must be 4^K with K >= 1."""
    M = validate.integer("M", M, 4)
    K = (M.bit_length() - 1) // 2
    if M != 4 ** K:
        raise ValueError(f"M must be a power of 4 (4, 16, 64, ...) to carry whole QPSK symbols, got {M!r}")
    return K


def _check_sizes(M, N):
    K = symbols_per_message(M)
    N = validate.integer("N", N, 1)
    if N % K:
        raise ValueError(f"N must be a multiple of the {K} QPSK symbols per message (M={M}), got {N!r}")
    return K, N


def assignment(M, N):
    """The subchannels of each QPSK symbol: int64 [K, R], R = N / K; every subchannel used once.

    Row k lists the subchannels carrying symbol k (see the module docstring
    for the rule and why it serves both the exponential and 'deep_fade' families).
    """
    K, N = _check_sizes(M, N)
    R = N // K
    k = np.arange(K)[:, None]
    j = np.arange(R)[None, :]
    offset = np.where(j >= -(-R // 2), k ^ 1, k) if K % 2 == 0 else np.broadcast_to(k, (K, R))
    return torch.from_numpy((j * K + offset).astype(np.int64))


def _symbol_of(M, N):
    """int64 [N]: which QPSK symbol subchannel i carries."""
    groups = assignment(M, N)
    owner = torch.empty(N, dtype=torch.int64)
    owner[groups.reshape(-1)] = torch.arange(groups.shape[0]).repeat_interleave(groups.shape[1])
    return owner


def codebook(M, N, dtype=torch.complex64):
    """Unprecoded codewords: complex [M, N], |c_{m,i}| = 1 (energy N per codeword).

    Message m's bits (MSB first) are cut into K pairs; pair k picks the Gray
    QPSK point that symbol k's subchannels (assignment()) all carry.
    """
    K, N = _check_sizes(M, N)
    m = np.arange(M)[:, None]
    pairs = (m >> (2 * (K - 1 - np.arange(K)))[None, :]) & 3          # [M, K], first pair = top bits
    owner = _symbol_of(M, N).numpy()
    return torch.from_numpy(_QPSK[pairs[:, owner]]).to(dtype)


def _power_weights(h, power):
    """sqrt(power) with the scale that makes sum_i power_i = N per row: real [B, N]."""
    N = h.shape[-1]
    return torch.sqrt(power * (N / power.sum(dim=-1, keepdim=True)))


def _waterfill(gain, n0):
    """Water-filling powers p_i = max(0, mu - n0 / gain_i), sum p_i = N: real [B, N] from gain [B, N]."""
    N = gain.shape[-1]
    floor = n0 / gain                                                 # noise-to-gain levels
    level, _ = torch.sort(floor, dim=-1)
    count = torch.arange(1, N + 1, dtype=floor.dtype)
    mu = (N + torch.cumsum(level, dim=-1)) / count                    # water level if the c lowest are filled
    # Filling the c lowest levels is consistent when mu_c exceeds the c-th level; that holds for
    # c = 1 .. c*, and c* gives the water level.
    active = (mu > level).sum(dim=-1, keepdim=True).clamp(min=1)
    mu = torch.gather(mu, -1, active - 1)
    return (mu - floor).clamp(min=0.0)


def precode(h, n0, scheme, M):
    """Per-subchannel precoding weights for channel measurements h.

    Input
    -----
    h : complex [B, N], the subchannel gains (genie CSI)
    n0 : float, noise density N0 (> 0; used by 'mmse' and 'waterfilling')
    scheme : a name in PRECODERS
    M : int, messages (4^K), fixes the symbol groups of 'selection'

    Output
    ------
    complex [B, N] (dtype of h), weights w with sum_i |w_i|^2 = N for every
    row, so every precoded codeword w * c has block energy N.
    """
    validate.choice("scheme", scheme, PRECODERS)
    n0 = validate.real("n0", n0, 0, low_open=True)
    if not torch.is_tensor(h) or not h.is_complex() or h.dim() != 2:
        raise ValueError(f"h must be a complex tensor [batch, N], got {getattr(h, 'shape', h)!r}")
    _, N = _check_sizes(M, h.shape[1])
    hd = h.to(torch.complex128)
    gain = hd.real * hd.real + hd.imag * hd.imag                      # |h_i|^2, float64 [B, N]
    if scheme == "none":
        w = torch.ones_like(hd)
    elif scheme == "inversion":
        w = _power_weights(h, 1.0 / gain) * torch.sgn(hd).conj()
    elif scheme == "mmse":
        w = _power_weights(h, gain / (gain + n0) ** 2) * torch.sgn(hd).conj()
    elif scheme == "selection":
        groups = assignment(M, N)                                     # [K, R]
        best = torch.gather(groups.expand(h.shape[0], -1, -1), 2,
                            gain[:, groups].argmax(dim=2, keepdim=True)).squeeze(2)     # [B, K]
        power = torch.zeros_like(gain).scatter_(1, best, 1.0 / torch.gather(gain, 1, best))
        w = _power_weights(h, power) * torch.sgn(hd).conj()
    else:
        w = _power_weights(h, _waterfill(gain, n0)).to(hd.dtype)
    return w.to(h.dtype)


def effective_gains(h, w):
    """What the receiver meets, y = (h w) c + noise: complex [B, N] from h, w complex [B, N]."""
    return h * w.to(h.dtype)


def detect(y, h, w, codewords):
    """Maximum-likelihood detection with the effective channel known: argmin_m ||y - h w c_m||^2.

    ||y - g c||^2 = ||y||^2 - 2 Re(sum_i conj(c_i) conj(g_i) y_i) + sum_i |g_i|^2 |c_i|^2,
    with g = h w; ||y||^2 is the same for every c, so it is left out.

    Input
    -----
    y : complex [B, N], received symbols
    h : complex [B, N], subchannel gains
    w : complex [B, N], precoding weights (precode())
    codewords : complex [M, N], unprecoded codewords (codebook())

    Output
    ------
    int64 [B], the decided messages (ties to the lowest index).
    """
    g = effective_gains(h, w)
    c = codewords.to(g.dtype)
    correlation = ((g.conj() * y.to(g.dtype)) @ c.conj().T).real     # [B, M]
    energy = (g.abs() ** 2) @ (c.abs() ** 2).T                         # [B, M]
    return torch.argmin(energy - 2.0 * correlation, dim=1)


@torch.no_grad()
def block_errors(channel, ebn0_db, scheme, *, M, channels, block, seed=0):
    """Block errors of a precoding scheme over `channels` realisations of `block` messages each.

    channel: core.subchannels.SubchannelChannel (N = channel.N subchannels).
    Same draws as core.mpa.block_errors: gains, then the noise, from stream
    (seed, EVAL, MPA) (torch), messages from numpy stream (seed, EVAL, MPA),
    transmitted in complex64 as the learned links are; a link evaluated with
    the same seed meets the same channels, messages and noise.
    Returns (errors, blocks) as ints.
    """
    validate.choice("scheme", scheme, PRECODERS)
    validate.integer("channels", channels, 1)
    validate.integer("block", block, 1)
    _check_sizes(M, channel.N)
    n0 = noise_density(ebn0_db, M, channel.N)
    gen = prng.torch_generator(seed, prng.EVAL, prng.MPA)
    h = channel.draw_gains(channels, gen)
    w = precode(h, n0, scheme, M)
    m = torch.from_numpy(prng.numpy_rng(seed, prng.EVAL, prng.MPA).integers(0, M, channels * block))
    hb, wb = h.repeat_interleave(block, dim=0), w.repeat_interleave(block, dim=0)
    words = codebook(M, channel.N, dtype=h.dtype)
    y = channel(wb * words[m], n0, gen, h=hb)
    return int((detect(y, hb, wb, words) != m).sum()), channels * block
