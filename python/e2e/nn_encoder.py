"""nn_encoder: message indices -> learned channel symbols (GNU Radio block)."""
import numpy as np
import pmt
from gnuradio import gr

from .block_common import (BATCH_INDEX_TAG, LOSS_PORT, MAX_M, WEIGHTS_PORT, LinkCheckpoint,
                           SwappableNetwork, TrainingEnd, parse_loss_message, u8vector, validate_block_params,
                           validate_float, validate_int, validate_schedule)
from .core import checkpoint as ckpt
from .core import model_free
from .core.live import TransmitterTrainer
from .core.worker import TrainingWorker


class nn_encoder(SwappableNetwork, TrainingEnd, gr.interp_block):
    """Learned transmitter: one message index in, n complex symbols out.

    Inference is a lookup in the trained encoder's symbol table (the encoder
    is a deterministic function of the message), done for the whole buffer at
    once.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e .safetensors checkpoint holding an
        encoder; refused at construction (checkpoint.CheckpointError, a
        ValueError naming the file and the reason) if it cannot be read or its
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
        symbol (Es = 1).
    weights (message in) : PMT u8vector of safetensors bytes (or a PDU whose
        cdr is one), as checkpoint.to_bytes writes. It must hold an encoder
        with this block's M, n and mode. The symbol table is swapped between
        two work() calls. A malformed or mismatched message is logged as an
        error and dropped; the current weights stay.

    Throughput is set by the per-call cost of a Python block (~0.1-0.3 ms),
    so by how many items each work() call gets: about 9 M messages/s with
    default buffers, as fast as the C++ chunks_to_symbols (~57 M/s, same run)
    with 64k-message buffers (set_min_output_buffer on the block feeding this
    one and on this one; GRC: Advanced > Min Output Buffer).

    Training mode (training=True): the transmitter end of live model-free
    training (Aoudia & Hoydis; core.live.TransmitterTrainer). The input must
    come from a training_source (same batch_size): work() sees whole batches
    (output multiple batch_size * n). Batch b's index is read from the
    'batch_index' tag on its first item (without tags, batches are counted
    from 0). Its phase is model_free.phase_of(b, rx_batches, tx_batches):
    receiver batches send f(m); transmitter batches send the relaxed
    sqrt(1 - sigma2) f(m) + w, w ~ CN(0, sigma2), and keep (m, w) in a
    bounded store (the last 32 transmitter batches) until their losses come
    back. Policy-gradient steps run on a worker thread (TrainingWorker), so
    work() never waits on them (unless blocking=True, for reproducible
    simulation). The `weights` input port is ignored in training mode.

    Training parameters (keywords; ignored when training is False)
    ------------------------------------------------------------------
    batch_size : int >= 1, messages per batch (the training_source's).
    seed : int >= 0, seeds the perturbation w of each batch.
    sigma2 : float in (0, 1), perturbation variance per channel use.
    lr : float > 0, Adam learning rate of the transmitter.
    rx_batches, tx_batches : ints >= 0, not both 0: the schedule, R receiver
        batches then T transmitter batches, repeating; the decoder's must
        be the same.
    baseline : 'none' (the paper's estimator) or 'mean' (subtract the
        batch's mean loss: lower variance).
    blocking : bool; True makes the loss handler wait for room in the
        worker's queue (simulation: no step is dropped); False drops and
        counts steps the worker cannot keep up with (a radio).
    publish_every : int >= 0; > 0 publishes the encoder on the `weights`
        output every that many transmitter steps; 0 never.
    checkpoint_out : str; non-empty writes atomic checkpoints there every
        save_every transmitter steps (0: only at stop()) and at stop(). The
        file holds the encoder and a decoder: the latest one saved by an
        nn_decoder of this process writing the same path, else the decoder
        of the starting checkpoint (if it has one).
    save_every : int >= 0.

    Training ports
    --------------
    loss (message in) : PMT dict {'batch_index': integer, 'losses':
        f32vector of batch_size per-example losses}, as nn_decoder's `loss`
        output sends. A loss for a batch not in the store (unknown, a
        receiver batch, or expired) is counted and dropped; a malformed
        message is logged and dropped (training_counters()).
    weights (message out) : PMT u8vector of safetensors bytes holding the
        encoder (checkpoint.to_bytes), every publish_every steps; an
        nn_encoder's `weights` input (inference mode) accepts it.
    """

    def __init__(self, checkpoint, M, n, training=False, batch_size=1000, seed=0, sigma2=0.02, lr=1e-3,
                 rx_batches=10, tx_batches=10, baseline="none", blocking=False, publish_every=0,
                 checkpoint_out="", save_every=0, lr_schedule="constant", schedule_steps=0):
        M, n = validate_block_params(M, n)
        training = bool(training)
        if training:
            self._lr_schedule, self._schedule_steps = validate_schedule(lr_schedule, schedule_steps)
            batch_size = validate_int("batch_size", batch_size, 1)
            seed = validate_int("seed", seed, 0)
            sigma2 = model_free.validate_sigma2(sigma2)
            lr = validate_float("lr", lr, 0.0, low_open=True)
            rx_batches = validate_int("rx_batches", rx_batches, 0)
            tx_batches = validate_int("tx_batches", tx_batches, 0)
            if rx_batches + tx_batches == 0:
                raise ValueError("rx_batches and tx_batches must not both be 0")
            if baseline not in ("none", "mean"):
                raise ValueError(f"baseline must be 'none' or 'mean', got {baseline!r}")
            publish_every = validate_int("publish_every", publish_every, 0)
            save_every = validate_int("save_every", save_every, 0)
            if not isinstance(checkpoint_out, str):
                raise ValueError(f"checkpoint_out must be a path (str), got {checkpoint_out!r}")
        config, encoder, _ = ckpt.load(checkpoint, need=("encoder",), expect={"M": M, "n": n})
        gr.interp_block.__init__(self, name="nn_encoder", in_sig=[np.uint8],
                                 out_sig=[np.complex64], interp=n)
        self.M, self.n = M, n
        self.training = training
        self._out_of_range = 0
        self._in_bad_burst = False
        self._install(config, encoder)
        self._register_weights_port()
        self._trainer = None
        if training:
            self._setup_training(checkpoint, config, encoder, batch_size, seed, sigma2, lr, rx_batches,
                                 tx_batches, baseline, bool(blocking), publish_every, checkpoint_out,
                                 save_every)

    _NETWORK = "encoder"

    def _setup_training(self, checkpoint, config, encoder, batch_size, seed, sigma2, lr, rx_batches,
                        tx_batches, baseline, blocking, publish_every, checkpoint_out, save_every):
        try:  # the starting checkpoint's decoder, saved beside the trained encoder
            partner = ckpt.load(checkpoint, need=("decoder",), expect={"M": self.M, "n": self.n})[2]
        except ckpt.CheckpointError:
            partner = None
        self.batch_size = batch_size
        self.checkpoint_out = checkpoint_out
        self._saver = LinkCheckpoint.for_path(checkpoint_out) if checkpoint_out else None
        if self._saver:
            self._saver.claim("encoder")
        self._partner = partner
        self._next_batch = 0
        self._batches = 0
        self._bad_messages = 0
        self._stopped = False
        self._index_key = pmt.intern(BATCH_INDEX_TAG)
        self._worker = TrainingWorker(blocking=blocking, on_error=self._on_worker_error,
                                      name="e2e-nn_encoder-training")
        encoder.train()
        self._trainer = TransmitterTrainer(
            encoder, sigma2=sigma2, lr=lr, rx_batches=rx_batches, tx_batches=tx_batches, baseline=baseline,
            seed=seed, worker=self._worker, on_weights=self._publish_weights, publish_every=publish_every,
            save_path=checkpoint_out or None, save_every=save_every, decoder_for_save=partner,
            lr_schedule=self._lr_schedule, schedule_steps=self._schedule_steps)
        self._trainer.save = self._save  # the shared, whole-link checkpoint (block_common.LinkCheckpoint)
        self.set_output_multiple(batch_size * self.n)
        self.message_port_register_in(pmt.intern(LOSS_PORT))
        self.set_msg_handler(pmt.intern(LOSS_PORT), self._on_loss)
        self.message_port_register_out(pmt.intern(WEIGHTS_PORT))

    def _on_worker_error(self, e):
        self.logger.error(f"transmitter training step failed: {e!r}")

    def _publish_weights(self, data):  # on the worker thread
        self.message_port_pub(pmt.intern(WEIGHTS_PORT), u8vector(data))

    def _save(self, path):
        t = self._trainer
        return self._saver.save(path, self._config, "encoder", t.encoder, self._partner,
                                metadata={"transmitter_steps": t.steps})

    def _on_loss(self, msg):
        try:
            b, losses = parse_loss_message(msg)
        except Exception as e:  # a malformed message must never stop the flowgraph
            self._bad_messages += 1
            self.logger.warn(f"dropped loss message: {e} ({self._bad_messages} malformed so far)")
            return
        status = self._trainer.on_losses(b, losses)
        if status == "mismatch":
            self.logger.warn(f"dropped loss message for batch {b}: {len(losses)} losses (expected "
                             f"{self.batch_size}) or non-finite values")

    def _work_training(self, input_items, output_items):
        msgs = input_items[0]
        bs, n = self.batch_size, self.n
        batches = len(msgs) // bs
        start = self.nitems_read(0)
        tags = {t.offset: t.value for t in self.get_tags_in_window(0, 0, batches * bs, self._index_key)}
        out = output_items[0]
        for j in range(batches):
            value = tags.get(start + j * bs)
            if value is not None:
                self._next_batch = int(pmt.to_uint64(value) if pmt.is_uint64(value) else pmt.to_long(value))
            b = self._next_batch
            m = np.minimum(msgs[j * bs:(j + 1) * bs], self.M - 1).astype(np.int64)
            bad = np.count_nonzero(msgs[j * bs:(j + 1) * bs] >= self.M)
            if bad:
                self._out_of_range += int(bad)
                self.logger.warn(f"batch {b}: {bad} message index(es) >= M={self.M} sent as M-1")
            out[j * bs * n:(j + 1) * bs * n] = self._trainer.symbols(b, m).reshape(-1)
            self._next_batch = b + 1
            self._batches += 1
        return batches * bs * n

    def _install(self, config, encoder):
        # 256 rows, those >= M zero, so out-of-range indices need no branch in
        # work(); one reference assignment swaps the table atomically.
        table = np.zeros((MAX_M, self.n), dtype=np.complex64)
        table[:self.M] = encoder.symbol_table()
        self._config = config
        self._table = table

    def work(self, input_items, output_items):
        if self._trainer is not None:
            return self._work_training(input_items, output_items)
        msgs = input_items[0]
        k = len(msgs)
        table = self._table  # one read: a swap mid-call cannot mix two tables
        np.take(table, msgs, axis=0, out=output_items[0][:k * self.n].reshape(k, self.n))
        bad = np.count_nonzero(msgs >= self.M) if self.M < MAX_M else 0
        if bad:
            self._out_of_range += int(bad)
            if not self._in_bad_burst:
                self.logger.warn(f"{bad} message index(es) >= M={self.M} in this buffer: sending "
                                 f"zero symbols for them (total so far {self._out_of_range}); "
                                 "no further warning until the input is clean again")
        self._in_bad_burst = bool(bad)
        return k * self.n

    def out_of_range(self):
        """Number of input message indices >= M seen so far."""
        return self._out_of_range

    def symbol_table(self):
        """Current codebook: complex64 [M, n] (a copy); in training mode the trainer's latest."""
        if self._trainer is not None:
            return self._trainer._table.copy()
        return self._table[:self.M].copy()

    def training_counters(self):
        """Training mode: dict of counters (TransmitterTrainer.counters() and the block's own)."""
        if self._trainer is None:
            return {}
        c = self._trainer.counters()
        c.update(batches=self._batches, malformed_loss_messages=self._bad_messages,
                 worker_errors=self._worker.errors, pending_steps=self._worker.pending)
        return c

