"""nn_decoder: received symbols -> decided message (GNU Radio block)."""
import numbers

import numpy as np
import torch
from gnuradio import gr

from .block_common import SwappableNetwork, validate_block_params
from .core import checkpoint as ckpt
from .core.models import complex_to_real


class nn_decoder(SwappableNetwork, gr.decim_block):
    """Learned receiver: n complex symbols in, one decided message out.

    The whole work() buffer is decoded in one batch: [k*n] complex64 ->
    [k, n] -> real float32 [k, 2n] (real parts, then imaginary parts) ->
    decoder network -> logits [k, M] -> argmax.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e .safetensors checkpoint holding a
        decoder; refused at construction (checkpoint.CheckpointError, a
        ValueError naming the file and the reason) if it cannot be read or its
        M or n differ from the parameters below.
    M : int in [2, 256], number of messages.
    n : int >= 1, complex symbols per message (the decimation).
    probabilities : bool, add output 1 with the M message probabilities.
    torch_threads : int; > 0 calls torch.set_num_threads(torch_threads),
        which is PROCESS-WIDE (every torch user in this Python process,
        other blocks and training included); 0 leaves torch's setting alone.
        One thread is the default because each GNU Radio block already runs
        in its own thread and the networks are small.
    batch_messages : int >= 1, the fewest messages decoded per work() call
        (GNU Radio's output multiple). A Python block pays a fixed ~150 us
        per work() call whatever it computes, and the scheduler otherwise
        hands it a few hundred messages at a time, so on continuous streams
        (a radio) 4096 or more runs several times faster (bench/throughput.py)
        at the cost of batch_messages * n samples of latency. The price on a
        FINITE stream: GNU Radio never gives a block less than its output
        multiple, so the last partial batch (< batch_messages messages) is
        not decoded. Keep 1 (the default) for file or vector sources.

    Ports
    -----
    in 0 : complex64 stream, n symbols per message, message boundaries at
        multiples of n from the first item.
    out 0 : uint8 stream, decided message index in [0, M), one per n inputs.
    out 1 (only if probabilities) : float32 vectors of length M, the softmax
        of the decoder's logits (sums to 1), one per message.
    weights (message in) : PMT u8vector of safetensors bytes (or a PDU whose
        cdr is one), as checkpoint.to_bytes writes. It must hold a decoder
        with this block's M, n and mode. The network is swapped between two
        work() calls. A malformed or mismatched message is logged as an error
        and dropped; the current weights stay.

    Throughput is set by the per-call cost of a Python block (~0.15 ms of
    gateway and forecast overhead plus ~45 us of torch for 500 messages), so
    by how many messages each work() call gets: with default buffers about
    11-15 M symbols/s against ~66 M/s for the C++ constellation_decoder in
    the same run; with a 458752-item min output buffer on the block feeding
    this one (GRC: Advanced > Min Output Buffer) about 59 M/s.
    set_output_multiple would batch too, but a finite stream then loses its
    last partial batch (up to output_multiple - 1 messages), so it is not set.
    """

    def __init__(self, checkpoint, M, n, probabilities=False, torch_threads=1, batch_messages=1):
        M, n = validate_block_params(M, n)
        if (isinstance(torch_threads, bool) or not isinstance(torch_threads, numbers.Integral)
                or torch_threads < 0):
            raise ValueError(f"torch_threads must be an integer >= 0, got {torch_threads!r}")
        if (isinstance(batch_messages, bool) or not isinstance(batch_messages, numbers.Integral)
                or batch_messages < 1):
            raise ValueError(f"batch_messages must be an integer >= 1, got {batch_messages!r}")
        config, _, decoder = ckpt.load(checkpoint, need=("decoder",), expect={"M": M, "n": n})
        out_sig = [np.uint8] + ([(np.float32, M)] if probabilities else [])
        gr.decim_block.__init__(self, name="nn_decoder", in_sig=[np.complex64],
                                out_sig=out_sig, decim=n)
        if torch_threads > 0:
            torch.set_num_threads(int(torch_threads))
        if batch_messages > 1:
            self.set_output_multiple(int(batch_messages))
        self.M, self.n = M, n
        self.probabilities = bool(probabilities)
        self._install(config, decoder)
        self._register_weights_port()

    _NETWORK = "decoder"

    def _install(self, config, decoder):
        # work() reads only self._decoder, once per call: assigning it last
        # publishes the new network atomically, between two calls.
        self._config = config
        self._decoder = decoder

    def work(self, input_items, output_items):
        decided = output_items[0]
        k = len(decided)
        decoder = self._decoder  # one read: a swap mid-call cannot mix two networks
        y = input_items[0][:k * self.n].reshape(k, self.n)
        with torch.inference_mode():
            logits = decoder(torch.from_numpy(complex_to_real(y)))
            # max().indices: ~2x faster than argmax() on [k, M] float32 on CPU.
            decided[:] = logits.max(dim=1).indices.numpy()
            if self.probabilities:
                output_items[1][:] = torch.softmax(logits, dim=1).numpy()
        return k
