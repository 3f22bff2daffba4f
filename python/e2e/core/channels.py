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


# Input back-offs a power amplifier accepts, in dB.
BACKOFF_RANGE_DB = (-20.0, 40.0)


def _backoff_scale(input_backoff_db, saturation_power):
    """g with g^2 E|x|^2 = saturation_power 10^(-IBO/10) for Es = E|x|^2 = 1."""
    return math.sqrt(saturation_power * 10.0 ** (-input_backoff_db / 10.0))


def _squared_magnitude(x):
    # |x|^2 as re^2 + im^2: smooth at x = 0, where |x| has no derivative.
    return x.real * x.real + x.imag * x.imag


class SalehPA(Channel):
    """Saleh's travelling-wave-tube power amplifier, per symbol, noiseless (chain it with AWGN).

    The input is scaled by g (input back-off), then amplified as

        r = g |x|,  A(r) = alpha_a r / (1 + beta_a r^2)         (AM/AM)
                  Phi(r) = alpha_p r^2 / (1 + beta_p r^2)        (AM/PM, radians)
        y = A(r) exp(j (arg x + Phi(r)))
          = x g alpha_a / (1 + beta_a r^2) exp(j Phi(r))         (as computed:
                                                                  smooth at x = 0)

    A(r) peaks at the input saturation amplitude r_sat = 1/sqrt(beta_a), with
    output A_sat = alpha_a / (2 sqrt(beta_a)) (1 with the defaults), and folds
    back beyond it. input_backoff_db (IBO) sets g so that the mean input
    power E r^2 = g^2 Es (Es = 1) lies IBO dB below r_sat^2.

    DEFAULT_BACKOFF_DB = 3 dB: an average symbol (r^2 = 0.5) is compressed
    by 3.5 dB from the small-signal gain and turned by 20 deg, a symbol of
    three times the average power (r^2 = 1.5) is at saturation and turned by
    36 deg: the large symbols of an M=16, n=7 code are squeezed and rotated
    against the small ones, which no linear receiver undoes. (An AWGN-trained
    M=16, n=7 link, whose symbol powers span 0.001 to 4, goes from BLER 0.03
    at Eb/N0 = 3 dB on AWGN to 0.23 through this PA and AWGN, and to 0.49 on
    'pa', which adds a pi/8 phase offset.)

    Output power is not renormalised: y is what the PA gives, |y| <= A_sat.
    With the defaults E|y|^2 is 0.67, for i.i.d. CN(0, 1) input symbols as
    for the codewords of that link. Eb/N0 keeps its definition on the PA
    input (Es = 1), so the power the PA loses shows up as a loss of
    effective SNR, as it would on a radio.
    Differentiable (torch operations throughout).
    """

    DEFAULT_BACKOFF_DB = 3.0

    def __init__(self, alpha_a=2.0, beta_a=1.0, alpha_p=math.pi / 3, beta_p=1.0, input_backoff_db=DEFAULT_BACKOFF_DB):
        super().__init__()
        self.alpha_a = validate.real("alpha_a", alpha_a, 0, low_open=True)
        self.beta_a = validate.real("beta_a", beta_a, 0, low_open=True)
        self.alpha_p = validate.real("alpha_p", alpha_p)
        self.beta_p = validate.real("beta_p", beta_p, 0)
        self.input_backoff_db = validate.real("input_backoff_db", input_backoff_db, *BACKOFF_RANGE_DB)
        self.gain = _backoff_scale(self.input_backoff_db, 1.0 / self.beta_a)

    def am_am(self, r):
        """Output amplitude A(r) for input amplitude r (tensor or float, after the back-off)."""
        return self.alpha_a * r / (1 + self.beta_a * r * r)

    def am_pm(self, r):
        """Phase shift Phi(r) in radians for input amplitude r (after the back-off)."""
        return self.alpha_p * r * r / (1 + self.beta_p * r * r)

    def forward(self, x, n0=None, generator=None):
        r2 = (self.gain * self.gain) * _squared_magnitude(x)
        gain = self.gain * self.alpha_a / (1 + self.beta_a * r2)
        phi = self.alpha_p * r2 / (1 + self.beta_p * r2)
        return x * torch.polar(gain, phi)


class RappPA(Channel):
    """Rapp's solid-state power amplifier, per symbol, noiseless: AM/AM only.

        r = g |x|,  A(r) = r / (1 + (r / saturation)^(2p))^(1/(2p)),  y = A(r) exp(j arg x)

    p = smoothness (>= 1, so y stays differentiable at x = 0; large p
    approaches a hard limiter). input_backoff_db sets g so that the mean
    input power g^2 Es (Es = 1) lies that many dB below saturation^2. Output
    power is not renormalised (|y| < saturation); no phase distortion.
    """

    def __init__(self, smoothness=2.0, saturation=1.0, input_backoff_db=SalehPA.DEFAULT_BACKOFF_DB):
        super().__init__()
        self.smoothness = validate.real("smoothness", smoothness, 1.0, 100.0)
        self.saturation = validate.real("saturation", saturation, 0, low_open=True)
        self.input_backoff_db = validate.real("input_backoff_db", input_backoff_db, *BACKOFF_RANGE_DB)
        self.gain = _backoff_scale(self.input_backoff_db, self.saturation ** 2)

    def am_am(self, r):
        """Output amplitude A(r) for input amplitude r (tensor or float, after the back-off)."""
        p = self.smoothness
        return r / (1 + (r / self.saturation) ** (2 * p)) ** (1 / (2 * p))

    def forward(self, x, n0=None, generator=None):
        p = self.smoothness
        r2 = (self.gain * self.gain) * _squared_magnitude(x)
        gain = self.gain / (1 + (r2 / self.saturation ** 2) ** p) ** (1 / (2 * p))
        return x * gain


# Carrier phase offset of the 'pa' channel: fixed, so a learned channel model can learn it.
PA_PHASE_RAD = math.pi / 8


def pa_channel():
    """Saleh PA (default back-off), then a fixed phase offset of PA_PHASE_RAD, then AWGN."""
    return Chain(SalehPA(), PhaseOffset(phase_rad=PA_PHASE_RAD), AWGN())


# The channels the command line and the evaluator know by name.
_BY_NAME = {
    "awgn": AWGN,
    "rayleigh": RayleighBlockFading,
    "phase": lambda: Chain(PhaseOffset(), AWGN()),
    "pa": pa_channel,
}
NAMES = tuple(_BY_NAME)


def by_name(name):
    """A fresh channel: 'awgn', 'rayleigh' (block fading), 'phase' (random phase per message, then AWGN),
    'pa' (Saleh power amplifier, fixed phase offset pi/8, then AWGN: pa_channel)."""
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
