"""ofdm_e2e_rx: OFDM frames -> learned message symbols, with GNU Radio's own sync and OFDM blocks (hier block)."""
import numpy as np
from gnuradio import analog, blocks, digital, fft, gr

from .block_common import METRICS_PORT
from .core import ofdm, validate
from .ofdm_e2e_tx import header_formatter, layout_from
from .ofdm_frames import (CSI_PORT, FRAME_LEN_TAG, HEADER_PORT, ofdm_frame_demapper, ofdm_header_combiner,
                          ofdm_payload_equalizer)

EQUALIZERS = ("one-tap", "tracking", "none")


class ofdm_e2e_rx(gr.hier_block2):
    """OFDM receiver for learned messages: stock sync, header parsing and equalisation, then the messages.

    in (complex64): baseband samples (a radio, a simulated channel). Stream
        tags on the input are dropped: only what crossed the channel counts.
    out (complex64): the message symbols of every frame received, n per
        message, messages_per_frame per frame, for nn_decoder or
        model_free_rx. Each frame's first symbol is tagged frame_number
        (absolute, unwrapped from the header's 12-bit counter), batch_index
        (frame_number // frames_per_batch) and packet_len (the batch's
        length, on its first frame) or batch_offset (samples into the batch,
        on later frames): model_free_rx frames batches by them, so a lost or
        corrupt frame costs its batch and never shifts later ones.
    csi (message out): per frame a PDU (dict {frame_number, batch_index} .
        c32vector): the channel estimate of each data carrier, in the order
        of the layout's data carriers, from the sync symbols.
    metrics (message out): every metrics_every frames, a dict of counters():
        frames_detected, headers_failed, frames_out, frames_lost,
        frames_repeated, misframed.

    The chain, all stock but the demapper, the header combiner and the tracking equaliser: tag_gate -> ofdm_sync_sc_cfb
    (Schmidl & Cox: timing, fractional frequency offset) -> frequency
    correction -> header_payload_demux -> [header: FFT -> ofdm_chanest_vcvc
    (channel from the sync symbols) -> one-tap equaliser -> serializer ->
    the header bits' copies combined by maximum ratio
    (core.ofdm.combine_header) -> BPSK decisions -> packet_headerparser_b ->
    back to the demux] ->
    [payload: FFT -> equaliser -> serializer -> ofdm_frame_demapper
    (core.ofdm)]. The payload equaliser, by `equalizer`:
      'tracking' (default): ofdm_payload_equalizer: the sync symbols'
          channel estimate (passed on from the header) smoothed to a
          response inside the cyclic prefix, one-tap, and the phase a
          residual frequency offset adds each symbol removed using the
          pilots. Uncoded QPSK, 3-path channel with frequency and timing
          offset at 17.6 dB: message error rate 3.4e-4 against 3.2e-3 with
          'one-tap' (bench/ofdm_link.py).
      'one-tap': GNU Radio's ofdm_equalizer_static: every payload symbol
          divided by the raw estimate; no tracking.
      'none': nothing; the receiver network learns to equalise.

    Parameters
    ----------
    n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers,
        mapping : as ofdm_e2e_tx's (they must match).
    frames_per_batch : int >= 1, frames per training batch (batch_size =
        frames_per_batch * messages_per_frame).
    equalizer : 'tracking', 'one-tap' or 'none' (above).
    sync_threshold : float in (0, 1), Schmidl & Cox plateau threshold. Its
        timing metric peaks near (SNR / (1 + SNR))^2, about 0.6 at 5 dB, so
        GNU Radio's default of 0.9 misses every frame below about 13 dB;
        below about 0.6 the plateau's middle, and with it the timing and the
        fine frequency estimate, drift (measured noiseless on the 3-path
        test channel: error vector -55 dB at 0.6, -21 dB at 0.5).
    timing_offset : int in [-cp_len, cp_len], samples the FFT window starts
        after where Schmidl & Cox puts it; None: cp_len // 4. On the 3-path
        test channel the stock position picks up the previous symbol's echo
        (-32 dB error vector); 4 samples later, -55 dB; single-path channels
        do not mind.
    metrics_every : int >= 0, frames between metrics messages (0: none).
    """

    def __init__(self, n, messages_per_frame, fft_len=128, cp_len=16, data_carriers=(), pilot_carriers=(),
                 mapping="subcarrier", frames_per_batch=1, equalizer="tracking", sync_threshold=0.6, timing_offset=None,
                 metrics_every=0):
        layout = layout_from(n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers, mapping)
        validate.choice("equalizer", equalizer, EQUALIZERS)
        sync_threshold = validate.real("sync_threshold", sync_threshold, 0, 1, low_open=True, high_open=True)
        cp_len = validate.integer("cp_len", cp_len, 0)
        self.timing_offset = (cp_len // 4 if timing_offset is None
                              else validate.integer("timing_offset", timing_offset, -cp_len, cp_len))
        gr.hier_block2.__init__(self, "ofdm_e2e_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.layout = layout
        N, cp = layout.fft_len, layout.cp_len
        data, pilots = (list(layout.data_carriers),), (list(layout.pilot_carriers),)
        pilot_symbols = (list(layout.pilot_symbols),)
        sync1, sync2 = ofdm.sync_words(N, layout.data_carriers + layout.pilot_carriers)

        # Synchronisation: timing and fractional frequency offset, then cut header and payload apart.
        gate = blocks.tag_gate(gr.sizeof_gr_complex, False)
        sync = digital.ofdm_sync_sc_cfb(N, cp, False, sync_threshold)
        # The demux cuts the FFT window where the (delayed) data meets the trigger: less delay, a later window.
        delay = blocks.delay(gr.sizeof_gr_complex, N + cp - self.timing_offset)
        oscillator = analog.frequency_modulator_fc(-2.0 / N)
        mixer = blocks.multiply_cc()
        self.demux = digital.header_payload_demux(3, N, cp, FRAME_LEN_TAG, "", True)
        # GNU Radio 3.10.5 refuses frames longer than half the payload buffer: make room for ours.
        self.demux.set_min_output_buffer(1, 4 * (layout.frame_symbols + 1))
        self.connect(self, gate)
        self.connect(gate, sync)
        self.connect(gate, delay, (mixer, 0), (self.demux, 0))
        self.connect((sync, 0), oscillator, (mixer, 1))
        self.connect((sync, 1), (self.demux, 1))

        # Header: channel estimate from the sync symbols, one-tap equalised BPSK, the stock parser.
        bpsk = digital.constellation_bpsk()
        header_eq = digital.ofdm_frame_equalizer_vcvc(
            digital.ofdm_equalizer_simpledfe(N, bpsk.base(), data, pilots, pilot_symbols, 0).base(),
            cp, FRAME_LEN_TAG, True, 1)
        parser = digital.packet_headerparser_b(header_formatter(layout).formatter())
        combiner = ofdm_header_combiner(layout)
        self.connect((self.demux, 0), fft.fft_vcc(N, True, (), True), digital.ofdm_chanest_vcvc(sync1, sync2, 1),
                     header_eq, digital.ofdm_serializer_vcc(N, data, FRAME_LEN_TAG), combiner,
                     digital.constellation_decoder_cb(bpsk.base()), parser)
        self.msg_connect(parser, "header_data", self.demux, "header_data")

        # Payload: equalised (or not), serialised, mapped back to messages.
        chain = [(self.demux, 1), fft.fft_vcc(N, True, (), True)]
        if equalizer == "one-tap":
            chain.append(digital.ofdm_frame_equalizer_vcvc(
                digital.ofdm_equalizer_static(N, data, pilots, pilot_symbols, 0, True).base(), cp, FRAME_LEN_TAG))
        elif equalizer == "tracking":
            chain.append(ofdm_payload_equalizer(layout, self.timing_offset))
        chain.append(digital.ofdm_serializer_vcc(N, data, FRAME_LEN_TAG, "", 0, "", True))
        # The forward FFT is unnormalised: raw symbols come out sqrt(N) larger (the equaliser divides it out).
        self.demapper = ofdm_frame_demapper(layout, frames_per_batch, 1 / np.sqrt(N) if equalizer == "none" else 1.0,
                                            metrics_every)
        chain += [self.demapper, self]
        self.connect(*chain)
        self.msg_connect(parser, "header_data", self.demapper, HEADER_PORT)
        for port in (CSI_PORT, METRICS_PORT):
            self.message_port_register_hier_out(port)
            self.msg_connect(self.demapper, port, self, port)

    def counters(self):
        """Frames detected, headers failed, frames delivered, lost, repeated, misframed (a dict)."""
        return self.demapper.counters()
