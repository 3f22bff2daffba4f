"""Live model-free training: the two ends that nn_encoder and nn_decoder run.

Thread model (DESIGN.md, real time): the streaming thread (a block's work())
only reads snapshots (a symbol table, an inference copy of the decoder) and
queues jobs; gradient steps run on a TrainingWorker thread, which publishes
new snapshots by a single reference assignment. work() never waits on a
gradient step, except in blocking mode, where it waits for room in the
worker's queue so that no batch is dropped (simulation).

Framing: batch b carries prng.batch_messages(seed, b, batch_size, M); its
phase is model_free.phase_of(b, rx_batches, tx_batches). Only the batch index
crosses the channel; the receiver regenerates the messages.
"""
import collections
import copy
import math
import threading

import numpy as np
import torch

from . import checkpoint, model_free, prng
from .models import complex_to_real


def lr_scheduler(optimizer, schedule, steps):
    """Learning-rate schedule over `steps` gradient steps of one end, then held.

    A live run has no natural end, so the schedule needs an explicit horizon:
    schedule_steps = 0 means a constant rate whatever `schedule` says.
    """
    from .training import lr_factor
    lr_factor(schedule, 0, 1)  # validates the name
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"schedule_steps must be an integer >= 0, got {steps!r}")
    if steps == 0:
        schedule = "constant"
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(schedule, min(s, steps), max(steps, 1)))


class TransmitterTrainer:
    """Transmitter end: perturbs transmitter batches, steps on fed-back losses.

    symbols(b, messages) -> complex64 [B, n], called on the streaming thread.
    on_losses(b, losses) -> status string, called when a loss message arrives.
    Transmitter batches are kept (messages and the perturbation sent) in a bounded
    store of `store_batches` batches; a loss for a batch not in it (unknown,
    or expired from the store) is counted and dropped.
    on_weights(bytes) is called on the worker thread every `publish_every`
    steps with the encoder as safetensors bytes; save_path/save_every write
    atomic checkpoints (encoder plus, when given, the checkpoint's decoder).
    lr_schedule / schedule_steps: see lr_scheduler (counted in transmitter steps).
    """

    def __init__(self, encoder, *, sigma2=0.02, lr=1e-3, rx_batches=10, tx_batches=10,
                 baseline="none", store_batches=32, seed=0, worker=None, on_weights=None,
                 publish_every=0, save_path=None, save_every=0, decoder_for_save=None,
                 lr_schedule="constant", schedule_steps=0):
        self.encoder = encoder
        self.config = encoder.config
        self.sigma2 = model_free.validate_sigma2(sigma2)
        model_free.phase_of(0, rx_batches, tx_batches)
        self.rx_batches, self.tx_batches, self.baseline, self.seed = rx_batches, tx_batches, baseline, seed
        self.store_batches = int(store_batches)
        self.optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
        self.scheduler = lr_scheduler(self.optimizer, lr_schedule, schedule_steps)
        self.worker = worker
        self.on_weights, self.publish_every = on_weights, int(publish_every)
        self.save_path, self.save_every, self.decoder_for_save = save_path, int(save_every), decoder_for_save
        self._store = collections.OrderedDict()
        self._lock = threading.Lock()
        self._table = encoder.symbol_table()  # complex64 [M, n], read by symbols()
        self.steps = self.unknown_losses = self.expired = self.bad_losses = self.dropped = 0

    def phase(self, batch_index):
        return model_free.phase_of(batch_index, self.rx_batches, self.tx_batches)

    def symbols(self, batch_index, messages):
        """messages int [B] -> complex64 [B, n]: f(m), perturbed in transmitter batches."""
        x = self._table[messages]
        if self.phase(batch_index) == model_free.RECEIVER:
            return x
        rng = prng.numpy_rng(self.seed, prng.NOISE, 11, batch_index)
        scale = math.sqrt(self.sigma2 / 2) if self.config.mode == "complex" else math.sqrt(self.sigma2)
        w = rng.standard_normal(x.shape) * scale
        if self.config.mode == "complex":
            w = w + 1j * rng.standard_normal(x.shape) * scale
        w = w.astype(np.complex64)
        x_p = (math.sqrt(1 - self.sigma2) * x + w).astype(np.complex64)
        with self._lock:
            self._store[batch_index] = (np.asarray(messages, dtype=np.int64), w)
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
        if self.worker is None:
            self._step(messages, w, losses)
            return "queued"
        if self.worker.submit(self._step, messages, w, losses):
            return "queued"
        self.dropped += 1
        return "dropped"

    def _step(self, messages, w, losses):
        w_real = torch.from_numpy(complex_to_real(w).astype(np.float32))
        model_free.transmitter_step(self.encoder, self.optimizer, torch.from_numpy(messages), w_real,
                                    torch.from_numpy(losses), self.sigma2, self.baseline)
        self.scheduler.step()
        self._table = self.encoder.symbol_table()
        self.steps += 1
        if self.on_weights and self.publish_every and self.steps % self.publish_every == 0:
            self.on_weights(self.weights_bytes())
        if self.save_path and self.save_every and self.steps % self.save_every == 0:
            self.save(self.save_path)

    def weights_bytes(self):
        return checkpoint.to_bytes(self.config, encoder=self.encoder)

    def save(self, path):
        return checkpoint.save(path, self.config, self.encoder, self.decoder_for_save,
                               metadata={"transmitter_steps": self.steps})

    def counters(self):
        return {"transmitter_steps": self.steps, "unknown_losses": self.unknown_losses,
                "expired_batches": self.expired, "bad_losses": self.bad_losses,
                "dropped_steps": self.dropped}


class ReceiverTrainer:
    """Receiver end: trains on receiver batches, feeds back losses on transmitter batches.

    on_batch(b, y) with y complex [B, n] is called on the streaming thread and
    only queues the job. On the worker: receiver batches take a gradient step
    on the regenerated messages; transmitter batches compute per-example
    losses, pass them through `feedback` (a model_free.FeedbackLink) and call
    on_losses(b, float32 [B]) unless the feedback link lost them.
    decide(y) -> int64 [k] uses an inference copy refreshed after each step.
    metrics() gives running loss and BLER over the last `window` receiver
    batches. lr_schedule / schedule_steps: see lr_scheduler (receiver steps).
    """

    def __init__(self, decoder, *, batch_size, lr=1e-3, rx_batches=10, tx_batches=10, seed=0,
                 worker=None, on_losses=None, feedback=None, window=10, save_path=None,
                 save_every=0, encoder_for_save=None, lr_schedule="constant", schedule_steps=0):
        self.decoder = decoder
        self.config = decoder.config
        self.batch_size = int(batch_size)
        model_free.phase_of(0, rx_batches, tx_batches)
        self.rx_batches, self.tx_batches, self.seed = rx_batches, tx_batches, seed
        self.optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
        self.scheduler = lr_scheduler(self.optimizer, lr_schedule, schedule_steps)
        self.worker, self.on_losses, self.feedback = worker, on_losses, feedback or model_free.FeedbackLink(seed=seed)
        self.save_path, self.save_every, self.encoder_for_save = save_path, int(save_every), encoder_for_save
        self._inference = self._snapshot()
        self._recent = collections.deque(maxlen=int(window))
        self.steps = self.loss_messages = self.lost_feedback = self.dropped = 0

    def _snapshot(self):
        model = copy.deepcopy(self.decoder)
        model.eval()
        return model

    def phase(self, batch_index):
        return model_free.phase_of(batch_index, self.rx_batches, self.tx_batches)

    def decide(self, y):
        """complex [k, n] -> int64 [k] with the latest published receiver."""
        model = self._inference
        with torch.inference_mode():
            return model(torch.from_numpy(complex_to_real(y).astype(np.float32))).max(dim=1).indices.numpy()

    def on_batch(self, batch_index, y):
        y = np.array(y, dtype=np.complex64, copy=True)  # the stream buffer is reused after work()
        if len(y) != self.batch_size:
            raise ValueError(f"batch {batch_index} has {len(y)} messages, expected batch_size={self.batch_size}")
        if self.worker is None:
            self._process(batch_index, y)
        elif not self.worker.submit(self._process, batch_index, y):
            self.dropped += 1

    def _process(self, batch_index, y):
        messages = torch.from_numpy(prng.batch_messages(self.seed, batch_index, self.batch_size, self.config.M))
        y_real = torch.from_numpy(complex_to_real(y).astype(np.float32))
        if self.phase(batch_index) == model_free.RECEIVER:
            self.decoder.train()
            loss, errors = model_free.receiver_step(self.decoder, self.optimizer, y_real, messages)
            self.scheduler.step()
            self.steps += 1
            self._recent.append((loss, errors))
            self._inference = self._snapshot()
            if self.save_path and self.save_every and self.steps % self.save_every == 0:
                self.save(self.save_path)
            return
        self.decoder.eval()
        losses = model_free.per_example_losses(self.decoder, y_real, messages).numpy()
        fed_back = self.feedback(losses, batch_index)
        if fed_back is None:
            self.lost_feedback += 1
        elif self.on_losses:
            self.loss_messages += 1
            self.on_losses(batch_index, fed_back)

    def save(self, path):
        return checkpoint.save(path, self.config, self.encoder_for_save, self.decoder,
                               metadata={"receiver_steps": self.steps})

    def metrics(self):
        recent = list(self._recent)
        loss = sum(r[0] for r in recent) / len(recent) if recent else float("nan")
        bler = sum(r[1] for r in recent) / (len(recent) * self.batch_size) if recent else float("nan")
        return {"receiver_steps": self.steps, "loss": loss, "bler": bler,
                "loss_messages": self.loss_messages, "lost_feedback": self.lost_feedback,
                "dropped_batches": self.dropped}
