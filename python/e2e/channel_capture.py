"""channel_capture: record what a channel did to what was sent, as a channel dataset (GNU Radio sink).

    tx -> channel -> ... -> channel_capture in 1 (y)
     +-------------------->  channel_capture in 0 (x)

The pairs (x, y) of each message go to a core.channel_dataset file, from
which a channel model (core.channel_gan) is learned. Batches are framed as
live training frames them (core.framing): a batch starts at a `batch_index`
tag on the transmitted stream, never by counting from the start; unlike
live training, a batch cut short still gives the messages it holds, each a
valid pair with its own batch position (core.framing.MessageFramer).
"""
import os

import numpy as np
import pmt
from gnuradio import gr

from .block_common import BATCH_INDEX_TAG, PACKET_LEN_TAG, keep_alive, validate_sizes
from .core import channel_dataset, prng, validate
from .core.framing import MessageFramer


def _tag_int(value):
    """A tag's integer value (uint64 or long PMT), or None if it holds no integer."""
    if pmt.is_uint64(value):
        return int(pmt.to_uint64(value))
    if pmt.is_integer(value):
        return int(pmt.to_long(value))
    return None


class channel_capture(gr.sync_block):
    """Channel capture: transmitted and received symbols in, a channel dataset file out.

    Both inputs carry n symbols per message, message-aligned at item 0, and
    item i of one is item i of the other: what was sent and what arrived
    for it. The received stream must stay aligned with the transmitted one.
    A channel that drops or inserts samples breaks that: GNU Radio's stock
    channels.channel_model drops its first 3 samples, so compensate it (a
    Delay of 3 on the transmitted input) or use e2e.simulated_channel or a
    Noise Source plus Add, which keep every sample.

    Batch alignment, as live training: when input 0 carries `batch_index`
    tags from its first item on (training_source -> nn_encoder, or
    model_free_tx), every recorded message gets its batch index, and, with
    batch_size > 0, the message itself, regenerated as
    prng.batch_messages(seed, b, batch_size, M)[k] for message k of batch b
    (MessageFramer says how batches are framed). Messages outside a batch
    are not recorded (counted: unframed_messages). Without a tag on item 0
    the capture is untagged: every message is recorded, batch_index and
    messages are None, later tags are ignored.

    The file (core.channel_dataset, written atomically) holds every message
    recorded so far; it is written when max_messages are recorded, every
    save_every messages, and when the flowgraph stops (if anything new was
    recorded). Messages after max_messages are not recorded (counted:
    ignored_messages). Each write is logged with its message count.

    Parameters
    ----------
    path : str, the dataset file to write (its folder must exist).
    M : int in [2, 256], messages of the link; n : int >= 1, symbols per
        message. Stored in the file (with n they set the rate that defines Eb/N0).
    max_messages : int >= 1, messages to record.
    seed : int >= 0, the training seed of the tagged stream (for
        regenerating messages; stored with batch_size).
    batch_size : int >= 0, messages per batch of the tagged stream; 0:
        unknown (messages are not regenerated, a batch runs to the next tag).
    sample_rate : float >= 0, samples per second of the stream (0: unknown), stored.
    source_label : str, where the pairs come from (stored as the dataset's source).
    save_every : int >= 0, also write the file every that many recorded
        messages (0: only at max_messages and at stop).
    Bad values raise ValueError naming the parameter.

    Ports
    -----
    in 0 : complex64 stream, the transmitted symbols x (tags read here).
    in 1 : complex64 stream, the received symbols y.
    """

    def __init__(self, path, M, n, max_messages=100000, seed=0, batch_size=0, sample_rate=0.0,
                 source_label="flowgraph", save_every=0):
        self.path = validate.path("path", path, allow_empty=False)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"path must be in an existing folder, got {path!r} ({folder} does not exist)")
        self.M, self.n = validate_sizes(M, n)
        self.max_messages = validate.integer("max_messages", max_messages, 1)
        self.seed = validate.integer("seed", seed, 0)
        self.batch_size = validate.integer("batch_size", batch_size, 0)
        self.sample_rate = validate.real("sample_rate", sample_rate, 0)
        if not isinstance(source_label, str):
            raise ValueError(f"source_label must be a str, got {source_label!r}")
        self.source_label = source_label
        self.save_every = validate.integer("save_every", save_every, 0)
        gr.sync_block.__init__(self, name="channel_capture", in_sig=[np.complex64, np.complex64], out_sig=None)
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self._x = np.zeros((self.max_messages, self.n), dtype=np.complex64)
        self._y = np.zeros((self.max_messages, self.n), dtype=np.complex64)
        self._batch = np.zeros(self.max_messages, dtype=np.int64)
        self._message = np.zeros(self.max_messages, dtype=np.int64)
        self._part_x = np.zeros(0, dtype=np.complex64)  # items of a message not complete yet
        self._part_y = np.zeros(0, dtype=np.complex64)
        self._framer = MessageFramer(self.n, self.batch_size)
        self._tagged = None  # decided by the first message: a batch_index tag on item 0
        self._seen = 0       # messages that passed (recorded or not)
        self._count = 0      # messages recorded
        self._written = 0    # messages in the file last written
        self._writes = 0
        self._unframed = self._ignored = 0
        self._ignored_tags_warned = False
        self._cached_batch = (None, None)  # (b, messages of batch b)

    # --- the stream -----------------------------------------------------------------

    def work(self, input_items, output_items):
        k = len(input_items[0])
        for tag in self.get_tags_in_window(0, 0, k):
            key = pmt.symbol_to_string(tag.key) if pmt.is_symbol(tag.key) else None
            value = _tag_int(tag.value) if key in (BATCH_INDEX_TAG, PACKET_LEN_TAG) else None
            if value is None:
                continue
            if key == BATCH_INDEX_TAG:
                self._framer.add_tag(tag.offset, batch_index=value)
            else:
                self._framer.add_tag(tag.offset, packet_len=value)
        x = np.concatenate([self._part_x, input_items[0][:k]])
        y = np.concatenate([self._part_y, input_items[1][:k]])
        m = len(x) // self.n
        self._part_x, self._part_y = x[m * self.n:].copy(), y[m * self.n:].copy()
        if m:
            self._record(x[:m * self.n].reshape(m, self.n), y[:m * self.n].reshape(m, self.n))
        return k

    def _record(self, x, y):
        m = len(x)
        if self._tagged is None:
            self._tagged = self._framer.has_tag_at(0)
        batch, position = self._framer.frame(self._seen, m)
        self._seen += m
        if self._tagged:
            keep = batch >= 0
            self._unframed += int(m - np.count_nonzero(keep))
            x, y, batch, position = x[keep], y[keep], batch[keep], position[keep]
        elif not self._ignored_tags_warned and np.any(batch >= 0):
            self._ignored_tags_warned = True
            self.logger.warn("batch_index tags arrived after an untagged start (no tag on item 0): ignored; "
                             "the capture records no batch indices")
        take = min(self.max_messages - self._count, len(x))
        self._ignored += len(x) - take
        done = 0
        while done < take:
            # Up to the next write: the file holds exactly save_every, 2 save_every, ... messages.
            lo = self._count
            hi = self.max_messages
            if self.save_every:
                hi = min(hi, (lo // self.save_every + 1) * self.save_every)
            hi = min(hi, lo + take - done)
            piece = slice(done, done + hi - lo)
            self._x[lo:hi], self._y[lo:hi] = x[piece], y[piece]
            if self._tagged:
                self._batch[lo:hi] = batch[piece]
                if self.batch_size:
                    self._message[lo:hi] = self._messages_of(batch[piece], position[piece])
            self._count, done = hi, done + hi - lo
            if self._count == self.max_messages:
                self.logger.info(f"captured max_messages={self.max_messages}; later messages are not recorded")
                self._write()
            elif self.save_every and self._count % self.save_every == 0:
                self._write()

    def _messages_of(self, batch, position):
        """Messages regenerated from (seed, batch index): int64 [len(batch)]."""
        out = np.empty(len(batch), dtype=np.int64)
        for b in np.unique(batch):
            cached_b, msgs = self._cached_batch
            if cached_b != b:
                msgs = prng.batch_messages(self.seed, int(b), self.batch_size, self.M)
                self._cached_batch = (b, msgs)
            rows = batch == b
            out[rows] = msgs[position[rows]]
        return out

    # --- the file -------------------------------------------------------------------

    def dataset(self):
        """What was recorded so far as a core.channel_dataset.ChannelDataset (None if nothing was)."""
        c = self._count
        if not c:
            return None
        tagged = bool(self._tagged)
        return channel_dataset.ChannelDataset(
            x=self._x[:c].copy(), y=self._y[:c].copy(), M=self.M, n=self.n, mode="complex",
            messages=self._message[:c].copy() if tagged and self.batch_size else None,
            batch_index=self._batch[:c].copy() if tagged else None,
            sample_rate=self.sample_rate, source=self.source_label, ebn0_db=None,
            seed=self.seed if tagged else None, batch_size=self.batch_size or None)

    def _write(self):
        """Write every recorded message to path; errors are logged, never raised (the flowgraph goes on)."""
        try:
            channel_dataset.save_dataset(self.path, self.dataset())
        except Exception as e:
            self.logger.error(f"channel dataset not written to {self.path}: {e}")
            return False
        self._written, self._writes = self._count, self._writes + 1
        self.logger.info(f"wrote {self._count} messages to {self.path}")
        return True

    def save(self):
        """Write the file now (if anything was recorded); True if written."""
        return self._write() if self._count else False

    def stop(self):
        """Flowgraph stop: write what was recorded since the last write, log the counters."""
        if self._count > self._written:
            self._write()
        elif not self._count:
            self.logger.warn(f"no message recorded, {self.path} not written: {self.counters()}")
        return True

    # --- what it reports --------------------------------------------------------------

    def messages(self):
        """Messages recorded so far."""
        return self._count

    def counters(self):
        """{messages, written, writes, unframed_messages, ignored_messages, misaligned_tags, bad_length_tags}."""
        return {"messages": self._count, "written": self._written, "writes": self._writes,
                "unframed_messages": self._unframed, "ignored_messages": self._ignored,
                "misaligned_tags": self._framer.misaligned_tags, "bad_length_tags": self._framer.bad_length_tags}

    def metric(self, name):
        """One value of counters(), e.g. for a GRC Function Probe; KeyError names the ones there are."""
        counters = self.counters()
        if name not in counters:
            raise KeyError(f"channel_capture has no metric {name!r}; it has {sorted(counters)}")
        return counters[name]
