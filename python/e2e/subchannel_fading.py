"""subchannel_fading: N parallel subchannels with block-fading, frequency-selective gains (GNU Radio block).

y_i = h_i x_i + w_i per message of N symbols (core.subchannels), the gains
h held for `coherence` messages, then drawn again. Each new realisation is
announced as genie channel state: a `csi` stream tag on its first sample
(for csi_decoder) and a `csi` message (for mpa_precoder's feedback port).

What is drawn is a function of the seed and the position in the stream
alone, however the scheduler cuts it into buffers:
    gains of realisation r:   prng.torch_generator(seed, prng.MPA, GAINS_PATH, r)
    noise of message chunk c: prng.torch_generator(seed, prng.MPA, NOISE_PATH, c),
        one CN(0, 1) draw of [CHUNK_MESSAGES, N] per chunk, scaled by sqrt(N0),
so two blocks with the same seed (and family) apply the same channel.
"""
import collections
import threading

import numpy as np
import pmt
import torch
from gnuradio import gr

from .block_common import MAX_M, ChunkedDraws, checked_setting, keep_alive
from .core import mpa, prng, subchannels, validate
from .mpa_precoder import CSI_PORT, CSI_TAG, csi_pmt

GAINS_PATH = 0   # prng path under prng.MPA: the gains of each realisation
NOISE_PATH = 1   # prng path under prng.MPA: the noise of each chunk of messages
CHUNK_MESSAGES = 1024
HISTORY = 10000  # realisations history() keeps


def realisation_gains(seed, r, N, family):
    """Gains of realisation r: complex64 [N] (SubchannelChannel(N, family).draw_gains on its own stream)."""
    gen = prng.torch_generator(seed, prng.MPA, GAINS_PATH, r)
    return subchannels.SubchannelChannel(N, family).draw_gains(1, gen)[0].numpy()


def unit_noise(seed, c, N):
    """CN(0, 1) noise of message chunk c: complex64 [CHUNK_MESSAGES, N] (row i: message c*CHUNK_MESSAGES + i)."""
    gen = prng.torch_generator(seed, prng.MPA, NOISE_PATH, c)
    return torch.randn((CHUNK_MESSAGES, N), generator=gen, dtype=torch.complex64).numpy()


class subchannel_fading(gr.sync_block):
    """A frequency-selective block-fading channel over N subchannels, with genie CSI out.

    Message j (items j*N .. j*N+N-1) goes through y = h x + w with the gains
    h of realisation r = j // coherence and noise w ~ CN(0, N0) per symbol,
    N0 = core.mpa.noise_density(ebn0_db, M, N) = 1 / (R Eb/N0),
    R = log2(M) / N (Es = 1, E|h_i|^2 = 1).

    Parameters
    ----------
    N : int >= 1, subchannels = symbols per message (2 or more for deep_fade).
    family : str, one of core.subchannels.FAMILIES: 'train', 'flat',
        'selective', 'deep_fade' (the power delay profiles there). Settable
        while running (set_family): it applies from the next realisation.
    coherence : int >= 1, messages per gain realisation.
    ebn0_db : float, Eb/N0 in dB; settable while running (set_ebn0_db,
        from the next work() call).
    M : int in [2, 256], messages of the link (with N it sets the rate).
    seed : int >= 0. Realisation r's gains and message j's noise depend only
        on (seed, r) and (seed, j) (module docstring): two blocks with the
        same seed and family apply the same channel.
    noise : bool, add the noise (False: y = h x).

    Ports
    -----
    in 0 : complex64 stream, N symbols per message, message-aligned at item 0.
    out 0 : complex64 stream, one item per input item; every stream tag stays
        on its item. On the first item of each realisation a tag `csi`
        (c32vector of the N gains). Whole messages only: a last partial
        message of a finite stream is not passed on.
    csi (message out) : the same c32vector, published when the realisation's
        first message is output.
    """

    def __init__(self, N, family="train", coherence=1000, ebn0_db=8.0, M=16, seed=0, noise=True):
        self.N = validate.integer("N", N, 1)
        self._family = self._checked_family(family)
        self.coherence = validate.integer("coherence", coherence, 1)
        self.M = validate.integer("M", M, 2, MAX_M)
        self._ebn0_db = validate.db("ebn0_db", ebn0_db)
        self._n0 = mpa.noise_density(self._ebn0_db, self.M, self.N)
        self.seed = validate.integer("seed", seed, 0)
        self.noise = validate.boolean("noise", noise)
        gr.sync_block.__init__(self, name="subchannel_fading", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.set_output_multiple(self.N)  # gains and noise are per message
        self._lock = threading.Lock()
        self._realisation, self._gains, self._realisation_family = -1, None, None
        self._started = 0
        self._history = collections.deque(maxlen=HISTORY)  # (realisation, family, gains), newest last
        self._noise = ChunkedDraws(lambda c: unit_noise(self.seed, c, self.N), CHUNK_MESSAGES)
        self.message_port_register_out(pmt.intern(CSI_PORT))

    def _checked_family(self, family):
        family = validate.choice("family", family, subchannels.FAMILIES)
        subchannels.family_powers(family, self.N)  # deep_fade needs N >= 2: ValueError naming N
        return family

    def _start_realisation(self, r, item):
        """Draw realisation r's gains, tag `item` (absolute output offset) and publish them."""
        family = self._family  # one read: set_family applies from here on
        h = realisation_gains(self.seed, r, self.N, family)
        self._realisation, self._gains, self._realisation_family = r, h, family
        self._history.append((r, family, h.copy()))
        self._started += 1
        value = csi_pmt(h)
        self.add_item_tag(0, item, pmt.intern(CSI_TAG), value)
        self.message_port_pub(pmt.intern(CSI_PORT), value)

    def work(self, input_items, output_items):
        out = output_items[0]
        k = len(out) // self.N
        first = self.nitems_written(0) // self.N
        x = input_items[0][:k * self.N].reshape(k, self.N)
        y = out[:k * self.N].reshape(k, self.N)
        n0 = self._n0  # one read: a setter mid-call changes the next call
        j = 0
        while j < k:
            r = (first + j) // self.coherence
            if r != self._realisation:
                self._start_realisation(r, (first + j) * self.N)
            take = min((r + 1) * self.coherence - (first + j), k - j)
            y[j:j + take] = x[j:j + take] * self._gains
            j += take
        if self.noise and k:
            y += np.float32(np.sqrt(n0)) * self._noise.rows(first, k)  # CN(0, 1) rows [k, N]
        return k * self.N

    # --- run-time control -------------------------------------------------------------

    def set_family(self, family):
        """The gain family from the next realisation on (GRC callback); False (logged) if refused."""
        family = checked_setting(self, "family", family, lambda _, f: self._checked_family(f), repr(self._family))
        if family is None:
            return False
        self._family = family
        return True

    def set_ebn0_db(self, ebn0_db):
        """New Eb/N0 in dB from the next work() call on (GRC callback); False (logged) if refused."""
        ebn0_db = checked_setting(self, "ebn0_db", ebn0_db, validate.db, f"{self._ebn0_db:g} dB")
        if ebn0_db is None:
            return False
        with self._lock:
            self._ebn0_db, self._n0 = ebn0_db, mpa.noise_density(ebn0_db, self.M, self.N)
        return True

    # --- what it reports --------------------------------------------------------------

    def family(self):
        """The family of the next realisation."""
        return self._family

    def ebn0_db(self):
        return self._ebn0_db

    def n0(self):
        return self._n0

    def realisations(self):
        """Realisations started so far."""
        return self._started

    def gains(self):
        """The gains applied now: complex64 [N] (a copy); None before the first message."""
        return None if self._gains is None else self._gains.copy()

    def history(self):
        """[(realisation index, family, gains complex64 [N])] of the last HISTORY realisations started, oldest first."""
        return [(r, f, h.copy()) for r, f, h in self._history]
