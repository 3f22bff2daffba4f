"""mpa_precoder: message indices -> N subchannel symbols whose precoder adapts to channel state (GNU Radio block).

The attention iteration itself (core.mpa) runs in the `csi` message
handler, once per channel measurement; work() only looks messages up in
the current codebook. Also here: the `csi` PMT format (c32vector of N
gains) and the loading of 'precoder' checkpoints, which csi_decoder and
subchannel_fading share.
"""
import collections
import os
import time

import numpy as np
import pmt
import torch
from gnuradio import gr

from .block_common import (MAX_M, METRICS_PORT, OutOfRangeWarning, SwappableNetwork, checked_setting, dict_message,
                           keep_alive, pdu_data, pmt_kind)
from .core import checkpoint as ckpt
from .core import mpa, validate

CSI_PORT = "csi"         # message: c32vector of N channel gains (DESIGN.md)
CSI_TAG = "csi"          # stream tag: the same c32vector, on the first sample it applies to
UPDATE_TAG = "mpa_update"  # stream tag: long, the update count, on the first item of a new codebook
UPDATE_HISTORY = 10000  # updates whose first output item update_items() keeps
PRECODER_FILES = ("a 'precoder' checkpoint: `gr_e2e train --method mpa-tandem --M 16 --subchannels 8 --out DIR` "
                  "writes the attention precoder to DIR/checkpoint.safetensors, `--method mpa-plain` the same link "
                  "without the layer; the mpa_fading examples read them as runs/mpa/precoder_mpa.safetensors "
                  "(the attention precoder) and runs/mpa/precoder_plain.safetensors")


def csi_pmt(h):
    """Channel gains -> the `csi` PMT: c32vector of len(h). h: complex [N] (any array-like)."""
    h = np.asarray(h, dtype=np.complex64).reshape(-1)
    return pmt.init_c32vector(len(h), h.tolist())


def parse_csi(msg, N):
    """A `csi` message or tag value -> complex64 [N]; ValueError saying what is wrong.

    Accepted: a PMT c32vector of N gains, or a PDU (pair whose cdr is one).
    Refused: another PMT kind, another length, NaN or infinite gains, all
    gains zero (no channel to adapt to).
    """
    data, what = pdu_data(msg)
    if not pmt.is_c32vector(data):
        raise ValueError(f"csi must be a c32vector of {N} channel gains (or a PDU carrying one), "
                         f"got {what}{pmt_kind(data)}")
    h = np.asarray(pmt.c32vector_elements(data), dtype=np.complex64)
    if h.size != N:
        raise ValueError(f"csi must hold N={N} channel gains, got {h.size}")
    if not np.isfinite(h).all():
        raise ValueError(f"csi holds NaN or infinite gains: {h.tolist()}")
    if not np.any(h):
        raise ValueError("csi gains are all zero")
    return h


def load_precoder_network(source, network, M, N):
    """(config, module) of `network` ('mpa_encoder' or 'csi_decoder') from a 'precoder' checkpoint path or bytes.

    The whole file is validated and must have this M and N; another kind, a
    damaged file or a mismatch raises checkpoint.CheckpointError naming the
    file; a missing file's error says what writes one.
    """
    try:
        return ckpt.load_network(source, network, expect={"M": M, "N": N})
    except ckpt.CheckpointError as e:
        if e.reason != "no such file":
            raise
        raise ckpt.CheckpointError(os.path.abspath(e.source), f"no such file. It must be {PRECODER_FILES}") \
            from None


class PrecoderNetwork(SwappableNetwork):
    """SwappableNetwork for a block holding one network of a 'precoder' checkpoint (M and N, not n)."""

    def _load(self, source):
        return load_precoder_network(source, self._NETWORK, self.M, self.N)


class mpa_precoder(PrecoderNetwork, OutOfRangeWarning, gr.interp_block):
    """Attention-precoded transmitter: one message index in, N complex symbols (one per subchannel) out.

    The symbols are a lookup in the codebook encoder.codebook(alpha)
    (complex64 [M, N], Es = 1 per symbol), alpha the L x N coefficients of
    the attention layer (core.mpa). A channel measurement h on the `csi`
    port re-runs the attention iteration, alpha = encoder.adapt(h, N0), in
    the message handler (the networks are never retrained), and the new
    codebook replaces the old between two work() calls. Until the first
    measurement alpha is the layer's base coefficients alpha0.

    The adaptation acts from the next work() call on, so what the precoder
    has already written into its output buffer is sent with the old
    coefficients: the change reaches the channel up to a buffer later than
    the measurement. The `mpa_update` tag marks the first symbol sent with
    new coefficients.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e 'precoder' checkpoint (core.precoder)
        with this M and N; refused at construction (checkpoint.CheckpointError,
        a ValueError naming the file and the reason) if it cannot be read, is
        of another kind, any of its tensors is damaged, or M or N differ.
        Architecture 'mpa' adapts; 'plain' (the link without the layer) has
        a fixed codebook.
    M : int in [2, 256], number of messages.
    N : int >= 1, subchannels = complex symbols per message (the interpolation).
    ebn0_db : float, the Eb/N0 in dB the iteration assumes:
        N0 = core.mpa.noise_density(ebn0_db, M, N) (R = log2(M) / N).
        Settable while running (set_ebn0_db); it applies from the next csi
        message.
    adapt : bool, re-adapt on csi messages. With adapt=False, or a 'plain'
        checkpoint, a good csi message is counted (csi_messages()) and
        changes nothing: the codebook stays at alpha0 (or the plain one).

    Ports
    -----
    in 0 : uint8 stream, message indices in [0, M). An index >= M sends N
        zero symbols, is counted (out_of_range()), and one warning is logged
        per burst of bad input.
    out 0 : complex64 stream, N symbols per input item, average energy 1 per
        symbol over the codebook. Stream tags pass through, their offsets
        scaled by N. Tag `mpa_update` (long: the update count) on the first
        item produced with new coefficients.
    csi (message in) : PMT c32vector of the N channel gains (or a PDU whose
        cdr is one), as subchannel_fading publishes. A malformed one (another
        kind, another length, NaN or infinite, all zero) is logged as an
        error, counted (dropped()) and dropped; the last good codebook stays.
    metrics (message out) : after each adaptation a PMT dict {updates: long,
        steps: long, delta: double (the last step's largest change of alpha:
        how far the iteration converged), converged: bool (delta <= 1e-4),
        seconds: double (time of the adaptation), dropped: long (bad csi
        messages so far)}.
    weights (message in) : PMT u8vector of a 'precoder' checkpoint's
        safetensors bytes (or a PDU whose cdr is one) with this M and N: a
        new transmitter, starting again from its alpha0. A malformed or
        mismatched message is logged as an error and dropped.
    """

    _NETWORK = "mpa_encoder"

    def __init__(self, checkpoint, M, N, ebn0_db=8.0, adapt=True):
        self.M = validate.integer("M", M, 2, MAX_M)
        self.N = validate.integer("N", N, 1)
        self.n = self.N
        self._ebn0_db = validate.db("ebn0_db", ebn0_db)
        self._n0 = mpa.noise_density(self._ebn0_db, self.M, self.N)
        self.adapt = validate.boolean("adapt", adapt)
        self._config = None
        config, encoder = self._load(validate.path("checkpoint", checkpoint, allow_empty=False))
        gr.interp_block.__init__(self, name="mpa_precoder", in_sig=[np.uint8], out_sig=[np.complex64],
                                 interp=self.N)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._out_of_range = 0
        self._updates = self._csi_messages = self._dropped = 0
        self._tagged_update = 0  # the update whose first item has been tagged
        self._update_items = collections.deque(maxlen=UPDATE_HISTORY)  # (update, first output item)
        self._last_metrics = None
        self._install(config, encoder)
        self._register_weights_port()
        self.message_port_register_in(pmt.intern(CSI_PORT))
        self.set_msg_handler(pmt.intern(CSI_PORT), self._on_csi)
        self.message_port_register_out(pmt.intern(METRICS_PORT))

    # --- the codebook ---------------------------------------------------------------

    def _install(self, config, encoder):
        self._config, self._encoder = config, encoder
        alpha = encoder.alpha0.clone() if config.adapts else None
        self._publish_table(alpha, self._updates)

    def _publish_table(self, alpha, update):
        """Compute the codebook for alpha and make it current with one reference assignment."""
        with torch.no_grad():
            book = self._encoder.codebook(alpha) if alpha is not None else self._encoder.codebook()
        # 256 rows, those >= M zero, so out-of-range indices need no branch in work().
        table = np.zeros((MAX_M, self.N), dtype=np.complex64)
        table[:self.M] = book.numpy()
        self._state = (table, None if alpha is None else alpha.numpy().copy(), update)

    def work(self, input_items, output_items):
        msgs = input_items[0]
        k = len(msgs)
        table, _, update = self._state  # one read: a swap mid-call cannot mix two codebooks
        np.take(table, msgs, axis=0, out=output_items[0][:k * self.N].reshape(k, self.N))
        if update != self._tagged_update and k:
            self.add_item_tag(0, self.nitems_written(0), pmt.intern(UPDATE_TAG), pmt.from_long(update))
            self._update_items.append((update, self.nitems_written(0)))
            self._tagged_update = update
        bad = int(np.count_nonzero(msgs >= self.M)) if self.M < MAX_M else 0
        self._out_of_range += bad
        self._warn_out_of_range(bad, self._out_of_range)
        return k * self.N

    # --- channel state ----------------------------------------------------------------

    def _on_csi(self, msg):
        try:
            h = parse_csi(msg, self.N)
        except Exception as e:  # a bad message must never stop the flowgraph
            self._dropped += 1
            self.logger.error(f"dropped csi message ({self._dropped} so far), keeping the current "
                              f"coefficients: {e}")
            return
        self._csi_messages += 1
        if self.adapt and self._config.adapts:
            try:
                self._adapt(h)
            except Exception as e:
                self.logger.error(f"adaptation failed, keeping the current coefficients: {e!r}")

    def _adapt(self, h):
        start = time.perf_counter()
        result = self._encoder.adapt(torch.from_numpy(h)[None], self._n0)
        update = self._updates + 1
        self._publish_table(result.alpha[0], update)
        self._updates = update
        self._last_metrics = {"updates": update, "steps": int(result.steps), "delta": float(result.delta[0]),
                              "converged": bool(result.converged[0]), "seconds": time.perf_counter() - start,
                              "dropped": self._dropped}
        self.message_port_pub(pmt.intern(METRICS_PORT), dict_message(self._last_metrics))

    def set_ebn0_db(self, ebn0_db):
        """The Eb/N0 (dB) the iteration assumes, from the next csi message on (GRC callback).

        Never raises: a bad value is logged as an error, the current one
        stays, and False is returned (True on success).
        """
        ebn0_db = checked_setting(self, "ebn0_db", ebn0_db, validate.db, f"{self._ebn0_db:g} dB")
        if ebn0_db is None:
            return False
        self._ebn0_db, self._n0 = ebn0_db, mpa.noise_density(ebn0_db, self.M, self.N)
        return True

    # --- what it reports --------------------------------------------------------------

    def ebn0_db(self):
        return self._ebn0_db

    def n0(self):
        """The N0 the iteration assumes."""
        return self._n0

    def architecture(self):
        """'mpa' or 'plain': the checkpoint's transmitter."""
        return self._config.architecture

    def symbol_table(self):
        """Current codebook: complex64 [M, N] (a copy)."""
        return self._state[0][:self.M].copy()

    def alpha(self):
        """Current coefficients: float32 [L, N] (a copy); None for a 'plain' checkpoint."""
        alpha = self._state[1]
        return None if alpha is None else alpha.copy()

    def updates(self):
        """Adaptations done so far."""
        return self._updates

    def update_items(self):
        """[(update count, output item it took effect at)] of the last UPDATE_HISTORY updates sent, oldest first.

        Item // N is the first message sent with that update's coefficients:
        against the message the csi was measured at, the feedback lag.
        """
        return list(self._update_items)

    def csi_messages(self):
        """Good csi messages received (adapted on or not)."""
        return self._csi_messages

    def dropped(self):
        """Malformed csi messages dropped."""
        return self._dropped

    def out_of_range(self):
        """Number of input message indices >= M seen so far."""
        return self._out_of_range

    def metrics(self):
        """The last metrics dict published (None before the first adaptation)."""
        return None if self._last_metrics is None else dict(self._last_metrics)
