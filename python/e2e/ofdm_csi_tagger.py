"""ofdm_csi_tagger: ofdm_e2e_rx's message symbols + its per-frame `csi` PDUs -> y = h x + w with `csi` tags per message.

What csi_decoder and mpa_precoder need from an OFDM receiver: each
message's N gains as a `csi` stream tag on its first symbol, and one set of
N gains per frame for the precoder's feedback port (GNU Radio block).
"""
import collections
import time

import numpy as np
import pmt
from gnuradio import gr

from .block_common import dict_message, keep_alive
from .core import ofdm, ofdm_subchannels, validate
from .mpa_precoder import CSI_TAG
from .ofdm_e2e_tx import layout_from
from .ofdm_frames import CSI_PORT, FRAME_TAG

EQUALIZERS = ("tracking", "one-tap", "none")
HISTORY = 10000  # published frame numbers csi_frames() keeps


class ofdm_csi_tagger(gr.sync_block):
    """Pairs each received frame with its channel estimate: csi tags per message, and the precoder's feedback.

    ofdm_e2e_rx publishes per frame a `csi` PDU ({frame_number, ...} .
    c32vector of the data carriers' estimates from the sync symbols) and
    tags the frame's first message symbol frame_number. This block keeps the
    PDUs by frame number; when the frame's symbols arrive it tags the first
    symbol of each message with `csi` (c32vector of that message's n gains,
    core.ofdm_subchannels.FrameGains) and, by `equalizer` (that of the
    ofdm_e2e_rx before it):

      'none': the receiver's raw symbols are y = h x + w already; they pass
          unchanged and h is the raw estimate.
      'tracking' (or 'one-tap'): the receiver divided each symbol by its
          estimate (smoothed, and the phase a residual frequency offset adds
          symbol after symbol removed with the pilots); the symbols go out
          multiplied back by the gains of the tag, smoothed the same way
          (raw for 'one-tap'), so again y = h x + w, now with the residual
          frequency offset removed.

    The rx publishes the PDU in the same call that produces the frame's
    symbols, before it hands them on, so the PDU is normally here first. A
    frame whose PDU is missing is held up to max_wait seconds (counted in
    frames_held()), then passed on untagged (frames_without_csi()): the
    decoder keeps the gains before it.

    On receiving a PDU it publishes at once, for mpa_precoder's `csi` port,
    a PDU ({frame_number} . c32vector of n gains): the root of the mean power
    of each subchannel over the frame's messages
    (core.ofdm_subchannels.common_gains).

    Parameters
    ----------
    n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers,
        mapping : the link's OFDM layout, as ofdm_e2e_rx's.
    equalizer : 'tracking', 'one-tap' or 'none', as ofdm_e2e_rx's.
    timing_offset : as ofdm_e2e_rx's (None: cp_len // 4); the smoothing of
        'tracking' fits a response of the delays core.ofdm.response_delays
        gives for it.
    max_wait : float >= 0, seconds a frame waits for its PDU.

    Ports
    -----
    in 0 : complex64 stream, ofdm_e2e_rx's output (frame_number tags).
    out 0 : complex64 stream, y = h x + w per message symbol; `csi` tags as
        above; every input tag stays on its item.
    csi (message in) : ofdm_e2e_rx's csi PDUs. Malformed ones are logged,
        counted (bad_csi()) and dropped.
    csi_out (message out) : the precoder's gains, one PDU per frame.
    """

    def __init__(self, n, messages_per_frame, fft_len=128, cp_len=16, data_carriers=(), pilot_carriers=(),
                 mapping="symbol", equalizer="tracking", timing_offset=None, max_wait=0.5):
        layout = layout_from(n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers, mapping)
        self.equalizer = validate.choice("equalizer", equalizer, EQUALIZERS)
        self.timing_offset = (layout.cp_len // 4 if timing_offset is None
                              else validate.integer("timing_offset", timing_offset, -layout.cp_len, layout.cp_len))
        self.max_wait = validate.real("max_wait", max_wait, 0)
        gr.sync_block.__init__(self, name="ofdm_csi_tagger", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.layout = layout
        smoother = None
        if self.equalizer == "tracking":
            smoother = ofdm.ChannelSmoother(layout.fft_len, np.asarray(layout.data_carriers),
                                            ofdm.response_delays(layout.cp_len, self.timing_offset))
        self._gains_of = ofdm_subchannels.FrameGains(layout, smoother)
        self._frame_items = layout.message_symbols
        self._csi = collections.OrderedDict()  # frame number -> gains [messages, n], from the PDUs
        self._frame = None  # (first item, gains flat [messages * n] or None) of the frame being passed
        self._waiting = None  # (frame number, since) of a frame held for its PDU
        self._tagged = self._without = self._held = self._bad = 0
        self._published = collections.deque(maxlen=HISTORY)
        self._frame_key, self._csi_key = pmt.intern(FRAME_TAG), pmt.intern(CSI_TAG)
        self.message_port_register_in(pmt.intern(CSI_PORT))
        self.set_msg_handler(pmt.intern(CSI_PORT), self._on_csi)
        self.message_port_register_out(pmt.intern("csi_out"))

    # --- the PDUs ---------------------------------------------------------------------

    def _on_csi(self, msg):
        try:
            if not (pmt.is_pair(msg) and pmt.is_dict(pmt.car(msg)) and pmt.is_c32vector(pmt.cdr(msg))):
                raise ValueError("expected a PDU ({frame_number, ...} . c32vector)")
            number = pmt.dict_ref(pmt.car(msg), pmt.intern("frame_number"), pmt.PMT_NIL)
            if not pmt.is_integer(number) and not pmt.is_uint64(number):
                raise ValueError("its metadata has no integer frame_number")
            frame = pmt.to_uint64(number) if pmt.is_uint64(number) else pmt.to_long(number)
            gains = self._gains_of(np.asarray(pmt.c32vector_elements(pmt.cdr(msg))))
            if not np.isfinite(gains).all():
                raise ValueError("its estimate holds NaN or infinite values")
        except Exception as e:  # a bad message must never stop the flowgraph
            self._bad += 1
            self.logger.error(f"dropped csi PDU ({self._bad} so far): {e}")
            return
        self._csi[frame] = gains
        while len(self._csi) > 256:
            self._csi.popitem(last=False)
        common = ofdm_subchannels.common_gains(gains)
        self._published.append(frame)
        self.message_port_pub(pmt.intern("csi_out"), pmt.cons(dict_message({"frame_number": frame}),
                                                                pmt.init_c32vector(len(common), common.tolist())))

    # --- the stream -------------------------------------------------------------------

    def _start_frame(self, frame, item):
        gains = self._csi.pop(frame, None)
        if gains is None:
            self._without += 1
            self._frame = (item, None)
            return
        n = self.layout.n
        for m, h in enumerate(gains):
            self.add_item_tag(0, item + m * n, self._csi_key, pmt.init_c32vector(n, h.tolist()))
        self._tagged += 1
        self._frame = (item, gains.reshape(-1))

    def _pass(self, x, out, first):
        """Copy items first .. first+len(x)-1, multiplied by their gains where the equaliser divided them."""
        out[:] = x
        if self._frame is None or self.equalizer == "none":
            return
        start, gains = self._frame
        if gains is None:
            return
        a = max(first, start)
        b = min(first + len(x), start + self._frame_items)
        if b > a:
            out[a - first:b - first] = x[a - first:b - first] * gains[a - start:b - start]

    def work(self, input_items, output_items):
        x, out = input_items[0], output_items[0]
        k = len(out)
        first = self.nitems_read(0)
        tags = sorted(self.get_tags_in_window(0, 0, k, self._frame_key), key=lambda t: t.offset)
        done = 0
        for tag in tags:
            offset = tag.offset - first
            frame = pmt.to_uint64(tag.value) if pmt.is_uint64(tag.value) else pmt.to_long(tag.value)
            if frame not in self._csi:
                if offset > done:  # pass what comes before the frame first
                    break
                since = self._waiting[1] if self._waiting and self._waiting[0] == frame else time.monotonic()
                if self._waiting is None or self._waiting[0] != frame:
                    self._held += 1
                    self._waiting = (frame, since)
                if time.monotonic() - since < self.max_wait:
                    time.sleep(0.001)  # the PDU is on its way: let the scheduler deliver it
                    return done
            self._waiting = None
            if offset > done:
                self._pass(x[done:offset], out[done:offset], first + done)
                done = offset
            self._start_frame(frame, first + offset)
        else:
            offset = k
        upto = max(done, min(offset, k))
        if upto > done:
            self._pass(x[done:upto], out[done:upto], first + done)
        return upto

    # --- what it reports --------------------------------------------------------------

    def frames_tagged(self):
        """Frames whose messages were tagged with their gains."""
        return self._tagged

    def frames_without_csi(self):
        """Frames passed on untagged (no PDU within max_wait)."""
        return self._without

    def frames_held(self):
        """Frames whose symbols arrived before their PDU (each held until it came, or max_wait)."""
        return self._held

    def bad_csi(self):
        """Malformed PDUs dropped."""
        return self._bad

    def csi_frames(self):
        """Frame numbers of the csi_out PDUs published, in order (the last HISTORY): update u of an
        adapting mpa_precoder fed by csi_out was computed from frame csi_frames()[u - 1]."""
        return list(self._published)
