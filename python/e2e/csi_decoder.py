"""csi_decoder: received subchannel symbols + channel state from stream tags -> decided message (GNU Radio block)."""
import numpy as np
import pmt
import torch
from gnuradio import gr

from .block_common import MAX_M, keep_alive
from .core import validate
from .core.models import decide
from .mpa_precoder import CSI_TAG, PrecoderNetwork, parse_csi

FORWARD_MESSAGES = 4096  # messages per forward pass inside one work() call (as nn_decoder)


class csi_decoder(PrecoderNetwork, gr.decim_block):
    """Receiver that knows the channel: N complex symbols and the N gains in, one decided message out.

    The decision is the argmax of the CsiDecoder's logits (core.mpa), which
    reads the one-tap statistics conj(h_i) y_i and |h_i|^2 of each
    subchannel. The whole work() buffer is decoded in one batch, each
    message with the gains that apply to it.

    Channel state comes in stream tags with key `csi` (c32vector of the N
    gains, as subchannel_fading writes them): a tag applies from the message
    that starts at or after its offset (normally it sits on the first sample
    of the first message it applies to) until the next tag, across work()
    calls. Messages before the first good tag are decoded with h = 1 on every
    subchannel, counted (messages_without_csi()) and logged once. A malformed
    tag value (another PMT kind, another length, NaN or infinite, all zero) is
    logged as an error, counted (bad_tags()) and ignored: the gains before it
    stay.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e 'precoder' checkpoint (core.precoder)
        with this M and N, whose receiver (csi_decoder network) is used;
        refused at construction (checkpoint.CheckpointError, a ValueError
        naming the file and the reason) if it cannot be read, is of another
        kind, any of its tensors is damaged, or M or N differ.
    M : int in [2, 256], number of messages.
    N : int >= 1, subchannels = complex symbols per message (the decimation).

    Ports
    -----
    in 0 : complex64 stream, N symbols per message, message boundaries at
        multiples of N from the first item; `csi` tags as above.
    out 0 : uint8 stream, decided message index in [0, M), one per N inputs.
    weights (message in) : PMT u8vector of a 'precoder' checkpoint's
        safetensors bytes (or a PDU whose cdr is one) with this M and N: the
        receiver is replaced between two work() calls. A malformed or
        mismatched message is logged as an error and dropped.
    """

    _NETWORK = "csi_decoder"

    def __init__(self, checkpoint, M, N):
        self.M = validate.integer("M", M, 2, MAX_M)
        self.N = validate.integer("N", N, 1)
        self.n = self.N
        self._config = None
        config, decoder = self._load(validate.path("checkpoint", checkpoint, allow_empty=False))
        gr.decim_block.__init__(self, name="csi_decoder", in_sig=[np.complex64], out_sig=[np.uint8],
                                decim=self.N)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._gains = None        # complex64 [N]: the gains that apply now (None: no tag yet)
        self._pending = []        # [(first message, gains)] of tags that apply from a later message
        self._without_csi = 0
        self._bad_tags = 0
        self._tags = 0
        self._install(config, decoder)
        self._register_weights_port()

    def _install(self, config, decoder):
        # work() reads self._decoder once per call: assigning it publishes the network atomically.
        self._config = config
        self._decoder = decoder

    def _read_tags(self, k):
        """Queue the good `csi` tags of this call's k messages as (first message they apply to, gains)."""
        for tag in sorted(self.get_tags_in_window(0, 0, k * self.N, pmt.intern(CSI_TAG)), key=lambda t: t.offset):
            try:
                h = parse_csi(tag.value, self.N)
            except Exception as e:  # a bad tag must never stop the flowgraph
                self._bad_tags += 1
                self.logger.error(f"ignored csi tag at item {tag.offset} ({self._bad_tags} so far), keeping the "
                                  f"gains before it: {e}")
                continue
            self._tags += 1
            self._pending.append((-(-tag.offset // self.N), h))  # from the message starting at or after it

    def _gains_rows(self, first, k):
        """The gains of messages first .. first+k-1: complex64 [k, N]."""
        rows = np.empty((k, self.N), dtype=np.complex64)
        j = 0
        while j < k:
            upto = k
            if self._pending and self._pending[0][0] < first + k:
                upto = max(j, self._pending[0][0] - first)
            if upto > j:
                if self._gains is None:
                    rows[j:upto] = 1
                    if self._without_csi == 0:
                        self.logger.warn("messages arrived before any csi tag: decoding them with h = 1 on every "
                                         "subchannel until the first one (messages_without_csi() counts them)")
                    self._without_csi += upto - j
                else:
                    rows[j:upto] = self._gains
                j = upto
            if j < k:
                self._gains = self._pending.pop(0)[1]
        return rows

    def work(self, input_items, output_items):
        decided = output_items[0]
        k = len(decided)
        decoder = self._decoder  # one read: a swap mid-call cannot mix two networks
        first = self.nitems_read(0) // self.N
        self._read_tags(k)
        h = self._gains_rows(first, k)
        y = input_items[0][:k * self.N].reshape(k, self.N)
        with torch.inference_mode():
            for lo in range(0, k, FORWARD_MESSAGES):
                hi = min(lo + FORWARD_MESSAGES, k)
                logits = decoder(torch.from_numpy(y[lo:hi].copy()), torch.from_numpy(h[lo:hi]))
                decided[lo:hi] = decide(logits).numpy()
        return k

    def gains(self):
        """The gains that apply now: complex64 [N] (a copy); None before the first good tag."""
        return None if self._gains is None else self._gains.copy()

    def csi_tags(self):
        """Good csi tags read so far."""
        return self._tags

    def bad_tags(self):
        """Malformed csi tags ignored so far."""
        return self._bad_tags

    def messages_without_csi(self):
        """Messages decoded before the first good csi tag (with h = 1)."""
        return self._without_csi
