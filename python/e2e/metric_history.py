"""metric_history: one metric of a `metrics` message stream -> its recent history as a PDU, for a plot."""
import math
import threading
from collections import deque

import pmt
from gnuradio import gr

from .block_common import METRICS_PORT, keep_alive
from .core import validate

HISTORY_PORT = "history"


class metric_history(gr.basic_block):
    """Keeps the last `length` values of one metric and publishes them after each new value.

    The training blocks and the error counter publish their counters on a
    `metrics` port as a PMT dict. A stock QT GUI Time Sink of type "Float
    Message" plots every PDU it receives as its whole trace (its length
    becomes the x axis), so feeding it this block's output draws the metric
    as a curve over the run: one point per metrics message, the oldest on
    the left.

    Parameters
    ----------
    key : str, the metric to keep, a key of the metrics dict (e.g. 'loss',
        'bler', 'receiver_steps').
    length : int >= 2, how many of the latest values the history holds.

    Ports
    -----
    metrics (message in) : PMT dict {name: number}, as every `metrics`
        port of gr-e2e publishes. A message without `key`, or whose value
        is not a finite number (NaN before the first receiver batch), adds
        no point and is counted in skipped().
    history (message out) : PDU (dict {key: symbol, count: long} .
        f32vector [min(count, length)]), the values kept, oldest first;
        count is the number of points received so far.
    """

    def __init__(self, key, length=500):
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must name a metric (a non-empty str, e.g. 'loss'), got {key!r}")
        self.key = key
        self.length = validate.integer("length", length, 2)
        gr.basic_block.__init__(self, name="metric_history", in_sig=None, out_sig=None)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._lock = threading.Lock()  # history() is read from GUI and probe threads
        self._values = deque(maxlen=self.length)
        self._count = self._skipped = 0
        self._pmt_key = pmt.intern(self.key)
        self.message_port_register_in(pmt.intern(METRICS_PORT))
        self.set_msg_handler(pmt.intern(METRICS_PORT), self._on_metrics)
        self.message_port_register_out(pmt.intern(HISTORY_PORT))

    def _on_metrics(self, msg):
        value = _number(pmt.dict_ref(msg, self._pmt_key, pmt.PMT_NIL)) if pmt.is_dict(msg) else None
        if value is None or not math.isfinite(value):
            with self._lock:
                self._skipped += 1
            return
        with self._lock:
            self._values.append(value)
            self._count += 1
            values, count = list(self._values), self._count  # a list: pybind would try an array as one float
        meta = pmt.dict_add(pmt.make_dict(), pmt.intern("key"), self._pmt_key)
        meta = pmt.dict_add(meta, pmt.intern("count"), pmt.from_long(count))
        self.message_port_pub(pmt.intern(HISTORY_PORT), pmt.cons(meta, pmt.init_f32vector(len(values), values)))

    def history(self):
        """The values kept, oldest first (a list of floats)."""
        with self._lock:
            return list(self._values)

    def count(self):
        """Points received so far (also those that no longer fit in the history)."""
        with self._lock:
            return self._count

    def skipped(self):
        """Metrics messages that added no point (no such key, or not a finite number)."""
        with self._lock:
            return self._skipped


def _number(value):
    """A PMT long, uint64, double or bool as a float; None for anything else."""
    if pmt.is_bool(value):
        return float(pmt.to_bool(value))
    if pmt.is_uint64(value):
        return float(pmt.to_uint64(value))
    if pmt.is_integer(value):
        return float(pmt.to_long(value))
    if pmt.is_real(value):
        return pmt.to_double(value)
    return None
