"""N parallel subchannels with frequency-selective gains: the subcarriers of one OFDM symbol.

    y_i = h_i x_i + w_i,   i = 0 .. N-1,   w_i ~ CN(0, N0)

A message's N complex symbols ride on N adjacent subcarriers of an N-point
FFT. The channel is a tapped delay line of `taps` sample-spaced taps
g_t ~ CN(0, p_t) with power delay profile p (sum p = 1); its frequency
response at subcarrier i is

    h_i = sum_t g_t exp(-j 2 pi i t / N),

so E|h_i|^2 = sum p_t = 1 (unit average power: Eb/N0 keeps its meaning as
an average over fades) and the correlation between subcarriers i and i + d,

    E[h_i conj(h_{i+d})] = sum_t p_t exp(j 2 pi d t / N),

falls as the delay spread grows: a short profile gives nearly flat gains,
a long one independent gains per subcarrier.

Families (family_powers): 'train' (the family a link is trained on),
'flat' (one tap: Rayleigh block fading, equal gain on every subcarrier),
'selective' (a long exponential profile), 'deep_fade' (two equal paths half
an FFT apart: even subcarriers see g_0 + g_1, odd ones g_0 - g_1, so half
the band fades together whenever the paths cancel).

The channel hands its gains to whoever needs genie CSI: draw_gains() draws
them and forward(x, n0, generator, h=h) uses given ones; forward without h
draws its own and keeps them in `last_gains`.
"""
import math

import numpy as np
import torch

from . import validate
from .channels import Channel, complex_noise

# Exponential decay constants (in samples) of the exponential families.
TRAIN_DECAY = 0.5
SELECTIVE_DECAY = 4.0
FAMILIES = ("train", "flat", "selective", "deep_fade")


def exponential_powers(decay, taps):
    """Power delay profile p_t proportional to exp(-t / decay), t = 0 .. taps-1, summing to 1: float64 [taps].

    decay: the decay constant in samples (> 0); the rms delay spread grows with it.
    """
    decay = validate.real("decay", decay, 0, low_open=True)
    taps = validate.integer("taps", taps, 1)
    p = np.exp(-np.arange(taps) / decay)
    return p / p.sum()


def family_powers(family, N):
    """The power delay profile of a named family for N subcarriers: float64 [taps], taps <= N, sum 1."""
    validate.choice("family", family, FAMILIES)
    N = validate.integer("N", N, 1)
    if family == "train":
        return exponential_powers(TRAIN_DECAY, N)
    if family == "selective":
        return exponential_powers(SELECTIVE_DECAY, N)
    if family == "flat":
        return np.ones(1)
    if N < 2:
        raise ValueError(f"N must be >= 2 for the deep_fade family, got {N!r}")
    p = np.zeros(N // 2 + 1)
    p[0] = p[N // 2] = 0.5
    return p


def rms_delay_spread(powers):
    """rms delay spread of a power delay profile, in samples (float)."""
    p = np.asarray(powers, dtype=np.float64)
    t = np.arange(p.size)
    mean = float((p * t).sum())
    return math.sqrt(max(0.0, float((p * t * t).sum()) - mean * mean))


def subcarrier_correlation(powers, N, d):
    """E[h_i conj(h_{i+d})] of the gains for this profile (complex), the exact value the draws follow."""
    p = np.asarray(powers, dtype=np.float64)
    return complex((p * np.exp(2j * np.pi * d * np.arange(p.size) / N)).sum())


class SubchannelChannel(Channel):
    """N parallel subchannels, y = h * x + w, with tapped-delay-line gains: forward(x [B, N], n0) -> y [B, N].

    N:      subcarriers (the message length n of the link).
    family: a name in FAMILIES, or a power delay profile (1-D, non-negative,
            at most N taps; normalised here to sum 1).
    block:  consecutive messages sharing one gain realisation (1: one per message).
    """

    def __init__(self, N, family="train", block=1):
        super().__init__()
        self.N = validate.integer("N", N, 1)
        self.block = validate.integer("block", block, 1)
        if isinstance(family, str):
            self.family = family
            powers = family_powers(family, self.N)
        else:
            self.family = "custom"
            powers = np.asarray(family, dtype=np.float64).reshape(-1)
            if powers.size < 1 or powers.size > self.N or (powers < 0).any() or powers.sum() <= 0 \
                    or not np.isfinite(powers).all():
                raise ValueError(f"family must name one of {FAMILIES} or be 1 to N={self.N} non-negative "
                                 f"tap powers, got {family!r}")
            powers = powers / powers.sum()
        self.register_buffer("powers", torch.from_numpy(powers.astype(np.float64)))
        # DFT of the taps: h = g @ dft, dft[t, i] = exp(-j 2 pi i t / N).
        t = np.arange(powers.size)[:, None]
        i = np.arange(self.N)[None, :]
        self.register_buffer("dft", torch.from_numpy(np.exp(-2j * np.pi * i * t / self.N).astype(np.complex128)))
        self.last_gains = None

    def draw_gains(self, batch, generator=None, device="cpu", dtype=torch.complex64):
        """Gains of `batch` messages: complex [batch, N]; messages k*block .. (k+1)*block-1 share one row.

        generator: torch.Generator for the tap draws (None: global RNG).
        """
        batch = validate.integer("batch", batch, 0)
        draws = -(-batch // self.block)
        g = torch.randn((draws, self.powers.numel()), generator=generator, dtype=torch.complex128)
        h = (g * self.powers.sqrt()) @ self.dft
        h = h.repeat_interleave(self.block, dim=0)[:batch]
        return h.to(device=device, dtype=dtype)

    def forward(self, x, n0, generator=None, h=None):
        """x: complex [B, N]; n0: float or real tensor broadcastable to [B, 1]; h: complex [B, N] or None.

        Returns y = h * x + w, complex [B, N]. Without h the gains are drawn
        (before the noise, from `generator`) and kept in self.last_gains.
        """
        if x.dim() != 2 or x.shape[1] != self.N:
            raise ValueError(f"x must have shape [batch, {self.N}], got {tuple(x.shape)}")
        if h is None:
            h = self.draw_gains(x.shape[0], generator, x.device, x.dtype)
        elif tuple(h.shape) != tuple(x.shape):
            raise ValueError(f"h must have the shape of x {tuple(x.shape)}, got {tuple(h.shape)}")
        self.last_gains = h
        return h.to(x.dtype) * x + complex_noise(x.shape, n0, generator, x.device, x.dtype)
