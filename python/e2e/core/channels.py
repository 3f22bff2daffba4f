"""Channels: one interface, used by every trainer and by the evaluator.

    y = channel(x, n0, generator)

x:         complex tensor [batch, n], transmitted symbols (Es = 1 per use).
n0:        noise density N0, a float or a real tensor broadcastable to
           [batch, 1] (one N0 per example when training over an Eb/N0 range).
generator: torch.Generator for every random draw, or None (global RNG).
y:         complex tensor [batch, n], what the receiver sees.

The interface is Sionna's AWGN()((x, no)) with the randomness made explicit.
Channels are torch modules and differentiable where their maths is (AWGN,
fading, phase), so model-aware training backpropagates through them; a
learned channel (a GAN generator) or an attack implements the same call.

Real mode needs no special case: a real-mode transmitter sends zero
imaginary parts and a real-mode receiver reads only real parts, so complex
noise CN(0, N0) leaves exactly N0/2 on the part that is read. A channel that
rotates signal into the imaginary part (fading, phase) breaks real mode:
such channels set preserves_real = False and users refuse that pairing
(check_mode).
"""
import math

import numpy as np
import torch
from torch import nn

from . import snr, validate
from .models import complex_to_real, real_to_complex


class Channel(nn.Module):
    """Base class: forward(x, n0, generator=None) -> y, complex [batch, n] both.

    preserves_real: True if a real input (zero imaginary parts) keeps every
    bit of its signal on the real part, so the channel may carry a real-mode
    link.
    """

    preserves_real = False

    def forward(self, x, n0, generator=None):
        raise NotImplementedError


def check_mode(channel, mode):
    """Refuse a real-mode link on a channel that rotates signal into the imaginary part."""
    validate.mode(mode)
    if mode == "real" and not getattr(channel, "preserves_real", False):
        raise ValueError(f"mode must be 'complex' for the {type(channel).__name__} channel: it rotates "
                         "signal into the imaginary part, which a real-mode receiver never reads")
    return channel


def complex_noise(shape, n0, generator=None, device="cpu", dtype=torch.complex64):
    """CN(0, N0) samples: variance N0/2 on each real dimension.

    torch.randn with a complex dtype draws CN(0, 1) (variance 1/2 per part).
    """
    w = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    n0 = torch.as_tensor(n0, device=device, dtype=w.real.dtype)
    return w * torch.sqrt(n0)


class AWGN(Channel):
    """y = x + w, w ~ CN(0, N0) per channel use."""

    preserves_real = True

    def forward(self, x, n0, generator=None):
        return x + complex_noise(x.shape, n0, generator, x.device, x.dtype)


class RayleighBlockFading(Channel):
    """y = h x + w with one h ~ CN(0, 1) per message (block), w ~ CN(0, N0).

    E|h|^2 = 1: the average received Es stays 1, so Eb/N0 keeps its meaning
    as an average over fades. The receiver is not told h.
    """

    def forward(self, x, n0, generator=None):
        h = torch.randn((x.shape[0], 1), generator=generator, device=x.device, dtype=x.dtype)
        return h * x + complex_noise(x.shape, n0, generator, x.device, x.dtype)


class PhaseOffset(Channel):
    """y = x exp(j phi): a carrier phase offset, noiseless (chain it with AWGN).

    phase_rad: a fixed phase, or None for a uniform phase in [0, 2 pi) per message.
    """

    def __init__(self, phase_rad=None):
        super().__init__()
        self.phase_rad = None if phase_rad is None else validate.real("phase_rad", phase_rad)

    def forward(self, x, n0=0.0, generator=None):
        real_dtype = x.real.dtype
        if self.phase_rad is None:
            phi = 2 * math.pi * torch.rand((x.shape[0], 1), generator=generator, device=x.device, dtype=real_dtype)
        else:
            phi = torch.full((x.shape[0], 1), self.phase_rad, device=x.device, dtype=real_dtype)
        return x * torch.polar(torch.ones_like(phi), phi)


class Chain(Channel):
    """Channels applied in order, each with the same n0 and generator: Chain(PhaseOffset(), AWGN())."""

    def __init__(self, *stages):
        super().__init__()
        if not stages:
            raise ValueError("Chain needs at least one channel")
        self.stages = nn.ModuleList(stages)
        self.preserves_real = all(getattr(s, "preserves_real", False) for s in stages)

    def forward(self, x, n0, generator=None):
        for stage in self.stages:
            x = stage(x, n0, generator)
        return x


class FunctionChannel(Channel):
    """A black box fn(x) -> y on complex NumPy arrays [batch, n], as a channel.

    For model-free training, which never differentiates the channel: a
    recorded channel, an external simulator, a radio. It adds its own noise,
    so n0 and generator are not used. Not differentiable.
    """

    def __init__(self, fn, preserves_real=False):
        super().__init__()
        self.fn = fn
        self.preserves_real = bool(preserves_real)

    def forward(self, x, n0=None, generator=None):
        y = np.asarray(self.fn(x.detach().cpu().numpy()))
        if y.shape != tuple(x.shape):
            raise ValueError(f"the channel function returned shape {y.shape}, expected {tuple(x.shape)}")
        return torch.from_numpy(y.astype(np.complex64 if x.dtype == torch.complex64 else np.complex128))


# The channels the command line and the evaluator know by name.
_BY_NAME = {
    "awgn": AWGN,
    "rayleigh": RayleighBlockFading,
    "phase": lambda: Chain(PhaseOffset(), AWGN()),
}
NAMES = tuple(_BY_NAME)


def by_name(name):
    """A fresh channel: 'awgn', 'rayleigh' (block fading), 'phase' (random phase per message, then AWGN)."""
    return _BY_NAME[validate.choice("channel", name, NAMES)]()


class NoiseLevel:
    """N0 per example from an Eb/N0 in dB, or from a (lo, hi) range drawn uniformly in dB.

    Drawing Eb/N0 per example trains a receiver that holds up across the range.
    N0 = 1 / (R Eb/N0) with R = log2(M) / n (DESIGN.md).
    """

    def __init__(self, ebn0_db, M, n):
        self.M, self.n = validate.sizes(M, n)
        self.ebn0_db = validate.db_or_range("ebn0_db", ebn0_db)

    def sample(self, batch, generator=None, device="cpu"):
        """N0: real float32 tensor [batch, 1]."""
        if isinstance(self.ebn0_db, tuple):
            lo, hi = self.ebn0_db
            ebn0 = lo + (hi - lo) * torch.rand((batch, 1), generator=generator, device=device)
        else:
            ebn0 = torch.full((batch, 1), self.ebn0_db, device=device)
        return 1.0 / (snr.rate(self.M, self.n) * 10.0 ** (ebn0 / 10.0))


def through(channel, x, n0, generator=None):
    """Pass a model's real [batch, 2n] symbols through a channel; real [batch, 2n] back.

    The glue between the networks' real layout (DESIGN.md: real parts, then
    imaginary parts) and the channel interface's complex tensors.
    """
    return complex_to_real(channel(real_to_complex(x), n0, generator))
