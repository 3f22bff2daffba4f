"""Differentiable channel models (torch) and their NumPy twins.

Torch modules act on real tensors [batch, 2n] (real parts, then imaginary
parts) so gradients flow through them in model-aware training. The NumPy
functions act on complex arrays [batch, n] for evaluation and GNU Radio code.
Noise follows DESIGN.md: N0 = 1 / (R * Eb/N0), N0/2 per real dimension; in
real mode only the real half gets noise (the imaginary half carries nothing
and receivers ignore it).
"""
import numpy as np
import torch
from torch import nn

from . import snr


def _ebn0_tensor(ebn0_db, batch, generator, device):
    """Eb/N0 in dB as a [batch, 1] tensor: fixed, or uniform per example in (lo, hi)."""
    if isinstance(ebn0_db, (tuple, list)):
        if len(ebn0_db) != 2:
            raise ValueError(f"ebn0_db must be a number or a (lo, hi) pair in dB, got {ebn0_db!r}")
        lo, hi = (snr.validate_db("ebn0_db", v) for v in ebn0_db)
        if lo > hi:
            raise ValueError(f"ebn0_db range must have lo <= hi, got {ebn0_db!r}")
        u = torch.rand(batch, 1, generator=generator, device=device)
        return lo + (hi - lo) * u
    return torch.full((batch, 1), snr.validate_db("ebn0_db", ebn0_db), device=device)


def awgn(x, n0, mode, generator=None):
    """y = x + noise, noise N(0, n0/2) per real dimension.

    x:  real [batch, 2n]
    n0: float or tensor broadcastable to [batch, 1]
    """
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    noise = noise * torch.sqrt(torch.as_tensor(n0, dtype=x.dtype, device=x.device) / 2)
    if mode == "real":
        noise[:, x.shape[1] // 2:] = 0
    return x + noise


class AWGN(nn.Module):
    """Additive white Gaussian noise at a given Eb/N0 (or a range of them).

    ebn0_db: float, or (lo, hi) to draw Eb/N0 uniformly in dB per example,
    which trains a decoder that holds up across a range of noise levels.
    Input/output: real [batch, 2n].
    """

    def __init__(self, ebn0_db, M, n, mode="complex", generator=None):
        super().__init__()
        snr.validate_M_n(M, n)
        self.ebn0_db, self.M, self.n = ebn0_db, M, n
        self.mode = snr.validate_mode(mode)
        self.generator = generator
        _ebn0_tensor(ebn0_db, 1, None, "cpu")  # validates now, not at the first batch

    def n0(self, batch, device="cpu"):
        ebn0 = _ebn0_tensor(self.ebn0_db, batch, self.generator, device)
        return 1.0 / (snr.rate(self.M, self.n) * 10.0 ** (ebn0 / 10.0))

    def forward(self, x):
        return awgn(x, self.n0(x.shape[0], x.device), self.mode, self.generator)


class RayleighBlockFading(nn.Module):
    """y = h x + noise, one h ~ CN(0, 1) per message (complex mode only).

    Average received Es stays 1, so Eb/N0 keeps its meaning as an average.
    Input/output: real [batch, 2n].
    """

    def __init__(self, ebn0_db, M, n, mode="complex", generator=None):
        super().__init__()
        if mode != "complex":
            raise ValueError("mode must be 'complex' for RayleighBlockFading (fading rotates into the imaginary part)")
        self.awgn = AWGN(ebn0_db, M, n, mode, generator)
        self.generator = generator

    def forward(self, x):
        b, two_n = x.shape
        n = two_n // 2
        h = torch.randn(b, 2, generator=self.generator, device=x.device, dtype=x.dtype) * (0.5 ** 0.5)
        hr, hi = h[:, :1], h[:, 1:]
        xr, xi = x[:, :n], x[:, n:]
        faded = torch.cat([hr * xr - hi * xi, hr * xi + hi * xr], dim=1)
        return self.awgn(faded)


class PhaseOffset(nn.Module):
    """Carrier phase offset: y = x * exp(j phi).

    phase_rad: a fixed phase, or None for a uniform phase in [0, 2 pi) drawn
    per message. Compose with AWGN via nn.Sequential(PhaseOffset(...), AWGN(...)).
    """

    def __init__(self, phase_rad=None, generator=None):
        super().__init__()
        self.phase_rad = phase_rad
        self.generator = generator

    def forward(self, x):
        b, two_n = x.shape
        n = two_n // 2
        if self.phase_rad is None:
            phi = 2 * np.pi * torch.rand(b, 1, generator=self.generator, device=x.device, dtype=x.dtype)
        else:
            phi = torch.full((b, 1), float(self.phase_rad), device=x.device, dtype=x.dtype)
        c, s = torch.cos(phi), torch.sin(phi)
        xr, xi = x[:, :n], x[:, n:]
        return torch.cat([c * xr - s * xi, s * xr + c * xi], dim=1)


# --- NumPy twins on complex arrays [batch, n] ---------------------------------

def awgn_np(x, n0, mode, rng):
    """complex [batch, n] -> complex [batch, n] with N(0, n0/2) per real dimension."""
    scale = np.sqrt(n0 / 2.0)
    noise = rng.standard_normal(x.shape) * scale
    if mode == "complex":
        noise = noise + 1j * (rng.standard_normal(x.shape) * scale)
    return x + noise


def rayleigh_block_fading_np(x, rng):
    """complex [batch, n] -> (h x, h) with h complex [batch, 1] ~ CN(0, 1)."""
    h = (rng.standard_normal((x.shape[0], 1)) + 1j * rng.standard_normal((x.shape[0], 1))) * np.sqrt(0.5)
    return h * x, h


def phase_offset_np(x, phase_rad):
    """complex [batch, n] rotated by phase_rad (scalar or [batch, 1])."""
    return x * np.exp(1j * np.asarray(phase_rad))
