"""Tables that build a Hamming (7,4) BPSK link from GNU Radio's stock blocks.

The classical baseline next to a learned M=16, n=7 link, in a flowgraph
and without a Python block in its data path:

    uint8 message m in [0, 16)
      -> digital.chunks_to_symbols_bc(hamming74_symbol_table(), 7)
                                        # 7 real BPSK symbols, bit c -> 1 - 2c
      -> (channel: noise, perturbation)
      -> blocks.complex_to_real -> digital.binary_slicer_fb
                                        # 1 where the real part >= 0, i.e. bit 0
      -> blocks.pack_k_bits_bb(7)       # 7 slicer outputs -> one byte, first bit MSB
      -> digital.map_bb(hamming74_decoding_table())
                                        # syndrome decoding -> message

Message order, codewords and decoding are those of core.baselines
(hamming74_encode, hamming74_syndrome_decode, hamming74_link('hard')), so
the stock chain decides exactly what baselines' hard-decision receiver does.
"""
import numpy as np

from .core import baselines

K_BITS = 7  # channel uses (code bits) per message


def hamming74_symbol_table():
    """The 16 BPSK codewords, message after message, for chunks_to_symbols_bc with D = 7.

    Returns a list of 112 complex numbers: entries 7m .. 7m+6 are the
    codeword of message m, bit c sent as 1 - 2c (real, Es = 1 per channel
    use), as baselines.hamming74_link sends it.
    """
    bits = baselines.hamming74_encode(np.arange(16))
    return [complex(1.0 - 2.0 * b) for b in bits.reshape(-1)]


def hamming74_decoding_table():
    """Packed hard decisions -> decided message, for map_bb: a list of 128 ints in [0, 16).

    Entry v is the message that syndrome decoding decides when
    pack_k_bits_bb(7) outputs v, i.e. when the binary slicer's 7 outputs,
    first one in the most significant bit, spell v. The slicer outputs 1 for
    a non-negative real part, which BPSK sends for code bit 0, so the code
    bits are the complement of the slicer's.
    """
    v = np.arange(1 << K_BITS)
    slicer = (v[:, None] >> np.arange(K_BITS - 1, -1, -1)) & 1
    return [int(m) for m in baselines.hamming74_syndrome_decode((1 - slicer).astype(np.uint8))]
