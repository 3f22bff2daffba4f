"""simulated_channel: a core channel (AWGN, Rayleigh, phase, PA) applied to a symbol stream (GNU Radio block).

GNU Radio's own channels.channel_model drops its first 3 samples and draws
its noise from a fixed pool (examples/README.md, notes); this block applies
any channel of core.channels.by_name per message of n symbols and keeps
every sample and tag where it was. It is how a flowgraph gets the channel a
learned channel model imitates (the 'pa' power amplifier).

Message j's draws depend only on (seed, j), however the scheduler cuts the
stream into buffers (ChunkedChannel), so a run is reproducible and equals
the core channel applied offline.
"""
import threading

import numpy as np
import torch
from gnuradio import gr

from .block_common import checked_setting, keep_alive, validate_sizes
from .core import channels, prng, snr, validate

# Messages per chunk of draws: chunk c (messages c*CHUNK_MESSAGES ... ) is one call of
# the channel with its own seeded generator (noise_generator).
CHUNK_MESSAGES = 1024


def noise_generator(seed, chunk):
    """The torch.Generator of the draws of message chunk `chunk` (prng stream NOISE)."""
    return prng.torch_generator(seed, prng.NOISE, chunk)


class ChunkedChannel:
    """A channel applied to a stream of messages, message j's draws a function of (seed, j) alone.

    The stream is cut into chunks of `chunk` messages. Chunk c is one call
    channel(x_c, n0, generator(seed, c)) on complex [chunk, n], x_c holding
    the chunk's messages and zeros for those not yet seen. A channel's draws
    depend only on the shape of its input (core.channels' interface) and it
    acts on each message (row) by itself, so the rows already seen come out
    the same whatever arrives later, and the result equals the channel
    applied offline chunk by chunk. A chunk cut by a buffer boundary is
    computed again with the next buffer (at most once per call).

    channel: core channel (complex [B, n] -> complex [B, n]).
    generator: (seed, chunk index) -> torch.Generator.
    """

    def __init__(self, channel, n, seed, generator=noise_generator, chunk=CHUNK_MESSAGES):
        self.channel, self.n, self.seed = channel, int(n), int(seed)
        self.generator, self.chunk = generator, int(chunk)
        self._index = None  # the chunk whose messages _x holds
        self._x = np.zeros((self.chunk, self.n), dtype=np.complex64)

    def __call__(self, x, first, n0):
        """y for messages first, first+1, ...: x complex64 [k, n] -> complex64 [k, n]; n0 float."""
        y = np.empty_like(x)
        j, k = 0, len(x)
        with torch.no_grad():
            while j < k:
                c, r = divmod(first + j, self.chunk)
                take = min(self.chunk - r, k - j)
                if c != self._index:
                    self._x[:] = 0
                    self._index = c
                self._x[r:r + take] = x[j:j + take]
                out = self.channel(torch.from_numpy(self._x), n0, self.generator(self.seed, c))
                y[j:j + take] = out[r:r + take].numpy()
                j += take
        return y


class simulated_channel(gr.sync_block):
    """A simulated channel: transmitted symbols in, received symbols out, n per message.

    Each message of n symbols goes through channels.by_name(channel) at the
    set Eb/N0: N0 = 1 / (R Eb/N0), R = log2(M) / n, Es = 1 (DESIGN.md).

    Parameters
    ----------
    channel : str, one of core.channels.NAMES:
        'awgn'      y = x + w, w ~ CN(0, N0)
        'rayleigh'  y = h x + w, one h ~ CN(0, 1) per message
        'phase'     y = x exp(j phi) + w, phi uniform in [0, 2 pi) per message
        'pa'        Saleh power amplifier (AM/AM and AM/PM at the core's
                    input back-off), a fixed phase offset, then AWGN
                    (core.channels.pa_channel)
    M : int in [2, 256], messages of the link (with n it sets the rate R).
    n : int >= 1, symbols per message.
    ebn0_db : float, Eb/N0 in dB; settable while running (set_ebn0_db).
    seed : int >= 0. Message j's draws (noise, fade, phase) come from
        prng.torch_generator(seed, prng.NOISE, j // CHUNK_MESSAGES): the
        output is a function of (seed, the input), however the stream is cut.
    Bad values raise ValueError naming the parameter.

    Ports
    -----
    in 0 : complex64 stream, n symbols per message, message-aligned at item 0
        (as nn_encoder emits them).
    out 0 : complex64 stream, one item per input item: no sample is dropped
        or inserted, and stream tags stay on their items (unlike the stock
        channel_model, whose resampler drops 3 samples). Whole messages only
        (output multiple n): the last symbols of a finite stream that do not
        make a message are not passed on.
    """

    def __init__(self, channel, M, n, ebn0_db, seed=0):
        self.channel_name = validate.choice("channel", channel, channels.NAMES)
        self.M, self.n = validate_sizes(M, n)
        self.seed = validate.integer("seed", seed, 0)
        self._ebn0_db = validate.db("ebn0_db", ebn0_db)
        self._n0 = snr.n0_from_ebn0_db(self._ebn0_db, self.M, self.n)
        gr.sync_block.__init__(self, name="simulated_channel", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.set_output_multiple(self.n)  # whole messages: fades and phases are per message
        self._lock = threading.Lock()
        self._apply = ChunkedChannel(channels.by_name(self.channel_name), self.n, self.seed)

    def work(self, input_items, output_items):
        out = output_items[0]
        k = len(out) // self.n
        first = self.nitems_written(0) // self.n
        n0 = self._n0  # one read: a setter mid-call changes the next call
        y = self._apply(input_items[0][:k * self.n].reshape(k, self.n), first, n0)
        out[:k * self.n] = y.reshape(-1)
        return k * self.n

    def set_ebn0_db(self, ebn0_db):
        """New Eb/N0 in dB from the next work() call on (GRC callback).

        Never raises: a bad value is logged as an error, the current one
        stays, and False is returned (True on success).
        """
        ebn0_db = checked_setting(self, "ebn0_db", ebn0_db, validate.db, f"{self._ebn0_db:g} dB")
        if ebn0_db is None:
            return False
        with self._lock:
            self._ebn0_db = ebn0_db
            self._n0 = snr.n0_from_ebn0_db(ebn0_db, self.M, self.n)
        return True

    def ebn0_db(self):
        """The Eb/N0 (dB) in use."""
        return self._ebn0_db

    def n0(self):
        """The noise density N0 in use (Es = 1): variance per complex symbol."""
        return self._n0
