"""What the neural blocks share: parameter checks, port and tag names, PMT formats."""
import copy
import math
import numbers
import os
import threading

import numpy as np
import pmt

from .core import checkpoint as ckpt

# Message ports (DESIGN.md).
WEIGHTS_PORT = "weights"  # u8vector of safetensors bytes
LOSS_PORT = "loss"        # dict {batch_index: integer, losses: f32vector}
METRICS_PORT = "metrics"  # dict for GUIs and logs

# Stream tags of a training batch (on its first item).
PACKET_LEN_TAG = "packet_len"
BATCH_INDEX_TAG = "batch_index"

# Input items are uint8, so no block can tell more than 256 messages apart.
MAX_M = 256


def validate_block_params(M, n):
    """(M, n) as ints; ValueError naming the parameter and value otherwise.

    M: integer in [2, 256] (messages travel as uint8). n: integer >= 1.
    """
    if isinstance(M, bool) or not isinstance(M, numbers.Integral) or not 2 <= M <= MAX_M:
        raise ValueError(f"M must be an integer in [2, {MAX_M}] (messages are uint8), got {M!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(M), int(n)


def validate_int(name, value, low=None):
    """value as int; ValueError naming the parameter unless it is an integer >= low."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low)):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def validate_schedule(lr_schedule, schedule_steps):
    """(lr_schedule, schedule_steps) for the training blocks; ValueError naming the parameter."""
    from .core.training import SCHEDULES
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
    return lr_schedule, validate_int("schedule_steps", schedule_steps, 0)


def validate_float(name, value, low=None, high=None, low_open=False):
    """value as a finite float in [low, high] ((low, high] with low_open); ValueError naming it."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be a finite number in {'(' if low_open else '['}{lo}, {hi}], "
                         f"got {value!r}")
    return float(value)


def loss_message(batch_index, losses):
    """The `loss` port's PMT: dict {batch_index: integer, losses: f32vector}."""
    d = pmt.make_dict()
    d = pmt.dict_add(d, pmt.intern("batch_index"), pmt.from_long(int(batch_index)))
    d = pmt.dict_add(d, pmt.intern("losses"), pmt.init_f32vector(len(losses), np.asarray(losses, np.float32)))
    return d


def parse_loss_message(msg):
    """PMT `loss` message -> (batch_index int, float32 [B]); ValueError saying what is wrong."""
    if not pmt.is_dict(msg):
        raise ValueError(f"loss message must be a PMT dict, got a {_pmt_kind(msg)}")
    index = pmt.dict_ref(msg, pmt.intern("batch_index"), pmt.PMT_NIL)
    losses = pmt.dict_ref(msg, pmt.intern("losses"), pmt.PMT_NIL)
    if not pmt.is_integer(index) and not pmt.is_uint64(index):
        raise ValueError(f"loss message needs 'batch_index' (integer), got a {_pmt_kind(index)}")
    if not pmt.is_f32vector(losses):
        raise ValueError(f"loss message needs 'losses' (f32vector), got a {_pmt_kind(losses)}")
    b = pmt.to_uint64(index) if pmt.is_uint64(index) else pmt.to_long(index)
    if b < 0:
        raise ValueError(f"loss message has a negative batch_index {b}")
    return int(b), np.asarray(pmt.f32vector_elements(losses), dtype=np.float32)


def dict_message(values):
    """{str: int, float or str} -> PMT dict (metrics and counters)."""
    d = pmt.make_dict()
    for k, v in values.items():
        if isinstance(v, bool):
            value = pmt.from_bool(v)
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


class LinkCheckpoint:
    """checkpoint_out of the training blocks of one process, shared by path.

    nn_encoder and nn_decoder in training mode each train one network. When
    both write the same checkpoint_out, each save writes its own network and
    the other's latest saved copy (or, before the other has saved, the other
    network from the block's starting checkpoint), so the file always holds a
    whole link, and the last save of a run holds both final networks. Saves
    to one path are serialised by a lock; checkpoint.save is atomic. Blocks
    in different processes do not share this: give them different paths.
    """

    _registry = {}
    _registry_lock = threading.Lock()

    def __init__(self):
        self.lock = threading.Lock()
        self.latest = {}  # 'encoder' / 'decoder' -> a copy of the network at its last save

    @classmethod
    def for_path(cls, path):
        key = os.path.abspath(os.fspath(path))
        with cls._registry_lock:
            return cls._registry.setdefault(key, cls())

    def claim(self, role):
        """A new block trains `role`: forget copies an earlier flowgraph of this process saved."""
        with self.lock:
            self.latest.pop(role, None)

    def save(self, path, config, role, network, fallback_partner=None, metadata=None):
        """Write `network` (role 'encoder' or 'decoder') with the latest partner; returns path."""
        other = "decoder" if role == "encoder" else "encoder"
        with self.lock:
            mine = copy.deepcopy(network)
            self.latest[role] = mine
            partner = self.latest.get(other, fallback_partner)
            parts = {role: mine, other: partner}
            return ckpt.save(path, config, parts["encoder"], parts["decoder"], metadata=metadata)


_PMT_KINDS = ("null", "symbol", "dict", "pair", "u8vector", "s8vector", "u16vector", "s16vector",
              "u32vector", "s32vector", "u64vector", "s64vector", "f32vector", "f64vector",
              "c32vector", "c64vector", "vector", "bool", "integer", "real", "complex")


def _pmt_kind(msg):
    for name in _PMT_KINDS:
        if getattr(pmt, "is_" + name)(msg):
            return name
    return "PMT of unknown kind"


def weights_payload(msg):
    """Safetensors bytes carried by a `weights` message.

    msg: PMT u8vector, or a PDU, i.e. a pair (metadata . u8vector).
    Returns bytes; raises ValueError saying what the message was instead.
    """
    data, what = msg, "a "
    if pmt.is_pair(msg) and not pmt.is_dict(msg):  # a PDU: (metadata . data)
        data, what = pmt.cdr(msg), "a pair whose cdr is a "
    if not pmt.is_u8vector(data):
        raise ValueError(f"weights message must be a u8vector of safetensors bytes (or a PDU "
                         f"carrying one), got {what}{_pmt_kind(data)}")
    return bytes(pmt.u8vector_elements(data))


class SwappableNetwork:
    """The `weights` message port and set_checkpoint() of a block holding one network.

    In training mode (self.training) both are ignored with a warning: the
    network is being trained. The block sets self.M, self.n and self._config, names its network in
    _NETWORK ('encoder' or 'decoder'), and defines _install(config, network),
    which must publish the new network by a single reference assignment so
    work() never sees half a swap. Errors are logged, never raised: a bad
    message or file must not stop a running flowgraph.
    """

    _NETWORK = None

    def _register_weights_port(self):
        self.message_port_register_in(pmt.intern(WEIGHTS_PORT))
        self.set_msg_handler(pmt.intern(WEIGHTS_PORT), self._on_weights)

    def _network_of(self, loaded):
        config, encoder, decoder = loaded
        return config, encoder if self._NETWORK == "encoder" else decoder

    def _on_weights(self, msg):
        if getattr(self, "training", False):
            self.logger.warn("training mode: a weights message on the input was ignored")
            return
        try:
            self._install(*self._network_of(ckpt.from_bytes(
                weights_payload(msg), source="weights message", need=(self._NETWORK,),
                expect={"M": self.M, "n": self.n, "mode": self._config.mode})))
            self.logger.info(f"{self._NETWORK} weights replaced from a weights message")
        except Exception as e:  # a bad message must never stop the flowgraph
            self.logger.error(f"dropped weights message: {e}")

    def set_checkpoint(self, checkpoint):
        """Load new weights from a file (GRC callback).

        The file must match M and n. On any error the error is logged, the
        current weights stay, and False is returned (a GUI callback that
        raised could take the flowgraph down); True on success.
        """
        if getattr(self, "training", False):
            self.logger.warn(f"training mode: set_checkpoint ignored (the {self._NETWORK} is being trained)")
            return False
        try:
            loaded = ckpt.load(checkpoint, need=(self._NETWORK,), expect={"M": self.M, "n": self.n})
        except Exception as e:
            self.logger.error(f"set_checkpoint refused, keeping the current weights: {e}")
            return False
        self._install(*self._network_of(loaded))
        return True


class TrainingEnd:
    """drain(), save_checkpoint() and stop() of a block in training mode.

    The block sets self._trainer (None outside training mode), self._worker,
    self._stopped, self.checkpoint_out, self._partner and self._config, names
    its network in _NETWORK, and defines _save(path) (the shared whole-link
    checkpoint) and training_counters(). _on_stopping() runs after the worker
    has finished, before the final checkpoint.
    """

    def drain(self, timeout=None):
        """Training mode: wait until the queued training jobs have run (True if in time)."""
        return self._trainer is None or self._worker.drain(timeout)

    def save_checkpoint(self, path=None):
        """Training mode: write the checkpoint now (checkpoint_out by default); returns the path."""
        path = path or self.checkpoint_out
        if self._trainer is None or not path:
            raise ValueError("save_checkpoint needs training mode and a path (checkpoint_out)")
        if path != self.checkpoint_out:
            network = getattr(self._trainer, self._NETWORK)
            return LinkCheckpoint().save(path, self._config, self._NETWORK, network, self._partner)
        return self._save(path)

    def _on_stopping(self):
        pass

    def stop(self):
        """Flowgraph stop: finish queued jobs, end the worker, write the final checkpoint."""
        if self._trainer is not None and not self._stopped:
            self._stopped = True
            if not self._worker.drain(30.0):
                self.logger.warn("training worker did not finish its queued jobs within 30 s")
            self._worker.stop()
            self.logger.info(f"training stopped: {self.training_counters()}")
            self._on_stopping()
            if self.checkpoint_out:
                try:
                    self._save(self.checkpoint_out)
                except Exception as e:
                    self.logger.error(f"final checkpoint not written: {e}")
        return True
