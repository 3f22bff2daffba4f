"""ofdm_e2e_tx: learned message symbols -> OFDM frames, with GNU Radio's own OFDM blocks (hier block)."""
import numpy as np
from gnuradio import blocks, digital, fft, gr

from .core import ofdm, validate
from .ofdm_frames import FRAME_LEN_TAG, FRAME_NUMBER_TAG, LENGTH_TAG, ofdm_frame_mapper, ofdm_header_repeater


def header_formatter(layout):
    """The stock OFDM header (12-bit length, 12-bit frame number, CRC8) on the layout's data carriers."""
    return digital.packet_header_ofdm((list(layout.data_carriers),), 1, LENGTH_TAG, FRAME_LEN_TAG,
                                      FRAME_NUMBER_TAG, 1, ofdm.HEADER_BITS_PER_PAYLOAD_SYMBOL,
                                      scramble_header=False)


def layout_from(n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers, mapping):
    """An OfdmLayout from block parameters; empty carrier lists mean the paper's defaults."""
    return ofdm.OfdmLayout(n=n, messages_per_frame=messages_per_frame, fft_len=fft_len, cp_len=cp_len,
                           data_carriers=tuple(data_carriers) or None,
                           pilot_carriers=tuple(pilot_carriers) or None,
                           mapping=mapping)


class ofdm_e2e_tx(gr.hier_block2):
    """OFDM transmitter for learned messages: frames of message symbols on GNU Radio's stock OFDM chain.

    in (complex64): message symbols, n per message, from nn_encoder or
        model_free_tx (Es = 1). Every messages_per_frame messages make a
        frame; a training stream must start at batch 0 and each batch must
        fill frames_per_batch whole frames (batch_size = frames_per_batch *
        messages_per_frame), so that frame f carries batch
        f // frames_per_batch, which is all the receiver needs.
    out (complex64): baseband OFDM bursts, each tagged packet_len (samples),
        so a UHD sink sends each frame as a burst.

    The chain, all stock but the mapper and the header repeater:
    ofdm_frame_mapper (messages to resource elements, core.ofdm) -> [header:
    packet_headergenerator_bb with packet_header_ofdm (12-bit length, 12-bit
    frame number, CRC8) -> the 32 header bits repeated on the rest of the
    header symbol (3 copies on the paper's layout, far apart in frequency:
    core.ofdm.repeat_header) -> chunks_to_symbols (BPSK)] + [payload] ->
    tagged_stream_mux ->
    ofdm_carrier_allocator_cvc (two Schmidl & Cox sync symbols, pilots) ->
    IFFT (fft_vcc) -> ofdm_cyclic_prefixer (with `rolloff` samples of
    raised-cosine burst shaping) -> 1/sqrt(fft_len) (so noise of N0 per
    sample gives Es/N0 per resource element, Es = 1) -> burst_shaper_cc
    (gap_symbols of silence after each frame).

    Parameters
    ----------
    n : int >= 1, complex symbols per message.
    messages_per_frame : int >= 1, messages carried by a frame.
    fft_len : int, FFT size (paper: 128). cp_len : int < fft_len, cyclic
        prefix in samples (paper: 16).
    data_carriers, pilot_carriers : lists of signed carrier indices; empty:
        the paper's layout (6 guard carriers at each edge, DC unused, 4
        pilots; core.ofdm.default_carriers).
    mapping : 'subcarrier' (one message per carrier across n OFDM symbols,
        the paper's) or 'symbol' (n carriers of one OFDM symbol).
    rolloff : int in [0, cp_len), burst shaping length in samples.
    gap_symbols : int >= 0, OFDM symbols of silence after each frame
        (burst_shaper_cc). Frames sent back to back lose some frames to
        synchronisation (a trigger a few samples late hides the next
        frame's); over a radio, bursts have gaps anyway.
    """

    def __init__(self, n, messages_per_frame, fft_len=128, cp_len=16, data_carriers=(), pilot_carriers=(),
                 mapping="subcarrier", rolloff=0, gap_symbols=1):
        layout = layout_from(n, messages_per_frame, fft_len, cp_len, data_carriers, pilot_carriers, mapping)
        rolloff = validate.integer("rolloff", rolloff, 0, max(0, layout.cp_len - 1))
        gap = validate.integer("gap_symbols", gap_symbols, 0) * (layout.fft_len + layout.cp_len)
        gr.hier_block2.__init__(self, "ofdm_e2e_tx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.layout = layout
        self.mapper = ofdm_frame_mapper(layout)
        repeater = ofdm_header_repeater(layout)
        header_gen = digital.packet_headergenerator_bb(header_formatter(layout).base(), LENGTH_TAG)
        header_mod = digital.chunks_to_symbols_bc(digital.constellation_bpsk().points())
        mux = blocks.tagged_stream_mux(gr.sizeof_gr_complex, LENGTH_TAG, 1)
        sync1, sync2 = ofdm.sync_words(layout.fft_len, layout.data_carriers + layout.pilot_carriers)
        allocator = digital.ofdm_carrier_allocator_cvc(
            layout.fft_len, (list(layout.data_carriers),), (list(layout.pilot_carriers),),
            (list(layout.pilot_symbols),), (list(sync1), list(sync2)), LENGTH_TAG, True)
        ifft = fft.fft_vcc(layout.fft_len, False, (), True)
        prefixer = digital.ofdm_cyclic_prefixer(layout.fft_len, layout.fft_len + layout.cp_len, rolloff, LENGTH_TAG)
        # The IFFT is unnormalised: scale so a frame's payload keeps Es = 1 per occupied resource element.
        scale = blocks.multiply_const_cc(1.0 / np.sqrt(layout.fft_len))
        shaper = digital.burst_shaper_cc([], 0, gap, False, LENGTH_TAG)
        self.connect(self, self.mapper)
        self.connect((self.mapper, 1), header_gen, repeater, header_mod, (mux, 0))
        self.connect((self.mapper, 0), (mux, 1))
        self.connect(mux, allocator, ifft, prefixer, scale, shaper, self)

    def frames_sent(self):
        """Frames mapped so far."""
        return self.mapper.frames
