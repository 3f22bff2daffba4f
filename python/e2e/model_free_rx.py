"""model_free_rx: the receiver end of live model-free training (GNU Radio block)."""
import numpy as np
import pmt
from gnuradio import gr

from .block_common import (BATCH_INDEX_TAG, BATCH_OFFSET_TAG, LOSS_PORT, PACKET_LEN_TAG, TrainingBlock,
                           keep_alive, load_network, loss_message, validate_sizes)
from .core.framing import BatchFramer
from .core.live import ReceiverTrainer
from .core.model_free import FeedbackLink, ModelFreeParams

_DEFAULTS = ModelFreeParams()


class model_free_rx(TrainingBlock, gr.basic_block):
    """Learned receiver trained live, feeding losses back to model_free_tx (Aoudia & Hoydis).

    It frames its input into batches, regenerates each batch's messages from
    the seed and the batch index, and, by the batch's phase: on receiver
    batches takes a gradient step with the true gradient; on transmitter
    batches computes the per-example cross-entropy losses, passes them
    through the feedback-link impairments and sends them on `loss`
    (core.live.ReceiverTrainer). With blocking=True (simulation) each batch's
    job runs inside work(), so every batch trains, in order, and a finished
    flowgraph has sent all its losses; with blocking=False (a radio) the jobs
    run on a worker thread, work() never waits on them, and batches the
    worker cannot keep up with are dropped and counted. The trained decoder is saved
    as a 'receiver' checkpoint; `gr_e2e merge` pairs it with model_free_tx's
    transmitter checkpoint into a link.

    Framing (core.framing.BatchFramer): with framing='tags' a batch starts
    at a sample tagged 'batch_index' (model_free_tx tags every batch) and
    takes the next batch_size * n samples, so a lost or duplicated chunk of
    samples costs the batches it touched, never the later ones: a batch cut
    short by the next tag is dropped (truncated_batches), samples between a
    complete batch and the next tag are skipped (unframed_samples), a batch
    whose 'packet_len' tag disagrees with batch_size * n is refused
    (bad_length_tags). A batch carried in several frames (ofdm_e2e_rx) has
    a 'batch_offset' tag on each later frame; one that does not follow the
    open batch (a frame between was lost) ends it. The channel in between must keep tags on their
    samples (a noise source plus an add block does; GNU Radio's
    channel_model moves them 3 samples). framing='count' ignores tags and
    counts batches from the first sample: exact only if no sample is lost.

    Parameters (the recipe is core.model_free.ModelFreeParams, shared with
    model_free_tx and the offline trainer; defaults are the paper's)
    ----------
    checkpoint : str, starting weights: any checkpoint holding a decoder (a
        link or a receiver file) with these M and n.
    M : int in [2, 256]; n : int >= 1, complex symbols per message.
    batch_size, seed, rx_batches, tx_batches : as model_free_tx's (must match).
    lr : float > 0, Adam learning rate of the receiver.
    lr_schedule, schedule_steps : as model_free_tx's, in receiver steps.
    framing : 'tags' or 'count', see above.
    blocking : bool, see above: True for simulation, False for a radio.
    feedback_snr_db : None or float, additive Gaussian noise on the losses at
        SNRfb = E[l^2] / sigma_e^2 (dB).
    feedback_bits : int in [0, 24]; > 0 quantises the losses to that many
        bits (between the batch's min and max); 0 does not quantise.
    feedback_loss_prob : float in [0, 1], probability that a loss message is
        lost (counted as lost_feedback).
    publish_every, checkpoint_out, save_every, metrics_every : as
        model_free_tx's, counted in receiver steps.

    Ports
    -----
    in 0 : complex64 stream, n symbols per message, batches tagged as above.
    out 0 : uint8 stream, the decided messages of every framed batch (from
        the latest published receiver), its first item tagged 'batch_index'.
    loss (message out) : PMT dict {'batch_index': long, 'losses': f32vector
        of batch_size per-example losses}, one per transmitter batch; wire it
        to model_free_tx's `loss` input.
    weights (message out) : a receiver checkpoint as a PMT u8vector, every
        publish_every steps; an nn_decoder's `weights` input takes it.
    metrics (message out) : PMT dict of training_counters(): receiver_steps,
        loss and bler (doubles: mean over the last 10 receiver batches),
        loss_messages, lost_feedback, dropped_batches, the framing counters
        (longs).
    """

    def __init__(self, checkpoint, M, n, batch_size=_DEFAULTS.batch_size, seed=_DEFAULTS.seed,
                 rx_batches=_DEFAULTS.rx_batches, tx_batches=_DEFAULTS.tx_batches, lr=_DEFAULTS.lr,
                 lr_schedule=_DEFAULTS.lr_schedule, schedule_steps=_DEFAULTS.schedule_steps, framing="tags",
                 blocking=False, feedback_snr_db=None, feedback_bits=0, feedback_loss_prob=0.0,
                 publish_every=0, checkpoint_out="", save_every=0, metrics_every=0):
        self.M, self.n = validate_sizes(M, n)
        params = ModelFreeParams(batch_size=batch_size, seed=seed, rx_batches=rx_batches, tx_batches=tx_batches,
                                 lr=lr, lr_schedule=lr_schedule, schedule_steps=schedule_steps).live_check()
        feedback = FeedbackLink(snr_db=feedback_snr_db, bits=feedback_bits, loss_prob=feedback_loss_prob,
                                seed=params.seed)
        self._framer = BatchFramer(params.batch_size * self.n, framing)
        config, decoder = load_network(checkpoint, "decoder", self.M, self.n, training_start=True)
        gr.basic_block.__init__(self, name="model_free_rx", in_sig=[np.complex64], out_sig=[np.uint8])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.params, self._config = params, config
        self._setup_training(lambda **kw: ReceiverTrainer(decoder, params, on_losses=self._publish_losses,
                                                          feedback=feedback, **kw),
                             blocking=blocking, checkpoint_out=checkpoint_out, save_every=save_every,
                             publish_every=publish_every, metrics_every=metrics_every)
        self.set_output_multiple(params.batch_size)
        self.set_relative_rate(1, self.n)
        self.set_tag_propagation_policy(gr.TPP_DONT)  # output tags name batches, written below
        self.message_port_register_out(pmt.intern(LOSS_PORT))
        self._keys = {name: pmt.intern(name) for name in (BATCH_INDEX_TAG, PACKET_LEN_TAG, BATCH_OFFSET_TAG)}
        self._srcid = pmt.intern(self.alias())
        self._bad_tags = 0

    def _publish_losses(self, batch_index, losses):  # on the worker thread
        self.message_port_pub(pmt.intern(LOSS_PORT), loss_message(batch_index, losses))

    def forecast(self, noutput_items, ninputs):
        # The framer keeps a partial batch between calls: any input is progress.
        return [1] * ninputs

    def _tags(self, count):
        """(absolute offset, batch_index, packet_len or None, batch_offset) of the batch tags on the next `count`
        inputs."""
        def longs(key):
            return {t.offset: pmt.to_long(t.value) for t in self.get_tags_in_window(0, 0, count, self._keys[key])
                    if pmt.is_integer(t.value)}
        lengths, positions = longs(PACKET_LEN_TAG), longs(BATCH_OFFSET_TAG)
        out = []
        for t in self.get_tags_in_window(0, 0, count, self._keys[BATCH_INDEX_TAG]):
            if pmt.is_uint64(t.value) or pmt.is_integer(t.value):
                index = pmt.to_uint64(t.value) if pmt.is_uint64(t.value) else pmt.to_long(t.value)
                position = positions.get(t.offset, 0)
                if index >= 0 and position >= 0:
                    out.append((t.offset, index, lengths.get(t.offset), position))
                    continue
            self._bad_tags += 1
        return out

    def general_work(self, input_items, output_items):
        y, decided = input_items[0], output_items[0]
        bs = self.params.batch_size
        tags = self._tags(len(y)) if self._framer.mode == "tags" else ()
        consumed, batches = self._framer.push(y, self.nitems_read(0), tags, max_batches=len(decided) // bs)
        written = self.nitems_written(0)
        for j, (index, samples) in enumerate(batches):
            batch = samples.reshape(bs, self.n)
            decided[j * bs:(j + 1) * bs] = self._trainer.decide(batch)
            self.add_item_tag(0, written + j * bs, self._keys[BATCH_INDEX_TAG], pmt.from_uint64(index), self._srcid)
            self._trainer.on_batch(index, batch)
        self.consume(0, consumed)
        return len(batches) * bs

    def training_counters(self):
        """Receiver metrics (running loss and BLER), feedback and framing counters (a dict)."""
        m = self._trainer.metrics()
        m.update(self._framer.counters(), malformed_tags=self._bad_tags, worker_errors=self._worker.errors,
                 pending_jobs=self._worker.pending)
        return m
