"""The two framing blocks inside the OFDM hier blocks: messages <-> frames of resource elements.

ofdm_frame_mapper (in ofdm_e2e_tx): message symbols -> each frame's payload
resource elements (out 0, a tagged stream for the stock carrier allocator)
and, per frame, length_field bytes (out 1, a tagged stream whose length the
stock packet header generator writes into the header).

ofdm_frame_demapper (in ofdm_e2e_rx): each received frame's payload
resource elements -> its message symbols, tagged with the frame number
(unwrapped from the 12-bit header counter), the batch it belongs to and
where in the batch it starts; per frame a `csi` PDU; counters of frames
detected, headers failed, frames lost.

The algorithms (layout, mapping, counter, batch of a frame) are core.ofdm.
"""
import numpy as np
import pmt
from gnuradio import gr

from .block_common import BATCH_INDEX_TAG, BATCH_OFFSET_TAG, METRICS_PORT, PACKET_LEN_TAG, dict_message, keep_alive
from .core import ofdm, validate

LENGTH_TAG = "packet_len"        # the tagged-stream key of the stock OFDM blocks inside the hier blocks
FRAME_LEN_TAG = "frame_len"      # payload OFDM symbols, from the header parser (the demux's length key)
FRAME_NUMBER_TAG = "packet_num"  # the header's 12-bit frame counter, from the header parser
CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
FRAME_TAG = "frame_number"         # absolute frame number on the demapper's output
CSI_PORT = "csi"
HEADER_PORT = "header"


class ofdm_header_repeater(gr.sync_block):
    """Header bits from the stock generator -> the 32 bits repeated across the header symbol (core.ofdm)."""

    def __init__(self, layout):
        gr.sync_block.__init__(self, name="ofdm_header_repeater", in_sig=[np.uint8], out_sig=[np.uint8])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._D = layout.carriers_per_symbol
        self.set_output_multiple(self._D)  # the stream is whole headers of D bits

    def work(self, input_items, output_items):
        k = len(output_items[0]) // self._D * self._D
        for h in range(0, k, self._D):
            output_items[0][h:h + self._D] = ofdm.repeat_header(input_items[0][h:h + self._D])
        return k


class ofdm_header_combiner(gr.sync_block):
    """Equalised header symbols -> the first 32 combined from their copies by maximum ratio (core.ofdm).

    The header equaliser tags each header with its channel estimate
    (ofdm_sync_chan_taps, FFT-shifted): the weights of the combining.
    """

    def __init__(self, layout):
        gr.sync_block.__init__(self, name="ofdm_header_combiner", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._D = layout.carriers_per_symbol
        self._index = np.asarray(layout.data_carriers) + layout.fft_len // 2
        self._fft_len = layout.fft_len
        self._taps_key = pmt.intern(CHAN_TAPS_TAG)
        self.set_output_multiple(self._D)

    def work(self, input_items, output_items):
        k = len(output_items[0]) // self._D * self._D
        start = self.nitems_read(0)
        taps = {t.offset - start: t.value for t in self.get_tags_in_window(0, 0, k, self._taps_key)}
        for h in range(0, k, self._D):
            gains = None
            value = taps.get(h)
            if value is not None and pmt.is_c32vector(value) and pmt.length(value) == self._fft_len:
                gains = np.asarray(pmt.c32vector_elements(value))[self._index]
            output_items[0][h:h + self._D] = ofdm.combine_header(input_items[0][h:h + self._D], gains)
        return k


class ofdm_payload_equalizer(gr.sync_block):
    """Payload OFDM symbols (FFT-shifted vectors) -> one-tap equalised with a smoothed estimate, phase tracked.

    Each frame's first symbol carries the sync symbols' channel estimate
    (ofdm_sync_chan_taps, from the header path through the demux). The
    estimate is smoothed to a response inside the cyclic prefix
    (core.ofdm.ChannelSmoother), every symbol divided by it, and the phase a
    residual frequency offset adds symbol after symbol is measured on the
    pilots and removed (core.ofdm.PhaseDrift). GNU Radio's
    ofdm_equalizer_static does neither; its simpledfe tracks by decisions on
    a fixed constellation, which a learned transmitter does not have.
    """

    def __init__(self, layout, timing_offset):
        N = layout.fft_len
        gr.sync_block.__init__(self, name="ofdm_payload_equalizer", in_sig=[(np.complex64, N)],
                               out_sig=[(np.complex64, N)])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        active = np.asarray(layout.data_carriers + layout.pilot_carriers)
        self._smoother = ofdm.ChannelSmoother(N, active, ofdm.response_delays(layout.cp_len, timing_offset))
        self._pilots = np.asarray(layout.pilot_carriers, dtype=int) + N // 2
        self._pilot_symbols = np.asarray(layout.pilot_symbols)
        self._drift = ofdm.PhaseDrift()
        self._inverse = np.ones(N, dtype=np.complex64)
        self._weights = np.ones(len(self._pilots))
        self._key = pmt.intern(CHAN_TAPS_TAG)

    def _start_frame(self, value):
        self._drift.reset()
        if not (pmt.is_c32vector(value) and pmt.length(value) == len(self._inverse)):
            self._inverse[:] = 1  # no estimate: pass the frame through as received
            return
        taps = self._smoother(np.asarray(pmt.c32vector_elements(value)))
        # Unused carriers have no estimate (0): they stay 0 rather than divide by zero.
        self._inverse = np.divide(1, taps, out=np.zeros_like(taps), where=np.abs(taps) > 1e-12)
        self._weights = np.abs(taps[self._pilots]) ** 2

    def work(self, input_items, output_items):
        y, out = input_items[0], output_items[0]
        start = self.nitems_read(0)
        tags = sorted(self.get_tags_in_window(0, 0, len(y), self._key), key=lambda t: t.offset)
        bounds = [0] + [t.offset - start for t in tags] + [len(y)]
        values = [None] + [t.value for t in tags]
        for a, b, value in zip(bounds, bounds[1:], values):
            if value is not None:
                self._start_frame(value)
            if b <= a:
                continue
            eq = out[a:b]  # equalised in place: no temporaries of the whole window
            np.multiply(y[a:b], self._inverse, out=eq)
            theta = ofdm.pilot_phases(eq, self._pilots, self._pilot_symbols, self._weights)
            eq *= np.exp(-1j * self._drift.update(theta)).astype(np.complex64)[:, None]
        return len(y)


class ofdm_frame_mapper(gr.basic_block):
    """Message symbols (layout.message_symbols per frame) -> payload elements and header-length bytes."""

    def __init__(self, layout):
        gr.basic_block.__init__(self, name="ofdm_frame_mapper", in_sig=[np.complex64],
                                out_sig=[np.complex64, np.uint8])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.layout = layout
        self.set_output_multiple(layout.payload_elements)
        self.set_tag_propagation_policy(gr.TPP_DONT)  # frames are tagged with their own lengths
        self._len_key = pmt.intern(LENGTH_TAG)
        self._payload_len = pmt.from_long(layout.payload_elements)
        self._header_len = pmt.from_long(layout.length_field)
        self._srcid = pmt.intern(self.alias())
        self.frames = 0

    def forecast(self, noutput_items, ninputs):
        return [noutput_items // self.layout.payload_elements * self.layout.message_symbols]

    def general_work(self, input_items, output_items):
        lay = self.layout
        frames = min(len(input_items[0]) // lay.message_symbols, len(output_items[0]) // lay.payload_elements,
                     len(output_items[1]) // max(1, lay.length_field))
        x, payload, header = input_items[0], output_items[0], output_items[1]
        w0, w1 = self.nitems_written(0), self.nitems_written(1)
        for f in range(frames):
            msgs = x[f * lay.message_symbols:(f + 1) * lay.message_symbols]
            payload[f * lay.payload_elements:(f + 1) * lay.payload_elements] = lay.to_payload(msgs)
            self.add_item_tag(0, w0 + f * lay.payload_elements, self._len_key, self._payload_len, self._srcid)
            self.add_item_tag(1, w1 + f * lay.length_field, self._len_key, self._header_len, self._srcid)
        header[:frames * lay.length_field] = 0  # only the count matters: the generator writes the length
        self.frames += frames
        self.consume(0, frames * lay.message_symbols)
        self.produce(0, frames * lay.payload_elements)
        self.produce(1, frames * lay.length_field)
        return gr.WORK_CALLED_PRODUCE


class ofdm_frame_demapper(gr.basic_block):
    """Received payload elements (tagged by the header parser at each frame) -> message symbols, tagged.

    Output tags at each frame's first symbol: frame_number (uint64,
    absolute), batch_index (uint64) and, on a batch's first frame,
    packet_len (long, the batch's length in samples) or, on its later
    frames, batch_offset (long, samples into the batch): what
    model_free_rx frames batches by.
    """

    def __init__(self, layout, frames_per_batch=1, scale=1.0, metrics_every=0):
        gr.basic_block.__init__(self, name="ofdm_frame_demapper", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.layout = layout
        self.frames_per_batch = validate.integer("frames_per_batch", frames_per_batch, 1)
        self.metrics_every = validate.integer("metrics_every", metrics_every, 0)
        self._scale = np.float32(scale)
        self.set_output_multiple(layout.message_symbols)
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self._counter = ofdm.FrameCounter()
        self._keys = {k: pmt.intern(k) for k in (FRAME_NUMBER_TAG, CHAN_TAPS_TAG, FRAME_TAG, BATCH_INDEX_TAG,
                                                   BATCH_OFFSET_TAG, PACKET_LEN_TAG)}
        self._srcid = pmt.intern(self.alias())
        half = layout.fft_len // 2
        self._csi_index = np.asarray(layout.data_carriers) + half  # FFT-shifted positions of the data carriers
        self.frames_detected = self.headers_failed = self.frames_out = self.misframed = 0
        self._taps = {}  # 12-bit frame counter -> channel estimate, from the header messages
        self.message_port_register_out(pmt.intern(CSI_PORT))
        self.message_port_register_out(pmt.intern(METRICS_PORT))
        self.message_port_register_in(pmt.intern(HEADER_PORT))
        self.set_msg_handler(pmt.intern(HEADER_PORT), self._on_header)

    def _on_header(self, msg):
        # Every header the parser tried: a dict when it decoded, #f when its CRC failed. A decoded
        # header carries the channel estimate from the sync symbols: kept for the frame's csi. The
        # parser queues this message before its payload can reach work(), which sees it after.
        self.frames_detected += 1
        if not pmt.is_dict(msg):
            self.headers_failed += 1
            return
        number = pmt.dict_ref(msg, self._keys[FRAME_NUMBER_TAG], pmt.PMT_NIL)
        taps = pmt.dict_ref(msg, self._keys[CHAN_TAPS_TAG], pmt.PMT_NIL)
        if pmt.is_integer(number) and pmt.is_c32vector(taps):
            self._taps[pmt.to_long(number)] = taps
            while len(self._taps) > 64:
                self._taps.pop(next(iter(self._taps)))

    def forecast(self, noutput_items, ninputs):
        return [noutput_items // self.layout.message_symbols * self.layout.payload_elements]

    def general_work(self, input_items, output_items):
        lay = self.layout
        y, out = input_items[0], output_items[0]
        E, S = lay.payload_elements, lay.message_symbols
        start = self.nitems_read(0)
        number_tags = self.get_tags_in_window(0, 0, len(y), self._keys[FRAME_NUMBER_TAG])
        numbers = {t.offset - start: t.value for t in number_tags}
        if 0 not in numbers:
            # Not at a frame start (the stream began mid-frame): skip to the next frame's tag.
            skip = min([o for o in numbers if o > 0], default=len(y))
            self.misframed += 1
            self.consume(0, skip)
            return 0
        frames = min(len(out) // S, len(y) // E)
        produced, pos = 0, 0
        written = self.nitems_written(0)
        for _ in range(frames):
            if pos not in numbers or pos + E > len(y):
                break
            later = [o for o in numbers if pos < o < pos + E]
            if later:  # a frame shorter than the layout's: drop it, resynchronise on the next tag
                self.misframed += 1
                pos = later[0]
                continue
            counter = pmt.to_long(numbers[pos])
            frame = self._counter.push(counter)
            taps = self._taps.pop(counter, None)
            if frame is not None:
                out[produced * S:(produced + 1) * S] = lay.from_payload(y[pos:pos + E]).reshape(-1) * self._scale
                self._tag(written + produced * S, frame)
                self._publish_csi(frame, taps)
                produced += 1
                self.frames_out += 1
                if self.metrics_every and self.frames_out % self.metrics_every == 0:
                    self.message_port_pub(pmt.intern(METRICS_PORT), dict_message(self.counters()))
            pos += E
        self.consume(0, pos)
        return produced * S

    def _tag(self, offset, frame):
        batch, position = ofdm.batch_of_frame(frame, self.frames_per_batch, self.layout.messages_per_frame,
                                              self.layout.n)
        k = self._keys
        self.add_item_tag(0, offset, k[FRAME_TAG], pmt.from_uint64(frame), self._srcid)
        self.add_item_tag(0, offset, k[BATCH_INDEX_TAG], pmt.from_uint64(batch), self._srcid)
        if position == 0:
            self.add_item_tag(0, offset, k[PACKET_LEN_TAG],
                              pmt.from_long(self.frames_per_batch * self.layout.message_symbols), self._srcid)
        else:
            self.add_item_tag(0, offset, k[BATCH_OFFSET_TAG], pmt.from_long(position), self._srcid)

    def _publish_csi(self, frame, taps):
        if taps is None or not pmt.is_c32vector(taps):
            return
        h = np.asarray(pmt.c32vector_elements(taps), dtype=np.complex64)
        if len(h) != self.layout.fft_len:
            return
        meta = dict_message({"frame_number": frame,
                             "batch_index": frame // self.frames_per_batch})
        data = h[self._csi_index]
        self.message_port_pub(pmt.intern(CSI_PORT), pmt.cons(meta, pmt.init_c32vector(len(data), data)))

    def counters(self):
        """frames_detected (headers tried), headers_failed, frames_out, frames_lost (gaps in frame numbers),
        frames_repeated, misframed (payloads that did not match the layout)."""
        return {"frames_detected": self.frames_detected, "headers_failed": self.headers_failed,
                "frames_out": self.frames_out, "frames_lost": self._counter.lost,
                "frames_repeated": self._counter.repeated, "misframed": self.misframed}
