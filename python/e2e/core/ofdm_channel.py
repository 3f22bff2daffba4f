"""The simulated OFDM link as its messages see it: a channel for model-aware training and evaluation.

Between ofdm_e2e_tx and ofdm_e2e_rx a multipath channel is, per data
carrier, one complex gain H[k] (the channel's frequency response at that
carrier: the cyclic prefix is longer than the response, and the receiver's
synchronisation absorbs the bulk delay and the frequency offset). With
mapping='subcarrier' all n symbols of a message sit on one carrier, so the
link is block fading whose gains are the carriers' responses, not Rayleigh
draws; with 'symbol' a message's n symbols see n neighbouring carriers.

What the receiver hands the decoder:

  equalizer='tracking'  y = (H x + w) / (H + e): the sync symbol's estimate
                        smoothed to a response inside the cyclic prefix
                        (core.ofdm.ChannelSmoother) keeps a fraction p_k of
                        its noise, e ~ CN(0, p_k N0) (p_k the projection's
                        diagonal, about len(delays) / active carriers); the
                        pilots take out the frequency offset's phase drift.
  equalizer='one-tap'   the same with the raw estimate, e ~ CN(0, N0):
                        ofdm_chanest_vcvc estimates H from one known sync
                        symbol (the phase drift, which GNU Radio's static
                        equaliser leaves, is not modelled).
  equalizer='none'      y = exp(j phi) H x + w: the raw carrier, with the
                        phase the frequency correction leaves at the start of
                        each frame (uniform, one per message here).

Es = 1 per resource element and the transmitter's unit-energy taps keep
E|H|^2 = 1 over the FFT band (Parseval), so N0 has the flowgraph's meaning:
the bench checks this channel's BLER against the flowgraph's.
"""
import math

import numpy as np
import torch

from . import validate
from .channels import Channel, complex_noise
from .ofdm import ChannelSmoother, OfdmLayout, response_delays

EQUALIZERS = ("tracking", "one-tap", "none")


def carrier_gains(layout, taps):
    """The channel's gain on each message's resource elements: complex128 [messages_per_frame, n].

    taps: complex FIR taps of the channel (core.ofdm.multipath_taps), at the
    sample rate, shorter than the cyclic prefix.
    """
    if not isinstance(layout, OfdmLayout):
        raise TypeError(f"layout must be an OfdmLayout, got {type(layout).__name__}")
    taps = np.asarray(taps, dtype=np.complex128).reshape(-1)
    if taps.size == 0 or taps.size > layout.fft_len:
        raise ValueError(f"taps must have 1 to fft_len={layout.fft_len} entries, got {taps.size}")
    response = np.fft.fft(taps, layout.fft_len)
    return response[np.asarray(layout.carrier_of_message()) % layout.fft_len]


class OfdmCarrierChannel(Channel):
    """Each message through a random message slot of the OFDM frame: forward(x [B, n], n0) -> y [B, n].

    layout: core.ofdm.OfdmLayout of the link (its n is the message length).
    taps: the multipath channel's FIR taps (core.ofdm.multipath_taps).
    equalizer: 'tracking', 'one-tap' or 'none', as ofdm_e2e_rx's.
    timing_offset: ofdm_e2e_rx's (None: cp_len // 4), for 'tracking'.
    Each example draws its slot (which carrier(s) it rides on) uniformly
    from the frame's messages_per_frame slots, from `generator`.
    """

    def __init__(self, layout, taps, equalizer="tracking", timing_offset=None):
        super().__init__()
        validate.choice("equalizer", equalizer, EQUALIZERS)
        gains = carrier_gains(layout, taps)
        carriers = np.asarray(layout.carrier_of_message())
        estimate_noise = np.ones(carriers.shape)
        if equalizer == "tracking":
            active = list(layout.data_carriers + layout.pilot_carriers)
            offset = layout.cp_len // 4 if timing_offset is None else timing_offset
            smoother = ChannelSmoother(layout.fft_len, active, response_delays(layout.cp_len, offset))
            kept = dict(zip(active, np.real(np.diag(smoother.projection))))
            estimate_noise = np.vectorize(kept.get)(carriers).astype(np.float64)
        self.register_buffer("estimate_noise", torch.from_numpy(estimate_noise.astype(np.float32)))
        self.equalizer = equalizer
        self.register_buffer("gains", torch.from_numpy(gains.astype(np.complex64)))
        # One estimate per carrier and frame: under 'subcarrier' a message's n symbols share it.
        self.register_buffer("one_carrier", torch.from_numpy((carriers == carriers[:, :1]).all(axis=1)))

    def forward(self, x, n0, generator=None):
        if x.dim() != 2 or x.shape[1] != self.gains.shape[1]:
            raise ValueError(f"x must have shape [batch, {self.gains.shape[1]}], got {tuple(x.shape)}")
        slot = torch.randint(0, self.gains.shape[0], (x.shape[0],), generator=generator, device=x.device)
        h = self.gains.to(x.device, x.dtype)[slot]
        y = h * x + complex_noise(x.shape, n0, generator, x.device, x.dtype)
        if self.equalizer != "none":
            e = complex_noise(x.shape, n0, generator, x.device, x.dtype) * self.estimate_noise[slot].sqrt()
            e = torch.where(self.one_carrier.to(x.device)[slot, None], e[:, :1].expand_as(e), e)
            return y / (h + e)
        phi = 2 * math.pi * torch.rand((x.shape[0], 1), generator=generator, device=x.device, dtype=x.real.dtype)
        return torch.polar(torch.ones_like(phi), phi).to(x.dtype) * y
