"""What the gr-e2e blocks share: port and tag names, PMT formats, keep_alive, and two mixins.

SwappableNetwork gives an inference block its `weights` port and
set_checkpoint(); TrainingBlock gives a live training block its worker
thread, metrics, checkpoints and stop(). Algorithms live in core.
"""
import numbers
import os

import numpy as np
import pmt

from .core import checkpoint as ckpt
from .core import validate
from .core.worker import InlineWorker, TrainingWorker

# GNU Radio 3.10's block_gateway holds its Python block by a non-owning handle, and a
# flowgraph holds only the C++ side: a Python block built inline in connect(...) (or
# inside a hier block whose Python object is dropped) is garbage-collected while the
# scheduler still calls it, and the process dies with a segfault. Every gr-e2e block
# registers itself here, so it lives as long as the process; a block is small (its
# networks and buffers), and GRC's generated code holds them anyway.
_LIVE_BLOCKS = []


def keep_alive(block):
    """Keep a Python block alive for the life of the process (see _LIVE_BLOCKS); returns it."""
    _LIVE_BLOCKS.append(block)
    return block


# Message ports (DESIGN.md).
WEIGHTS_PORT = "weights"  # u8vector of safetensors bytes
LOSS_PORT = "loss"        # dict {batch_index: long, losses: f32vector}
METRICS_PORT = "metrics"  # dict {name: long | double | symbol}, for GUIs and logs

# Stream tags of a batch (on its first item).
PACKET_LEN_TAG = "packet_len"    # long: items of the batch on this stream
BATCH_INDEX_TAG = "batch_index"  # uint64: the batch index b
BATCH_OFFSET_TAG = "batch_offset"  # long: on a later frame of a batch, the items of the batch before it

# Input items are uint8, so no block can tell more than 256 messages apart.
MAX_M = 256


def validate_sizes(M, n):
    """(M, n) for a block: M an integer in [2, 256] (messages are uint8), n >= 1."""
    return validate.integer("M", M, 2, MAX_M), validate.integer("n", n, 1)


def load_network(source, network, M, n, current_config=None, training_start=False):
    """(config, module) of `network` from a checkpoint path or bytes, with this block's M and n.

    Any kind holding the network is accepted, and the whole file is
    validated. current_config: the config of the network the block holds
    now, whose mode a replacement must keep. training_start: the file starts
    live training (an untrained one will do), which a missing file's error
    says along with the command that makes it.
    """
    expect = {"M": M, "n": n}
    if current_config is not None:
        expect["mode"] = current_config.mode
    try:
        return ckpt.load_network(source, network, expect=expect)
    except ckpt.CheckpointError as e:
        if e.reason != "no such file":
            raise
        path = os.path.abspath(e.source)
        raise ckpt.CheckpointError(path, f"no such file. {missing_checkpoint_hint(path, M, n, training_start)}") \
            from None


def missing_checkpoint_hint(path, M, n, training_start):
    """The commands that make a missing checkpoint, in words (a block's error when it cannot start)."""
    trained = f"`gr_e2e train --M {M} --n {n} --out DIR` writes a trained link to DIR/checkpoint.safetensors"
    if (M, n) == (16, 7):
        trained += "; `make demo`, in the gr-e2e checkout, writes results/complex/checkpoint.safetensors"
    if training_start:
        return (f"`gr_e2e init --M {M} --n {n} --out {path}` writes an untrained start there "
                f"(a trained link is a start too: {trained})")
    return trained


def loss_message(batch_index, losses):
    """The `loss` port's PMT: dict {batch_index: long, losses: f32vector}."""
    d = pmt.make_dict()
    d = pmt.dict_add(d, pmt.intern("batch_index"), pmt.from_long(int(batch_index)))
    d = pmt.dict_add(d, pmt.intern("losses"), pmt.init_f32vector(len(losses), np.asarray(losses, np.float32)))
    return d


def parse_loss_message(msg):
    """PMT `loss` message -> (batch_index int, float32 [B]); ValueError saying what is wrong."""
    if not pmt.is_dict(msg):
        raise ValueError(f"loss message must be a PMT dict, got a {pmt_kind(msg)}")
    index = pmt.dict_ref(msg, pmt.intern("batch_index"), pmt.PMT_NIL)
    losses = pmt.dict_ref(msg, pmt.intern("losses"), pmt.PMT_NIL)
    if not pmt.is_integer(index) and not pmt.is_uint64(index):
        raise ValueError(f"loss message needs 'batch_index' (integer), got a {pmt_kind(index)}")
    if not pmt.is_f32vector(losses):
        raise ValueError(f"loss message needs 'losses' (f32vector), got a {pmt_kind(losses)}")
    b = pmt.to_uint64(index) if pmt.is_uint64(index) else pmt.to_long(index)
    if b < 0:
        raise ValueError(f"loss message has a negative batch_index {b}")
    return int(b), np.asarray(pmt.f32vector_elements(losses), dtype=np.float32)


def dict_message(values):
    """{str: bool, int, float or str} -> PMT dict: bool, long, double or symbol (every `metrics` port)."""
    d = pmt.make_dict()
    for k, v in values.items():
        if isinstance(v, (bool, np.bool_)):
            value = pmt.from_bool(bool(v))
        elif isinstance(v, numbers.Integral):
            value = pmt.from_long(int(v))
        elif isinstance(v, numbers.Real):
            value = pmt.from_double(float(v))
        else:
            value = pmt.intern(str(v))
        d = pmt.dict_add(d, pmt.intern(k), value)
    return d


def u8vector(data):
    """bytes -> PMT u8vector (the `weights` port's payload)."""
    return pmt.init_u8vector(len(data), np.frombuffer(data, dtype=np.uint8))


_PMT_KINDS = ("null", "symbol", "dict", "pair", "u8vector", "s8vector", "u16vector", "s16vector",
              "u32vector", "s32vector", "u64vector", "s64vector", "f32vector", "f64vector",
              "c32vector", "c64vector", "vector", "bool", "integer", "real", "complex")


def pmt_kind(msg):
    """A PMT's type in words, for error messages."""
    for name in _PMT_KINDS:
        if getattr(pmt, "is_" + name)(msg):
            return name
    return "PMT of unknown kind"


def pdu_data(msg):
    """(data, how to name it in an error) of a message that is the data itself or a PDU carrying it.

    msg: any PMT; a PDU is a pair (metadata . data) that is not a dict.
    """
    if pmt.is_pair(msg) and not pmt.is_dict(msg):
        return pmt.cdr(msg), "a pair whose cdr is a "
    return msg, "a "


def checked_setting(block, name, value, check, current):
    """value checked by check(name, value) for a run-time setter (a GRC callback), which must never raise.

    Returns the checked value, or None after logging on block.logger why it
    was refused and that `current` stays.
    """
    try:
        return check(name, value)
    except ValueError as e:
        block.logger.error(f"set_{name} refused, keeping {current}: {e}")
        return None


class ChunkedDraws:
    """Rows of a seeded random stream cut into chunks, read by position whatever the buffers are.

    draw(c) -> array whose first axis holds the rows c*chunk .. (c+1)*chunk-1;
    rows(first, k) returns rows first .. first+k-1, drawing each chunk once
    while the stream moves through it (a simulated channel's noise: the
    same whatever the scheduler's cuts).
    """

    def __init__(self, draw, chunk):
        self._draw, self.chunk = draw, int(chunk)
        self._index, self._rows = -1, None

    def rows(self, first, k):
        out = None
        j = 0
        while j < k:
            c, r = divmod(first + j, self.chunk)
            take = min(self.chunk - r, k - j)
            if c != self._index:
                self._index, self._rows = c, self._draw(c)
            if out is None:
                out = np.empty((k,) + self._rows.shape[1:], dtype=self._rows.dtype)
            out[j:j + take] = self._rows[r:r + take]
            j += take
        return out


def weights_payload(msg):
    """Safetensors bytes carried by a `weights` message.

    msg: PMT u8vector, or a PDU, i.e. a pair (metadata . u8vector).
    Returns bytes; raises ValueError saying what the message was instead.
    """
    data, what = pdu_data(msg)
    if not pmt.is_u8vector(data):
        raise ValueError(f"weights message must be a u8vector of safetensors bytes (or a PDU "
                         f"carrying one), got {what}{pmt_kind(data)}")
    return bytes(pmt.u8vector_elements(data))


class SwappableNetwork:
    """The `weights` message port and set_checkpoint() of an inference block holding one network.

    The block sets self.M, self.n and self._config, names its network in
    _NETWORK ('encoder' or 'decoder'), and defines _install(config, network),
    which must publish the new network by a single reference assignment so
    work() never sees half a swap. Any checkpoint kind holding the network is
    accepted (a link, or a transmitter / receiver file) and validated whole.
    Errors are logged, never raised: a bad message or file must not stop a
    running flowgraph.
    """

    _NETWORK = None

    def _load(self, source):
        """(config, network) from a path or safetensors bytes, checked against this block's M, n (and mode)."""
        return load_network(source, self._NETWORK, self.M, self.n, getattr(self, "_config", None))

    def _register_weights_port(self):
        self.message_port_register_in(pmt.intern(WEIGHTS_PORT))
        self.set_msg_handler(pmt.intern(WEIGHTS_PORT), self._on_weights)

    def _on_weights(self, msg):
        try:
            self._install(*self._load(weights_payload(msg)))
            self.logger.info(f"{self._NETWORK} weights replaced from a weights message")
        except Exception as e:  # a bad message must never stop the flowgraph
            self.logger.error(f"dropped weights message: {e}")

    def set_checkpoint(self, checkpoint):
        """Load new weights from a file (GRC callback).

        The file must match M, n and mode. On any error the error is logged,
        the current weights stay, and False is returned (a GUI callback that
        raised could take the flowgraph down); True on success.
        """
        try:
            loaded = self._load(validate.path("checkpoint", checkpoint, allow_empty=False))
        except Exception as e:
            self.logger.error(f"set_checkpoint refused, keeping the current weights: {e}")
            return False
        self._install(*loaded)
        return True


class TrainingBlock:
    """Worker thread, metrics, checkpoints and lifecycle of a live training block.

    The block calls _setup_training(trainer_factory, ...) from __init__ and
    defines training_counters() -> dict, published on `metrics` every
    metrics_every steps. The trainer (core.live) owns the
    network and its save(); this mixin only decides when to call it.
    """

    def _setup_training(self, make_trainer, *, blocking, checkpoint_out, save_every, publish_every,
                        metrics_every):
        self.checkpoint_out = validate.path("checkpoint_out", checkpoint_out)
        self.metrics_every = validate.integer("metrics_every", metrics_every, 0)
        # Simulation (blocking): jobs run inside work(), every batch trains, in order. A radio:
        # a worker thread, and jobs it cannot keep up with are dropped and counted.
        if validate.boolean("blocking", blocking):
            self._worker = InlineWorker(on_error=self._on_worker_error)
        else:
            self._worker = TrainingWorker(blocking=False, on_error=self._on_worker_error,
                                          name=f"e2e-{self.name()}-training")
        self._trainer = make_trainer(
            worker=self._worker, on_weights=self._publish_weights,
            publish_every=validate.integer("publish_every", publish_every, 0),
            save_path=self.checkpoint_out or None, save_every=validate.integer("save_every", save_every, 0),
            on_step=self._after_step)
        self._metrics_history = []
        self._running = True  # the worker runs from construction; stop() acts once per run
        self.message_port_register_out(pmt.intern(WEIGHTS_PORT))
        self.message_port_register_out(pmt.intern(METRICS_PORT))

    def _on_worker_error(self, e):
        self.logger.error(f"training step failed: {e!r}")

    def _publish_weights(self, data):  # on the worker thread
        self.message_port_pub(pmt.intern(WEIGHTS_PORT), u8vector(data))

    def _after_step(self, steps):  # where the step ran: inside work() or on the worker thread
        if self.metrics_every and steps % self.metrics_every == 0:
            self._publish_metrics()

    def _publish_metrics(self):
        m = self.training_counters()
        self._metrics_history.append(m)
        self.message_port_pub(pmt.intern(METRICS_PORT), dict_message(m))

    def metrics_history(self):
        """Every metrics dict published so far (a list, oldest first)."""
        return list(self._metrics_history)

    def metric(self, name):
        """One value of training_counters() (a float or an int), e.g. for a GRC Function Probe.

        A probe returning the whole dict needs its labels to pick a value
        out of it, and GRC 3.10's code generator does not see
        `probe.get('x')` as a use of the probe (the labels are never
        updated) while `probe['x']` fails on the probe's initial value. A
        probe per value, whose variable a label names alone, just works.
        KeyError names the metrics there are.
        """
        counters = self.training_counters()
        if name not in counters:
            raise KeyError(f"{self.name()} has no metric {name!r}; it has {sorted(counters)}")
        return counters[name]

    def drain(self, timeout=None):
        """Wait until the queued training jobs have run (True if in time)."""
        return self._worker.drain(timeout)

    def save_checkpoint(self, path=None):
        """Write this end's checkpoint now (checkpoint_out by default); returns the path."""
        return self._trainer.save(path or self.checkpoint_out or None)

    def start(self):
        """Flowgraph start: (re)start the worker, so a flowgraph run again trains again."""
        self._worker.start()
        self._running = True
        return True

    def stop(self):
        """Flowgraph stop: finish queued jobs, end the worker, log the counters, write checkpoint_out."""
        if not self._running:
            return True
        self._running = False
        if not self._worker.drain(30.0):
            self.logger.warn("training worker did not finish its queued jobs within 30 s")
        self._worker.stop()
        # Counters go to the log, not the metrics port: at stop the flowgraph's message
        # handling has already ended, so a message published now would reach no one.
        self.logger.info(f"training stopped: {self.training_counters()}")
        if self.checkpoint_out:
            try:
                self._trainer.save(self.checkpoint_out)
            except Exception as e:
                self.logger.error(f"final checkpoint not written: {e}")
        return True


class OutOfRangeWarning:
    """Warns once per burst of message indices >= M on a uint8 input (not once per item)."""

    _in_bad_burst = False

    def _warn_out_of_range(self, bad, total):
        """bad: out-of-range indices in this work() call; total: all so far."""
        if bad and not self._in_bad_burst:
            self.logger.warn(f"{bad} message index(es) >= M={self.M} in this buffer: sending zero "
                             f"symbols for them (total so far {total}); no further warning until "
                             "the input is clean again")
        self._in_bad_burst = bool(bad)
