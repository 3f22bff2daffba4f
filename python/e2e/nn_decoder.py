"""nn_decoder: received symbols -> decided message (GNU Radio block)."""
import numbers

import numpy as np
import pmt
import torch
from gnuradio import gr

from .block_common import (LOSS_PORT, METRICS_PORT, LinkCheckpoint, SwappableNetwork, TrainingEnd, dict_message,
                           loss_message, validate_block_params, validate_float, validate_int, validate_schedule)
from .core import checkpoint as ckpt
from .core.live import ReceiverTrainer
from .core.model_free import FeedbackLink
from .core.models import complex_to_real
from .core.worker import TrainingWorker


class nn_decoder(SwappableNetwork, TrainingEnd, gr.decim_block):
    """Learned receiver: n complex symbols in, one decided message out.

    The whole work() buffer is decoded in one batch: [k*n] complex64 ->
    [k, n] -> real float32 [k, 2n] (real parts, then imaginary parts) ->
    decoder network -> logits [k, M] -> argmax.

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e .safetensors checkpoint holding a
        decoder; refused at construction (checkpoint.CheckpointError, a
        ValueError naming the file and the reason) if it cannot be read or its
        M or n differ from the parameters below.
    M : int in [2, 256], number of messages.
    n : int >= 1, complex symbols per message (the decimation).
    probabilities : bool, add output 1 with the M message probabilities.
    torch_threads : int; > 0 calls torch.set_num_threads(torch_threads),
        which is PROCESS-WIDE (every torch user in this Python process,
        other blocks and training included); 0 leaves torch's setting alone.
        One thread is the default because each GNU Radio block already runs
        in its own thread and the networks are small.
    batch_messages : int >= 1, the fewest messages decoded per work() call
        (GNU Radio's output multiple). A Python block pays a fixed ~150 us
        per work() call whatever it computes, and the scheduler otherwise
        hands it a few hundred messages at a time, so on continuous streams
        (a radio) 4096 or more runs several times faster (bench/throughput.py)
        at the cost of batch_messages * n samples of latency. The price on a
        FINITE stream: GNU Radio never gives a block less than its output
        multiple, so the last partial batch (< batch_messages messages) is
        not decoded. Keep 1 (the default) for file or vector sources.

    Ports
    -----
    in 0 : complex64 stream, n symbols per message, message boundaries at
        multiples of n from the first item.
    out 0 : uint8 stream, decided message index in [0, M), one per n inputs.
    out 1 (only if probabilities) : float32 vectors of length M, the softmax
        of the decoder's logits (sums to 1), one per message.
    weights (message in) : PMT u8vector of safetensors bytes (or a PDU whose
        cdr is one), as checkpoint.to_bytes writes. It must hold a decoder
        with this block's M, n and mode. The network is swapped between two
        work() calls. A malformed or mismatched message is logged as an error
        and dropped; the current weights stay.

    Throughput is set by the per-call cost of a Python block (~0.15 ms of
    gateway and forecast overhead plus ~45 us of torch for 500 messages), so
    by how many messages each work() call gets: with default buffers about
    11-15 M symbols/s against ~66 M/s for the C++ constellation_decoder in
    the same run; with a 458752-item min output buffer on the block feeding
    this one (GRC: Advanced > Min Output Buffer) about 59 M/s.
    set_output_multiple would batch too, but a finite stream then loses its
    last partial batch (up to output_multiple - 1 messages), so it is not set.

    Training mode (training=True): the receiver end of live model-free
    training (Aoudia & Hoydis; core.live.ReceiverTrainer). work() sees whole
    batches (output multiple batch_size; batch_messages is not used). The
    index of a batch is its count from the start of the stream: stream tags
    are NOT used, because they do not survive the channel where they should
    (the examples' delay(3) + channel_model moves every tag 3 samples late),
    so the input must start at batch 0 and lose no samples. The messages of
    batch b are regenerated as prng.batch_messages(seed, b, batch_size, M),
    so seed must equal the training_source's. Its phase is
    model_free.phase_of(b, rx_batches, tx_batches): receiver batches take a
    gradient step with the known messages; transmitter batches compute the
    per-example cross-entropy losses, pass them through the feedback-link
    impairments and send them on the `loss` port. Steps run on a worker
    thread (TrainingWorker); work() never waits on them unless
    blocking=True (simulation: no batch dropped). Decisions on out 0 come
    from the latest published receiver. The `weights` input is ignored.

    Training parameters (keywords; ignored when training is False)
    ------------------------------------------------------------------
    batch_size : int >= 1; seed : int >= 0 (the training_source's).
    lr : float > 0, Adam learning rate of the receiver.
    rx_batches, tx_batches : the schedule; must equal the encoder's.
    blocking : bool, see above; False drops (and counts) batches the worker
        cannot keep up with.
    feedback_snr_db : None or float, additive Gaussian noise on the losses
        at SNRfb = E[l^2] / sigma_e^2 (dB).
    feedback_bits : int in [0, 24]; > 0 quantises the losses to that many
        bits (between the batch's min and max); 0 does not quantise.
    feedback_loss_prob : float in [0, 1], probability that a loss message is
        lost (counted as lost_feedback).
    checkpoint_out, save_every : as nn_encoder (every save_every receiver
        steps and at stop(); the file holds this decoder and the latest
        encoder saved to the same path in this process, else the starting
        checkpoint's encoder).
    metrics_every : int >= 0; > 0 publishes `metrics` every that many
        receiver steps.

    Training ports
    --------------
    loss (message out) : PMT dict {'batch_index': long, 'losses': f32vector
        of batch_size per-example losses}, one per transmitter batch; wire it
        to nn_encoder's `loss` input.
    metrics (message out) : PMT dict {receiver_steps: long, loss: double
        (mean over the last 10 receiver batches), bler: double (same
        window), loss_messages: long, lost_feedback: long, dropped_batches:
        long, batches: long}.
    """

    def __init__(self, checkpoint, M, n, probabilities=False, torch_threads=1, batch_messages=1,
                 training=False, batch_size=1000, seed=0, lr=1e-3, rx_batches=10, tx_batches=10,
                 blocking=False, feedback_snr_db=None, feedback_bits=0, feedback_loss_prob=0.0,
                 checkpoint_out="", save_every=0, metrics_every=0, lr_schedule="constant", schedule_steps=0):
        M, n = validate_block_params(M, n)
        training = bool(training)
        if training:
            self._lr_schedule, self._schedule_steps = validate_schedule(lr_schedule, schedule_steps)
            if probabilities:
                raise ValueError("probabilities must be False in training mode")
            batch_size = validate_int("batch_size", batch_size, 1)
            seed = validate_int("seed", seed, 0)
            lr = validate_float("lr", lr, 0.0, low_open=True)
            rx_batches = validate_int("rx_batches", rx_batches, 0)
            tx_batches = validate_int("tx_batches", tx_batches, 0)
            if rx_batches + tx_batches == 0:
                raise ValueError("rx_batches and tx_batches must not both be 0")
            if feedback_snr_db is not None:
                feedback_snr_db = validate_float("feedback_snr_db", feedback_snr_db)
            feedback_bits = validate_int("feedback_bits", feedback_bits, 0)
            if feedback_bits > 24:
                raise ValueError(f"feedback_bits must be an integer in [0, 24], got {feedback_bits!r}")
            feedback_loss_prob = validate_float("feedback_loss_prob", feedback_loss_prob, 0.0, 1.0)
            save_every = validate_int("save_every", save_every, 0)
            metrics_every = validate_int("metrics_every", metrics_every, 0)
            if not isinstance(checkpoint_out, str):
                raise ValueError(f"checkpoint_out must be a path (str), got {checkpoint_out!r}")
        if (isinstance(torch_threads, bool) or not isinstance(torch_threads, numbers.Integral)
                or torch_threads < 0):
            raise ValueError(f"torch_threads must be an integer >= 0, got {torch_threads!r}")
        if (isinstance(batch_messages, bool) or not isinstance(batch_messages, numbers.Integral)
                or batch_messages < 1):
            raise ValueError(f"batch_messages must be an integer >= 1, got {batch_messages!r}")
        config, _, decoder = ckpt.load(checkpoint, need=("decoder",), expect={"M": M, "n": n})
        out_sig = [np.uint8] + ([(np.float32, M)] if probabilities else [])
        gr.decim_block.__init__(self, name="nn_decoder", in_sig=[np.complex64],
                                out_sig=out_sig, decim=n)
        if torch_threads > 0:
            torch.set_num_threads(int(torch_threads))
        if batch_messages > 1:
            self.set_output_multiple(int(batch_messages))
        self.M, self.n = M, n
        self.probabilities = bool(probabilities)
        self.training = training
        self._install(config, decoder)
        self._register_weights_port()
        self._trainer = None
        if training:
            try:  # the starting checkpoint's encoder, saved beside the trained decoder
                partner = ckpt.load(checkpoint, need=("encoder",), expect={"M": M, "n": n})[1]
            except ckpt.CheckpointError:
                partner = None
            self.batch_size, self.checkpoint_out, self.metrics_every = batch_size, checkpoint_out, metrics_every
            self._saver = LinkCheckpoint.for_path(checkpoint_out) if checkpoint_out else None
            if self._saver:
                self._saver.claim("decoder")
            self._partner = partner
            self._batches = 0
            self._metrics_mark = 0
            self._stopped = False
            self._metrics_history = []
            self._worker = TrainingWorker(blocking=bool(blocking), on_error=self._on_worker_error,
                                          name="e2e-nn_decoder-training")
            feedback = FeedbackLink(snr_db=feedback_snr_db, bits=feedback_bits or None,
                                    loss_prob=feedback_loss_prob, seed=seed)
            self._trainer = ReceiverTrainer(
                decoder, batch_size=batch_size, lr=lr, rx_batches=rx_batches, tx_batches=tx_batches, seed=seed,
                worker=self._worker, on_losses=self._publish_losses, feedback=feedback,
                save_path=checkpoint_out or None, save_every=save_every, encoder_for_save=partner,
                lr_schedule=self._lr_schedule, schedule_steps=self._schedule_steps)
            self._trainer.save = self._save  # the shared, whole-link checkpoint (block_common.LinkCheckpoint)
            self.set_output_multiple(batch_size)
            self.message_port_register_out(pmt.intern(LOSS_PORT))
            self.message_port_register_out(pmt.intern(METRICS_PORT))

    _NETWORK = "decoder"

    def _on_worker_error(self, e):
        self.logger.error(f"receiver training step failed: {e!r}")

    def _publish_losses(self, batch_index, losses):  # on the worker thread
        self.message_port_pub(pmt.intern(LOSS_PORT), loss_message(batch_index, losses))

    def _save(self, path):
        t = self._trainer
        return self._saver.save(path, self._config, "decoder", t.decoder, self._partner,
                                metadata={"receiver_steps": t.steps})

    def _work_training(self, input_items, output_items):
        decided = output_items[0]
        bs, n = self.batch_size, self.n
        batches = len(decided) // bs
        y = input_items[0][:batches * bs * n].reshape(batches * bs, n)
        decided[:batches * bs] = self._trainer.decide(y)
        for j in range(batches):
            self._trainer.on_batch(self._batches, y[j * bs:(j + 1) * bs])
            self._batches += 1
        if self.metrics_every and self._trainer.steps // self.metrics_every > self._metrics_mark:
            self._metrics_mark = self._trainer.steps // self.metrics_every
            self._publish_metrics()
        return batches * bs

    def _publish_metrics(self):
        m = self.training_metrics()
        self._metrics_history.append(m)
        self.message_port_pub(pmt.intern(METRICS_PORT), dict_message(m))

    def training_metrics(self):
        """Training mode: ReceiverTrainer.metrics() plus the batch count (a dict)."""
        if self._trainer is None:
            return {}
        m = self._trainer.metrics()
        m["batches"] = self._batches
        return m

    def metrics_history(self):
        """Training mode: every metrics dict published so far (a list, oldest first)."""
        return list(self._metrics_history) if self._trainer is not None else []

    def training_counters(self):
        """Training mode: dict of counters (metrics() counters and the worker's)."""
        if self._trainer is None:
            return {}
        m = self.training_metrics()
        return {"batches": m["batches"], "receiver_steps": m["receiver_steps"],
                "loss_messages": m["loss_messages"], "lost_feedback": m["lost_feedback"],
                "dropped_batches": m["dropped_batches"], "worker_errors": self._worker.errors,
                "pending_jobs": self._worker.pending}

    def _on_stopping(self):
        if self.metrics_every:
            self._publish_metrics()

    def _install(self, config, decoder):
        # work() reads only self._decoder, once per call: assigning it last
        # publishes the new network atomically, between two calls.
        self._config = config
        self._decoder = decoder

    def work(self, input_items, output_items):
        if self._trainer is not None:
            return self._work_training(input_items, output_items)
        decided = output_items[0]
        k = len(decided)
        decoder = self._decoder  # one read: a swap mid-call cannot mix two networks
        y = input_items[0][:k * self.n].reshape(k, self.n)
        with torch.inference_mode():
            logits = decoder(torch.from_numpy(complex_to_real(y)))
            # max().indices: ~2x faster than argmax() on [k, M] float32 on CPU.
            decided[:] = logits.max(dim=1).indices.numpy()
            if self.probabilities:
                output_items[1][:] = torch.softmax(logits, dim=1).numpy()
        return k
