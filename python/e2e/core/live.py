"""Live model-free training: the two ends that model_free_tx and model_free_rx run.

Thread model (DESIGN.md, real time): the streaming thread (a block's work())
only reads snapshots (a symbol table, an inference copy of the decoder) and
queues jobs; gradient steps run on a TrainingWorker thread, which publishes
new snapshots by a single reference assignment. work() never waits on a
gradient step, except in blocking mode, where it waits for room in the
worker's queue so that no batch is dropped (simulation).

Framing: batch b carries params.messages(b, M); its phase is params.phase(b).
Only the batch index crosses the channel; the receiver regenerates the
messages, and the transmitter draws batch b's perturbation from
params.perturbation_generator(b).

Each end trains one network and saves one role: the transmitter writes
'transmitter' checkpoints (its encoder), the receiver 'receiver' checkpoints
(its decoder); checkpoint.merge pairs them into a link.
"""
import collections
import copy
import threading

import numpy as np
import torch

from . import checkpoint, model_free
from .models import complex_to_real, decide, real_to_complex, received_tensor
from .training import lr_scheduler
from .validate import integer


class _LiveEnd:
    """What both ends share: optimizer and schedule, worker hand-off, publishing and saving.

    role: 'encoder' or 'decoder', the network trained; kind: the checkpoint
    kind this end saves ('transmitter' or 'receiver').
    on_weights(bytes) is called on the worker thread every publish_every steps
    with the network as safetensors bytes; on_step(steps) after every step;
    save_path/save_every write atomic checkpoints every save_every steps (and
    whenever save() is called).
    """

    role = kind = None

    def __init__(self, network, params, *, worker=None, on_weights=None, publish_every=0,
                 save_path=None, save_every=0, on_step=None):
        if not isinstance(params, model_free.ModelFreeParams):
            raise TypeError(f"params must be a ModelFreeParams, got {type(params).__name__}")
        self.network, self.params, self.config = network, params, network.config
        self.optimizer = torch.optim.Adam(network.parameters(), lr=params.lr)
        self.scheduler = lr_scheduler(self.optimizer, params.lr_schedule, params.schedule_steps)
        self.worker = worker
        self.on_weights, self.publish_every = on_weights, integer("publish_every", publish_every, 0)
        self.on_step = on_step
        self.save_path, self.save_every = save_path or None, integer("save_every", save_every, 0)
        self.steps = 0
        self.dropped = 0  # jobs the worker had no room for (non-blocking mode)
        self._save_lock = threading.Lock()

    def _run(self, fn, *args):
        """Run fn now (no worker) or queue it; False when the worker dropped it."""
        if self.worker is None:
            fn(*args)
            return True
        if self.worker.submit(fn, *args):
            return True
        self.dropped += 1
        return False

    def _stepped(self):
        """After a gradient step (worker thread): advance the schedule, publish, save."""
        self.scheduler.step()
        self.steps += 1
        if self.on_weights and self.publish_every and self.steps % self.publish_every == 0:
            self.on_weights(self.weights_bytes())
        if self.save_path and self.save_every and self.steps % self.save_every == 0:
            self.save(self.save_path)
        if self.on_step:
            self.on_step(self.steps)

    def _metadata(self):
        return {f"{self.kind}_steps": self.steps}

    def weights_bytes(self):
        """The trained network as a checkpoint of this end's kind (the weights-port payload)."""
        return checkpoint.to_bytes(self.kind, self.config, {self.role: self.network}, self._metadata())

    def save(self, path=None):
        """Write this end's checkpoint atomically (save_path by default); returns the path."""
        path = path or self.save_path
        if not path:
            raise ValueError("save needs a path (save_path)")
        with self._save_lock:
            return checkpoint.save(path, self.kind, self.config, {self.role: self.network}, self._metadata())


class TransmitterTrainer(_LiveEnd):
    """Transmitter end: perturbs transmitter batches, steps on fed-back losses.

    symbols(b, messages) -> complex64 [B, n], called on the streaming thread.
    on_losses(b, losses) -> status string, called when a loss message arrives.
    Transmitter batches are kept (messages and the perturbation sent) in a
    bounded store of `store_batches` batches; a loss for a batch not in it
    (unknown, or expired from the store) is counted and dropped. The store
    must outlast the batches in flight between the two ends: GNU Radio's
    buffers (32768 items each by default, vectors of FFT size in an OFDM
    chain) hold a few hundred thousand samples, so the default (None) keeps
    IN_FLIGHT_SAMPLES worth of batches, at least 32. With 32 batches of 384
    messages (n = 2) over the OFDM link, 4 in 5 losses arrived too late.
    """

    IN_FLIGHT_SAMPLES = 1 << 19

    role, kind = "encoder", "transmitter"

    def __init__(self, encoder, params, *, store_batches=None, **kwargs):
        super().__init__(encoder, params, **kwargs)
        if store_batches is None:
            store_batches = max(32, -(-self.IN_FLIGHT_SAMPLES // (params.batch_size * encoder.config.n)))
        self.store_batches = integer("store_batches", store_batches, 1)
        self._store = collections.OrderedDict()
        self._lock = threading.Lock()
        self._table = encoder.symbol_table()  # complex64 [M, n], read by symbols()
        self.unknown_losses = self.expired = self.bad_losses = self.out_of_range = self.untrainable = 0

    @property
    def encoder(self):
        return self.network

    def symbol_table(self):
        """The latest published codebook, complex64 [M, n] (a reference: do not modify)."""
        return self._table

    def symbols(self, batch_index, messages):
        """messages int [B] -> complex64 [B, n]: f(m), perturbed in transmitter batches.

        Indices outside [0, M) send zero symbols (no energy) and are counted
        in out_of_range; a transmitter batch holding any is not stored, since
        its losses would score symbols that were never sent (untrainable).
        """
        messages = np.asarray(messages, dtype=np.int64)
        table = self._table
        valid = (messages >= 0) & (messages < self.config.M)
        bad = int(messages.size - np.count_nonzero(valid))
        x = table[np.where(valid, messages, 0)]
        if bad:
            x[~valid] = 0
            self.out_of_range += bad
        if self.params.phase(batch_index) == model_free.RECEIVER:
            return x
        x_real = torch.from_numpy(complex_to_real(x))
        x_p, w = model_free.perturb(x_real, self.params.sigma2, self.config.mode,
                                    self.params.perturbation_generator(batch_index))
        x_p = real_to_complex(x_p).numpy()
        if bad:
            x_p[~valid] = 0
            self.untrainable += 1
            return x_p
        with self._lock:
            self._store[batch_index] = (messages, w)
            while len(self._store) > self.store_batches:
                self._store.popitem(last=False)
                self.expired += 1
        return x_p

    def on_losses(self, batch_index, losses):
        """Queue a transmitter step. Returns 'queued', 'dropped', 'unknown' or 'mismatch'."""
        with self._lock:
            entry = self._store.pop(batch_index, None)
        if entry is None:
            self.unknown_losses += 1
            return "unknown"
        messages, w = entry
        losses = np.asarray(losses, dtype=np.float32)
        if losses.shape != messages.shape or not np.isfinite(losses).all():
            self.bad_losses += 1
            return "mismatch"
        return "queued" if self._run(self._step, messages, w, losses) else "dropped"

    def _step(self, messages, w, losses):
        self.network.train()
        model_free.transmitter_step(self.network, self.optimizer, torch.from_numpy(messages), w,
                                    torch.from_numpy(losses), self.params.sigma2, self.params.baseline)
        self._table = self.network.symbol_table()
        self._stepped()

    def counters(self):
        return {"transmitter_steps": self.steps, "unknown_losses": self.unknown_losses,
                "expired_batches": self.expired, "bad_losses": self.bad_losses,
                "dropped_steps": self.dropped, "out_of_range": self.out_of_range,
                "untrainable_batches": self.untrainable}


class ReceiverTrainer(_LiveEnd):
    """Receiver end: trains on receiver batches, feeds back losses on transmitter batches.

    on_batch(b, y) with y complex [B, n] is called on the streaming thread and
    only queues the job. On the worker: receiver batches take a gradient step
    on the regenerated messages; transmitter batches compute per-example
    losses, pass them through `feedback` (a model_free.FeedbackLink) and call
    on_losses(b, float32 [B]) unless the feedback link lost them.
    decide(y) -> int64 [k] uses an inference copy refreshed after each step.
    metrics() gives running loss and BLER over the last `window` receiver batches.
    """

    role, kind = "decoder", "receiver"

    def __init__(self, decoder, params, *, on_losses=None, feedback=None, window=10, **kwargs):
        super().__init__(decoder, params, **kwargs)
        self.on_losses = on_losses
        self.feedback = feedback or model_free.FeedbackLink(seed=params.seed)
        self._inference = self._snapshot()
        self._recent = collections.deque(maxlen=integer("window", window, 1))
        self.loss_messages = self.lost_feedback = 0

    @property
    def decoder(self):
        return self.network

    def _snapshot(self):
        model = copy.deepcopy(self.network)
        model.eval()
        return model

    def decide(self, y):
        """complex [k, n] -> int64 [k] with the latest published receiver."""
        model = self._inference  # one read: a swap mid-call cannot mix two networks
        with torch.inference_mode():
            return decide(model(received_tensor(y))).numpy()

    def on_batch(self, batch_index, y):
        """Queue batch b's training job (y complex [batch_size, n]); False if the worker dropped it."""
        y = np.array(y, dtype=np.complex64, copy=True)  # the stream buffer is reused after work()
        if len(y) != self.params.batch_size:
            raise ValueError(f"batch {batch_index} has {len(y)} messages, expected "
                             f"batch_size={self.params.batch_size}")
        return self._run(self._process, batch_index, y)

    def _process(self, batch_index, y):
        messages = torch.from_numpy(self.params.messages(batch_index, self.config.M))
        y_real = received_tensor(y)
        if self.params.phase(batch_index) == model_free.RECEIVER:
            self.network.train()
            loss, errors = model_free.receiver_step(self.network, self.optimizer, y_real, messages)
            self._recent.append((loss, errors))
            self._inference = self._snapshot()
            self._stepped()
            return
        self.network.eval()
        losses = model_free.per_example_losses(self.network, y_real, messages).numpy()
        fed_back = self.feedback(losses, batch_index)
        if fed_back is None:
            self.lost_feedback += 1
        elif self.on_losses:
            self.loss_messages += 1
            self.on_losses(batch_index, fed_back)

    def metrics(self):
        recent = list(self._recent)
        loss = sum(r[0] for r in recent) / len(recent) if recent else float("nan")
        bler = sum(r[1] for r in recent) / (len(recent) * self.params.batch_size) if recent else float("nan")
        return {"receiver_steps": self.steps, "loss": loss, "bler": bler,
                "loss_messages": self.loss_messages, "lost_feedback": self.lost_feedback,
                "dropped_batches": self.dropped}
