"""ofdm_subchannel_fading: OFDM samples through block-fading multipath whose response repeats every N carriers.

The subchannel families of subchannel_fading carried by an OFDM signal:
taps g_t of the family at delays t * fft_len / N samples, so carrier k
sees subchannel (k mod N)'s gain (core.ofdm_subchannels), drawn again every
`coherence` samples, plus CN(0, N0) noise per sample.
"""
import numpy as np
from gnuradio import gr

from .block_common import MAX_M, ChunkedDraws, checked_setting, keep_alive
from .core import mpa, ofdm_subchannels, subchannels, validate

HISTORY = 10000  # realisations history() keeps (the filter's own record)


class ofdm_subchannel_fading(gr.sync_block):
    """A block-fading multipath channel for OFDM samples; the gains of carrier k are subchannel k mod N's.

    y[s] = sum_t g_t x[s - t S] + w[s], S = fft_len / N, with the taps g of
    realisation r = s // coherence (core.ofdm_subchannels.realisation_taps:
    the gains taps_gains(g, N) are exactly subchannel_fading's
    realisation_gains for the same seed, r, N and family) and w ~ CN(0, N0)
    per sample, N0 = core.mpa.noise_density(ebn0_db, M, N). ofdm_e2e_tx
    scales its output so that noise of N0 per sample is N0 per resource
    element: per data carrier Es/N0 is that of the link at Eb/N0 =
    ebn0_db, R = log2(M) / N.

    Choose coherence as a whole number of frames (frames_per_realisation *
    the frame's period in samples, gap included) so that each realisation
    starts at a frame's first sample. Echoes reach t S samples late: keep
    the family's strong taps inside the cyclic prefix ('train' has 99.98 %
    of its power in t <= 3, 'flat' t = 0, 'deep_fade' t = 0 and N/2).

    Parameters
    ----------
    N : int >= 1, subchannels (message length; fft_len must be a multiple).
    fft_len : int, the OFDM FFT size.
    family : str, one of core.subchannels.FAMILIES.
    coherence : int >= 1, samples per realisation.
    ebn0_db : float, Eb/N0 in dB (settable while running, set_ebn0_db).
    M : int in [2, 256], messages of the link (with N it sets the rate).
    seed : int >= 0; realisation r's taps and sample chunk c's noise depend
        on (seed, r) and (seed, c) alone: two blocks with the same seed apply
        the same channel.
    noise : bool, add the noise (False: the multipath only).

    Ports
    -----
    in 0 : complex64 stream, OFDM samples.
    out 0 : complex64 stream, one item per input; tags stay on their items.
    """

    def __init__(self, N, fft_len, family="train", coherence=100000, ebn0_db=8.0, M=16, seed=0, noise=True):
        self.N = validate.integer("N", N, 1)
        self.fft_len = validate.integer("fft_len", fft_len, 8)
        self.spacing = ofdm_subchannels.tap_spacing(self.N, self.fft_len)
        self.family = validate.choice("family", family, subchannels.FAMILIES)
        powers = subchannels.family_powers(self.family, self.N)  # deep_fade needs N >= 2: ValueError naming N
        self.coherence = validate.integer("coherence", coherence, 1)
        self.M = validate.integer("M", M, 2, MAX_M)
        self._set_noise(validate.db("ebn0_db", ebn0_db))
        self.seed = validate.integer("seed", seed, 0)
        self.noise = validate.boolean("noise", noise)
        gr.sync_block.__init__(self, name="ofdm_subchannel_fading", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._filter = ofdm_subchannels.BlockFadingFilter(
            self.spacing, self.coherence, len(powers),
            lambda r: ofdm_subchannels.realisation_taps(self.seed, r, self.N, self.family))
        self._noise = ChunkedDraws(lambda c: ofdm_subchannels.unit_noise(self.seed, c), ofdm_subchannels.CHUNK_SAMPLES)

    def _set_noise(self, ebn0_db):
        self._ebn0_db, self._n0 = ebn0_db, mpa.noise_density(ebn0_db, self.M, self.N)

    def work(self, input_items, output_items):
        x, out = input_items[0], output_items[0]
        k = len(out)
        start = self.nitems_written(0)
        y = self._filter(x[:k], start)
        if self.noise and k:
            y += np.sqrt(self._n0) * self._noise.rows(start, k)  # CN(0, 1) per sample
        out[:k] = y
        return k

    def set_ebn0_db(self, ebn0_db):
        """New Eb/N0 in dB from the next work() call on (GRC callback); False (logged) if refused."""
        ebn0_db = checked_setting(self, "ebn0_db", ebn0_db, validate.db, f"{self._ebn0_db:g} dB")
        if ebn0_db is None:
            return False
        self._set_noise(ebn0_db)
        return True

    def ebn0_db(self):
        return self._ebn0_db

    def n0(self):
        """Noise density per sample (= per resource element)."""
        return self._n0

    def realisations(self):
        """Realisations started so far."""
        return self._filter.started

    def history(self):
        """[(realisation index, gains complex64 [N])] of the last HISTORY realisations started, oldest first."""
        return [(r, ofdm_subchannels.taps_gains(g, self.N).astype(np.complex64))
                for r, g in list(self._filter.realisations)[-HISTORY:]]
