"""nn_encoder: message indices -> learned channel symbols (GNU Radio block)."""
import numpy as np
from gnuradio import gr

from .block_common import MAX_M, OutOfRangeWarning, SwappableNetwork, keep_alive, validate_sizes


class nn_encoder(SwappableNetwork, OutOfRangeWarning, gr.interp_block):
    """Learned transmitter: one message index in, n complex symbols out.

    Inference is a lookup in the trained encoder's symbol table (the encoder
    is a deterministic function of the message), done for the whole buffer at
    once. Live training of a transmitter is model_free_tx.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e .safetensors checkpoint holding an
        encoder (a link or a transmitter file); refused at construction
        (checkpoint.CheckpointError, a ValueError naming the file and the
        reason) if it cannot be read, any of its tensors is damaged, or its
        M or n differ from the parameters below.
    M : int in [2, 256], number of messages.
    n : int >= 1, complex symbols per message (the interpolation).

    Ports
    -----
    in 0 : uint8 stream, message indices in [0, M). An index >= M is out of
        range: its n output symbols are 0 (no energy is sent), it is counted
        (out_of_range()), and one warning is logged per burst of bad input
        (the first bad item after a work() call with none), not per item.
    out 0 : complex64 stream, n symbols per input item, average energy 1 per
        symbol (Es = 1). Stream tags pass through, their offsets scaled by n.
    weights (message in) : PMT u8vector of safetensors bytes (or a PDU whose
        cdr is one), as checkpoint.to_bytes writes: a link or transmitter
        checkpoint with this block's M, n and mode (model_free_tx publishes
        them). The symbol table is swapped between two work() calls. A
        malformed or mismatched message is logged as an error and dropped;
        the current weights stay.

    Throughput is set by the per-call cost of a Python block, so by how many
    items each work() call gets (bench/throughput.py measures it); the C++
    chunks_to_symbols_bc with the table of `gr_e2e export-table` is the fast
    path for a fixed encoder.
    """

    _NETWORK = "encoder"

    def __init__(self, checkpoint, M, n):
        self.M, self.n = validate_sizes(M, n)
        self._config = None
        config, encoder = self._load(checkpoint)
        gr.interp_block.__init__(self, name="nn_encoder", in_sig=[np.uint8], out_sig=[np.complex64], interp=self.n)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._out_of_range = 0
        self._install(config, encoder)
        self._register_weights_port()

    def _install(self, config, encoder):
        # 256 rows, those >= M zero, so out-of-range indices need no branch in
        # work(); one reference assignment swaps the table atomically.
        table = np.zeros((MAX_M, self.n), dtype=np.complex64)
        table[:self.M] = encoder.symbol_table()
        self._config = config
        self._table = table

    def work(self, input_items, output_items):
        msgs = input_items[0]
        k = len(msgs)
        table = self._table  # one read: a swap mid-call cannot mix two tables
        np.take(table, msgs, axis=0, out=output_items[0][:k * self.n].reshape(k, self.n))
        bad = int(np.count_nonzero(msgs >= self.M)) if self.M < MAX_M else 0
        self._out_of_range += bad
        self._warn_out_of_range(bad, self._out_of_range)
        return k * self.n

    def out_of_range(self):
        """Number of input message indices >= M seen so far."""
        return self._out_of_range

    def symbol_table(self):
        """Current codebook: complex64 [M, n] (a copy)."""
        return self._table[:self.M].copy()
