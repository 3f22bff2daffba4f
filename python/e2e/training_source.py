"""training_source: deterministic training messages in tagged batches (GNU Radio block)."""
import numpy as np
import pmt
from gnuradio import gr

from .block_common import BATCH_INDEX_TAG, PACKET_LEN_TAG, keep_alive, validate_sizes
from .core import prng, validate


class training_source(gr.sync_block):
    """Training messages for live model-free training, one batch at a time.

    Batch b (b = 0, 1, ...) is prng.batch_messages(seed, b, batch_size, M):
    a pure function of (seed, b), so a receiver regenerates it from the batch
    index alone (model_free_rx, with the same seed).

    Parameters
    ----------
    M : int in [2, 256], number of messages (items are uint8).
    batch_size : int >= 1, messages per batch.
    seed : int >= 0, the training seed; model_free_tx's and model_free_rx's must be the same.
    num_batches : int >= 0; > 0 ends the stream after that many batches,
        0 runs forever.

    Ports
    -----
    out 0 : uint8 stream of message indices in [0, M), emitted in whole
        batches (output multiple batch_size). The first item of batch b
        carries two tags: 'packet_len' (long, batch_size; a GNU Radio length
        tag) and 'batch_index' (uint64, b).
    """

    def __init__(self, M, batch_size, seed, num_batches=0):
        M, _ = validate_sizes(M, 1)
        batch_size = validate.integer("batch_size", batch_size, 1)
        seed = validate.integer("seed", seed, 0)
        num_batches = validate.integer("num_batches", num_batches, 0)
        gr.sync_block.__init__(self, name="training_source", in_sig=None, out_sig=[np.uint8])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.set_output_multiple(batch_size)
        self.M, self.batch_size, self.seed, self.num_batches = M, batch_size, seed, num_batches
        self._next = 0
        self._len_key, self._index_key = pmt.intern(PACKET_LEN_TAG), pmt.intern(BATCH_INDEX_TAG)
        self._len_value = pmt.from_long(batch_size)
        self._srcid = pmt.intern("training_source")

    def work(self, input_items, output_items):
        out = output_items[0]
        batches = len(out) // self.batch_size
        if self.num_batches:
            batches = min(batches, self.num_batches - self._next)
            if batches <= 0:
                return -1  # WORK_DONE
        start = self.nitems_written(0)
        for j in range(batches):
            b = self._next + j
            lo = j * self.batch_size
            out[lo:lo + self.batch_size] = prng.batch_messages(self.seed, b, self.batch_size, self.M)
            self.add_item_tag(0, start + lo, self._len_key, self._len_value, self._srcid)
            self.add_item_tag(0, start + lo, self._index_key, pmt.from_uint64(b), self._srcid)
        self._next += batches
        return batches * self.batch_size

    def batches_sent(self):
        """Batches emitted so far."""
        return self._next
