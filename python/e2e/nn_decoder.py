"""nn_decoder: received symbols -> decided message (GNU Radio hier block).

A Python block pays a fixed cost of about 150 us per work() call (the
gateway, the GIL, NumPy views of the buffers), so how many messages each
call carries decides its throughput. GNU Radio hands a block at most what
its upstream buffer holds, and with the default buffer (8192 complex items)
a decoder sees ~1024 messages per call: 0.1 of the stock C++ chain
(bench/throughput.py). nn_decoder therefore puts a stock pass-through block
with a large output buffer in front of the network block: while the network
works on one chunk, the next one accumulates, up to INPUT_BUFFER_ITEMS.
Nothing waits for a full batch, so a slow stream is decoded as it arrives
and the last messages of a finite stream are decoded too.
"""
import numpy as np
import torch
from gnuradio import blocks, gr

from .block_common import WEIGHTS_PORT, SwappableNetwork, keep_alive, validate_sizes
from .core import validate
from .core.models import decide, interleaved_decoder, received_tensor

# The pass-through's output buffer: 2^19 complex items (4 MiB), i.e. up to
# 2^18 items per call of the network block (GNU Radio fills buffers halfway).
# Measured on the (16,) decoder: 2^16 -> 0.46 of the stock chain, 2^18 -> 0.57,
# 2^20 -> 0.64; 2^19 keeps the buffer small for a radio application.
INPUT_BUFFER_ITEMS = 1 << 19
FORWARD_MESSAGES = 4096  # messages per forward pass inside one work() call


class network_decoder(SwappableNetwork, gr.decim_block):
    """The network itself: n complex symbols in, one decided message out.

    The whole work() buffer is decoded in one batch: [k*n] complex64 ->
    [k, n] -> real float32 [k, 2n] (real parts, then imaginary parts) ->
    decoder network -> logits [k, M] -> decided message (models.decide).
    nn_decoder wraps it; use this block directly only to control its input
    buffer yourself. Parameters and ports are nn_decoder's.
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
        # publishes the new network atomically, between two calls. The pair
        # holds the network that reads the input buffer without a copy when
        # there is one (models.interleaved_decoder).
        self._config = config
        fast = interleaved_decoder(decoder)
        self._decoder = (fast, True) if fast is not None else (decoder, False)

    def work(self, input_items, output_items):
        decided = output_items[0]
        k = len(decided)
        decoder, interleaved = self._decoder  # one read: a swap mid-call cannot mix two networks
        y = input_items[0][:k * self.n].reshape(k, self.n)
        with torch.inference_mode():
            # Slices that keep the layers' activations in cache: a (16,) decoder runs
            # 177 Msym/s on 4096 messages at a time and 131 on 16384 (bench/profile_decoder.py).
            for lo in range(0, k, FORWARD_MESSAGES):
                hi = min(lo + FORWARD_MESSAGES, k)
                logits = decoder(torch.from_numpy(y[lo:hi].view(np.float32)) if interleaved
                                 else received_tensor(y[lo:hi]))
                decided[lo:hi] = decide(logits).numpy()
                if self.probabilities:
                    output_items[1][lo:hi] = torch.softmax(logits, dim=1).numpy()
        return k


class nn_decoder(gr.hier_block2):
    """Learned receiver: n complex symbols in, one decided message out.

    Inside: a stock pass-through with a large output buffer (see the module
    docstring) -> network_decoder. Live training of a receiver is
    model_free_rx.

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
    batch_messages : int >= 1, the fewest messages decoded per call (GNU
        Radio's output multiple). 1, the default, decodes whatever has
        arrived (and, thanks to the input buffer, in large chunks when the
        stream is fast). Larger values add a little speed on continuous
        streams at the price of batch_messages * n samples of latency and,
        on a FINITE stream, of the last partial batch, which GNU Radio never
        hands to the block (bench/throughput.py measures both).

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

    def __init__(self, checkpoint, M, n, probabilities=False, torch_threads=1, batch_messages=1):
        self.network = network_decoder(checkpoint, M, n, probabilities=probabilities,
                                       torch_threads=torch_threads, batch_messages=batch_messages)
        outputs = [gr.sizeof_char] + ([gr.sizeof_float * self.network.M] if self.network.probabilities else [])
        gr.hier_block2.__init__(self, "nn_decoder", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signaturev(len(outputs), len(outputs), outputs))
        # skiphead(0) passes every item through untouched; its only job is the buffer.
        self.input_buffer = blocks.skiphead(gr.sizeof_gr_complex, 0)
        self.input_buffer.set_min_output_buffer(max(INPUT_BUFFER_ITEMS, 4 * self.network.n))
        self.connect(self, self.input_buffer, self.network)
        for port in range(len(outputs)):
            self.connect((self.network, port), (self, port))
        self.message_port_register_hier_in(WEIGHTS_PORT)
        self.msg_connect(self, WEIGHTS_PORT, self.network, WEIGHTS_PORT)

    M = property(lambda self: self.network.M)
    n = property(lambda self: self.network.n)

    @property
    def logger(self):
        return self.network.logger

    @logger.setter
    def logger(self, value):  # tests and applications may route the network block's log
        self.network.logger = value

    def _post(self, port, msg):
        # A hier block's message ports exist only as connections in the
        # flattened graph; a message posted to the wrapper goes to the network.
        self.network._post(port, msg)

    def set_checkpoint(self, checkpoint):
        """Load new weights from a file (GRC callback); False (and a logged error) if refused."""
        return self.network.set_checkpoint(checkpoint)
