"""block_error_counter: running block (and bit) error rate of a message link."""
import threading

import numpy as np
import pmt
from gnuradio import gr

from .block_common import METRICS_PORT, dict_message, keep_alive
from .core import validate

# Set bits of every byte value: popcount of an XOR is a table lookup.
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int64)


class block_error_counter(gr.sync_block):
    """Compares sent and decided messages item by item and keeps score.

    Parameters
    ----------
    bits_per_message : int in [0, 8]; > 0 also counts bit errors, the
        popcount of (sent XOR decided), with that many bits per message
        (k = log2 M for a power-of-two M). 0 counts blocks only.
    report_every : int >= 0; > 0 publishes a metrics message every
        report_every messages. 0 publishes nothing.

    Ports
    -----
    in 0 : uint8 stream, sent message indices.
    in 1 : uint8 stream, decided message indices, aligned item for item with
        in 0 (the two streams must start at the same message).
    out 0 : float32 stream, the running BLER (errors / blocks so far,
        counted since construction or the last reset()) after each message;
        feed a QT GUI number sink or a null sink.
    metrics (message out) : PMT dict {blocks: long, errors: long,
        bler: double, bit_errors: long, ber: double}, the running totals at
        each multiple of report_every messages; ber is NaN when
        bits_per_message is 0.
    """

    def __init__(self, bits_per_message=0, report_every=0):
        bits_per_message = validate.integer("bits_per_message", bits_per_message, 0, 8)
        report_every = validate.integer("report_every", report_every, 0)
        gr.sync_block.__init__(self, name="block_error_counter", in_sig=[np.uint8, np.uint8],
                               out_sig=[np.float32])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.bits_per_message = int(bits_per_message)
        self.report_every = int(report_every)
        self._lock = threading.Lock()  # reset() may come from a GUI thread
        self._blocks = self._errors = self._bit_errors = 0
        self.message_port_register_out(pmt.intern(METRICS_PORT))

    def work(self, input_items, output_items):
        sent, decided = input_items[0], input_items[1]
        k = len(output_items[0])
        sent, decided = sent[:k], decided[:k]
        wrong = sent != decided
        with self._lock:
            blocks0, errors0, bit_errors0 = self._blocks, self._errors, self._bit_errors
            cum_errors = errors0 + np.cumsum(wrong, dtype=np.int64)
            counted = blocks0 + np.arange(1, k + 1, dtype=np.int64)
            output_items[0][:] = cum_errors / counted
            cum_bits = None
            if self.bits_per_message:
                cum_bits = bit_errors0 + np.cumsum(_POPCOUNT[sent ^ decided])
            self._blocks = blocks0 + k
            self._errors = int(cum_errors[-1]) if k else errors0
            if cum_bits is not None and k:
                self._bit_errors = int(cum_bits[-1])
        if self.report_every and k:
            # Report the totals exactly at each multiple of report_every, so
            # what is published does not depend on how buffers were cut.
            first = (blocks0 // self.report_every + 1) * self.report_every
            for total in range(first, blocks0 + k + 1, self.report_every):
                i = total - blocks0 - 1
                bit_errors = int(cum_bits[i]) if cum_bits is not None else 0
                self._publish(total, int(cum_errors[i]), bit_errors)
        return k

    def _publish(self, blocks, errors, bit_errors):
        bits = blocks * self.bits_per_message
        self.message_port_pub(pmt.intern(METRICS_PORT), dict_message({
            "blocks": blocks, "errors": errors, "bler": errors / blocks, "bit_errors": bit_errors,
            "ber": bit_errors / bits if bits else float("nan")}))

    def blocks(self):
        """Messages compared so far."""
        return self._blocks

    def errors(self):
        """Messages decided wrongly so far."""
        return self._errors

    def bler(self):
        """errors() / blocks(); NaN before the first message."""
        with self._lock:
            return self._errors / self._blocks if self._blocks else float("nan")

    def bit_errors(self):
        """Bit errors so far (0 when bits_per_message is 0)."""
        return self._bit_errors

    def bits(self):
        """Bits compared so far: blocks() * bits_per_message."""
        return self._blocks * self.bits_per_message

    def ber(self):
        """bit_errors() / bits(); NaN when no bits were counted."""
        with self._lock:
            bits = self._blocks * self.bits_per_message
            return self._bit_errors / bits if bits else float("nan")

    def reset(self):
        """Start counting again from zero."""
        with self._lock:
            self._blocks = self._errors = self._bit_errors = 0
