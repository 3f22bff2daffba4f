"""model_free_tx: the transmitter end of live model-free training (GNU Radio block)."""
import numpy as np
import pmt
from gnuradio import gr

from .block_common import (BATCH_INDEX_TAG, LOSS_PORT, PACKET_LEN_TAG, OutOfRangeWarning, TrainingBlock,
                           keep_alive, load_network, parse_loss_message, validate_sizes)
from .core.live import TransmitterTrainer
from .core.model_free import ModelFreeParams

_DEFAULTS = ModelFreeParams()


class model_free_tx(TrainingBlock, OutOfRangeWarning, gr.interp_block):
    """Learned transmitter trained live from fed-back losses (Aoudia & Hoydis).

    Feed it a training_source (same batch_size and seed): it sends each
    batch's symbols and trains its encoder by policy gradient from the
    per-example losses model_free_rx sends back on the `loss` port. Nothing
    is differentiated through the channel, so the channel may be anything:
    a simulation, a ZMQ link, a radio.

    Batch b's index comes from the 'batch_index' tag on its first item (a
    batch without one takes the index after the previous batch's). Its phase
    is R receiver batches then T transmitter batches, repeating: receiver
    batches send f(m); transmitter batches send the relaxed
    sqrt(1 - sigma2) f(m) + w, w ~ CN(0, sigma2) drawn from (seed,
    PERTURBATION, b), and keep (m, w) in a store of the last 32 transmitter
    batches until their losses come back. Each loss message queues a
    policy-gradient step (core.live.TransmitterTrainer): with blocking=True
    (simulation) it runs at once in the block's thread, so every step is
    taken, in order; with blocking=False (a radio) it runs on a worker
    thread, work() never waits on it, and steps the worker cannot keep up
    with are dropped and counted. The trained encoder is saved as a
    'transmitter' checkpoint; `gr_e2e merge` pairs it with model_free_rx's
    receiver checkpoint into a link.

    Parameters (the recipe is core.model_free.ModelFreeParams, shared with
    model_free_rx and the offline trainer; defaults are the paper's)
    ----------
    checkpoint : str, starting weights: any checkpoint holding an encoder (a
        link or a transmitter file) with these M and n.
    M : int in [2, 256]; n : int >= 1, complex symbols per message.
    batch_size : int >= 1, messages per batch (the training_source's).
    seed : int >= 0, the training seed (the training_source's and
        model_free_rx's).
    rx_batches, tx_batches : ints >= 0, not both 0: the schedule; model_free_rx
        must use the same.
    sigma2 : float in (0, 1), exploration variance per channel use.
    lr : float > 0, Adam learning rate of the transmitter.
    baseline : 'none' (the paper's estimator) or 'mean' (subtract the batch's
        mean loss: lower variance).
    lr_schedule : 'constant', 'cosine' or 'step', over schedule_steps
        transmitter steps (then held); anything but 'constant' needs
        schedule_steps > 0.
    blocking : bool; True: steps run in the block's thread (simulation:
        none dropped, reproducible up to thread timing); False: on a worker
        thread, dropping and counting what it cannot keep up with (a radio).
    publish_every : int >= 0; > 0 publishes the encoder on `weights` every
        that many steps.
    checkpoint_out : str; non-empty writes the transmitter checkpoint there
        every save_every steps (0: only at stop) and when the flowgraph stops.
    save_every : int >= 0.
    metrics_every : int >= 0; > 0 publishes `metrics` every that many steps
        (the counters at stop go to the log).

    Ports
    -----
    in 0 : uint8 stream of message indices in [0, M), in whole batches, each
        tagged 'batch_index' on its first item. Indices >= M send zero
        symbols, are counted and warned about once per burst; a transmitter
        batch holding any is not trained on.
    out 0 : complex64 stream, n symbols per message, Es = 1. The first sample
        of each batch is tagged 'batch_index' (uint64) and 'packet_len'
        (long, batch_size * n), the tags model_free_rx frames batches by.
    loss (message in) : PMT dict {'batch_index': integer, 'losses': f32vector
        of batch_size}, as model_free_rx sends. A loss for a batch not in the
        store (unknown, a receiver batch, or expired) is counted and dropped;
        a malformed message is logged and dropped; the flowgraph runs on.
    weights (message out) : a transmitter checkpoint as a PMT u8vector, every
        publish_every steps; an nn_encoder's `weights` input takes it.
    metrics (message out) : PMT dict of training_counters() (longs).
    """

    def __init__(self, checkpoint, M, n, batch_size=_DEFAULTS.batch_size, seed=_DEFAULTS.seed,
                 rx_batches=_DEFAULTS.rx_batches, tx_batches=_DEFAULTS.tx_batches, sigma2=_DEFAULTS.sigma2,
                 lr=_DEFAULTS.lr, baseline=_DEFAULTS.baseline, lr_schedule=_DEFAULTS.lr_schedule,
                 schedule_steps=_DEFAULTS.schedule_steps, blocking=False, publish_every=0, checkpoint_out="",
                 save_every=0, metrics_every=0):
        self.M, self.n = validate_sizes(M, n)
        params = ModelFreeParams(batch_size=batch_size, seed=seed, rx_batches=rx_batches, tx_batches=tx_batches,
                                 sigma2=sigma2, lr=lr, baseline=baseline, lr_schedule=lr_schedule,
                                 schedule_steps=schedule_steps).live_check()
        config, encoder = load_network(checkpoint, "encoder", self.M, self.n, training_start=True)
        gr.interp_block.__init__(self, name="model_free_tx", in_sig=[np.uint8], out_sig=[np.complex64],
                                 interp=self.n)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.params, self._config = params, config
        self._setup_training(lambda **kw: TransmitterTrainer(encoder, params, **kw), blocking=blocking,
                             checkpoint_out=checkpoint_out, save_every=save_every, publish_every=publish_every,
                             metrics_every=metrics_every)
        self.set_output_multiple(params.batch_size * self.n)
        self.set_tag_propagation_policy(gr.TPP_DONT)  # the block writes its batches' tags itself
        self.message_port_register_in(pmt.intern(LOSS_PORT))
        self.set_msg_handler(pmt.intern(LOSS_PORT), self._on_loss)
        self._next_batch = 0
        self._batches = 0
        self._bad_messages = 0
        self._keys = {name: pmt.intern(name) for name in (BATCH_INDEX_TAG, PACKET_LEN_TAG)}
        self._packet_len = pmt.from_long(params.batch_size * self.n)
        self._srcid = pmt.intern(self.alias())

    def _on_loss(self, msg):
        try:
            b, losses = parse_loss_message(msg)
        except Exception as e:  # a malformed message must never stop the flowgraph
            self._bad_messages += 1
            self.logger.warn(f"dropped loss message: {e} ({self._bad_messages} malformed so far)")
            return
        if self._trainer.on_losses(b, losses) == "mismatch":
            self.logger.warn(f"dropped loss message for batch {b}: {len(losses)} losses (expected "
                             f"{self.params.batch_size}) or non-finite values")

    def work(self, input_items, output_items):
        msgs, out = input_items[0], output_items[0]
        bs, n = self.params.batch_size, self.n
        batches = len(msgs) // bs
        start = self.nitems_read(0)
        tags = {t.offset: t.value for t in self.get_tags_in_window(0, 0, batches * bs, self._keys[BATCH_INDEX_TAG])}
        written = self.nitems_written(0)
        before = self._trainer.out_of_range
        for j in range(batches):
            value = tags.get(start + j * bs)
            if value is not None:
                self._next_batch = int(pmt.to_uint64(value) if pmt.is_uint64(value) else pmt.to_long(value))
            b = self._next_batch
            out[j * bs * n:(j + 1) * bs * n] = self._trainer.symbols(b, msgs[j * bs:(j + 1) * bs]).reshape(-1)
            self.add_item_tag(0, written + j * bs * n, self._keys[BATCH_INDEX_TAG], pmt.from_uint64(b), self._srcid)
            self.add_item_tag(0, written + j * bs * n, self._keys[PACKET_LEN_TAG], self._packet_len, self._srcid)
            self._next_batch = b + 1
            self._batches += 1
        self._warn_out_of_range(self._trainer.out_of_range - before, self._trainer.out_of_range)
        return batches * bs * n

    def symbol_table(self):
        """The encoder's latest codebook: complex64 [M, n] (a copy)."""
        return self._trainer.symbol_table().copy()

    def training_counters(self):
        """Counters of the run: batches sent, steps, and every kind of dropped input (a dict)."""
        c = self._trainer.counters()
        c.update(batches=self._batches, malformed_loss_messages=self._bad_messages,
                 worker_errors=self._worker.errors, pending_steps=self._worker.pending)
        return c
