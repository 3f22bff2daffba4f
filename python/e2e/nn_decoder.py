"""nn_decoder: received symbols -> decided message (GNU Radio block)."""
import numpy as np
import torch
from gnuradio import gr

from .block_common import SwappableNetwork, keep_alive, validate_sizes
from .core import validate
from .core.models import decide, received_tensor


class nn_decoder(SwappableNetwork, gr.decim_block):
    """Learned receiver: n complex symbols in, one decided message out.

    The whole work() buffer is decoded in one batch: [k*n] complex64 ->
    [k, n] -> real float32 [k, 2n] (real parts, then imaginary parts) ->
    decoder network -> logits [k, M] -> decided message (models.decide).
    Live training of a receiver is model_free_rx.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e .safetensors checkpoint holding a
        decoder (a link or a receiver file); refused at construction
        (checkpoint.CheckpointError, a ValueError naming the file and the
        reason) if it cannot be read, any of its tensors is damaged, or its
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
        (GNU Radio's output multiple). A Python block pays a fixed cost per
        work() call whatever it computes, so on continuous streams (a radio)
        a few thousand decode several times faster (bench/throughput.py), at
        the cost of batch_messages * n samples of latency. The price on a
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
        cdr is one), as checkpoint.to_bytes writes: a link or receiver
        checkpoint with this block's M, n and mode (model_free_rx publishes
        them). The network is swapped between two work() calls. A malformed
        or mismatched message is logged as an error and dropped; the current
        weights stay.
    """

    _NETWORK = "decoder"

    def __init__(self, checkpoint, M, n, probabilities=False, torch_threads=1, batch_messages=1):
        self.M, self.n = validate_sizes(M, n)
        self.probabilities = validate.boolean("probabilities", probabilities)
        torch_threads = validate.integer("torch_threads", torch_threads, 0)
        batch_messages = validate.integer("batch_messages", batch_messages, 1)
        self._config = None
        config, decoder = self._load(checkpoint)
        out_sig = [np.uint8] + ([(np.float32, self.M)] if self.probabilities else [])
        gr.decim_block.__init__(self, name="nn_decoder", in_sig=[np.complex64], out_sig=out_sig, decim=self.n)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        if batch_messages > 1:
            self.set_output_multiple(batch_messages)
        self._install(config, decoder)
        self._register_weights_port()

    def _install(self, config, decoder):
        # work() reads only self._decoder, once per call: assigning it last
        # publishes the new network atomically, between two calls.
        self._config = config
        self._decoder = decoder

    def work(self, input_items, output_items):
        decided = output_items[0]
        k = len(decided)
        decoder = self._decoder  # one read: a swap mid-call cannot mix two networks
        with torch.inference_mode():
            logits = decoder(received_tensor(input_items[0][:k * self.n].reshape(k, self.n)))
            decided[:] = decide(logits).numpy()
            if self.probabilities:
                output_items[1][:] = torch.softmax(logits, dim=1).numpy()
        return k
