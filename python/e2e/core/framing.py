"""Batch framing: cut a received sample stream into training batches (BatchFramer), or say which
batch and position each message of a tagged stream belongs to (MessageFramer).

Over a real channel samples are lost, frames arrive late or not at all, so
a receiver must find each batch from what travels with the samples, never
by counting from the start: a lost sample must cost one batch, not the run.

mode 'tags' (the default): a batch starts at a sample carrying a
    batch_index tag and takes the next batch_len samples.
    - A tag that comes before the open batch is complete ends it: the
      partial batch is dropped and counted (truncated). Lost samples cost
      the batch they were in.
    - Samples after a complete batch and before the next tag are discarded
      and counted (unframed_samples): inserted or duplicated samples cost
      nothing but themselves.
    - A tag whose packet_len says another length than batch_len opens no
      batch and is counted (bad_length): a transmitter with another
      batch_size or n is misconfigured, and its batches are not trained on.
    - A batch carried in several frames (OFDM) has a continuation tag on
      each later frame: the same batch_index and its position in the batch
      (batch_offset, samples). A continuation that does not match the open
      batch (a frame between was lost) ends it as truncated, and its
      samples are skipped until a batch starts.
mode 'count': batch b starts at sample b * batch_len from the start of
    the stream and tags are ignored. Exact in simulation; over a channel
    that loses one sample, every later batch is misframed.

Pure NumPy; the model_free_rx block feeds it from its work().
"""
import numpy as np

from . import validate

MODES = ("tags", "count")


class BatchFramer:
    """Stateful framer: push() chunks of samples with their tags, get back whole batches.

    batch_len: samples per batch (batch_size * n).
    dtype: sample type of the batches returned.
    """

    def __init__(self, batch_len, mode="tags", dtype=np.complex64):
        self.batch_len = validate.integer("batch_len", batch_len, 1)
        self.mode = validate.choice("framing", mode, MODES)
        self._buffer = np.empty(self.batch_len, dtype=dtype)
        self._index = None   # batch index of the open batch, None when none is open
        self._filled = 0
        self.batches = self.truncated = self.unframed_samples = self.bad_length = 0

    def push(self, samples, offset, tags=(), max_batches=None):
        """Frame samples[0:k], whose first sample has absolute stream offset `offset`.

        tags: iterable of (absolute offset, batch_index, packet_len or None)
            or (absolute offset, batch_index, packet_len or None, position):
            the batch tags on these samples (ignored in 'count' mode);
            position > 0 marks a continuation at that sample of the batch.
        max_batches: stop right after completing this many batches (the
            caller's room for output), leaving the rest of the samples.
        Returns (consumed, batches): how many samples were used, and a list
        of (batch_index, complex [batch_len] array) of completed batches.
        """
        k = len(samples)
        if self.mode == "count":
            first = -(-offset // self.batch_len) * self.batch_len
            tags = [(o, o // self.batch_len, None, 0) for o in range(first, offset + k, self.batch_len)]
        else:
            tags = sorted((int(t[0]), int(t[1]), t[2], int(t[3]) if len(t) > 3 else 0)
                          for t in tags if offset <= t[0] < offset + k)
        done, pos, t = [], 0, 0
        while pos < k and (max_batches is None or len(done) < max_batches):
            next_tag = tags[t][0] - offset if t < len(tags) else k
            if self._index is None:
                self.unframed_samples += next_tag - pos
                pos = next_tag
                if t < len(tags):
                    _, index, packet_len, position = tags[t]
                    if position == 0:
                        self._open(index, packet_len)
                    t += 1
                continue
            if next_tag == pos:
                _, index, packet_len, position = tags[t]
                if position and index == self._index and position == self._filled:
                    t += 1  # the next frame of the open batch, where it belongs
                    continue
                if self._filled:
                    self.truncated += 1  # a new batch, or a frame out of place, before this one was complete
                    self._index = None
                    continue
                if position == 0:  # a second tag where the batch opened: the later one wins
                    self._open(index, packet_len)
                    t += 1
                    continue
                self._index = None
                continue
            take = min(self.batch_len - self._filled, next_tag - pos)
            self._buffer[self._filled:self._filled + take] = samples[pos:pos + take]
            self._filled += take
            pos += take
            if self._filled == self.batch_len:
                done.append((self._index, self._buffer.copy()))
                self.batches += 1
                self._index = None
        return pos, done

    def _open(self, batch_index, packet_len):
        self._index, self._filled = None, 0
        if packet_len is not None and packet_len != self.batch_len:
            self.bad_length += 1
            return
        self._index = batch_index

    @property
    def partial_samples(self):
        """Samples of the open batch still waiting for the rest (0 when none is open)."""
        return self._filled if self._index is not None else 0

    def counters(self):
        """batches framed, truncated_batches, unframed_samples, bad_length_tags, and
        partial_batch_samples: what the open batch holds (at the end of a finite
        stream, a batch whose tail never came)."""
        return {"batches": self.batches, "truncated_batches": self.truncated,
                "unframed_samples": self.unframed_samples, "bad_length_tags": self.bad_length,
                "partial_batch_samples": self.partial_samples}


class MessageFramer:
    """Which batch, and which message of it, each message of a tagged stream is (pure NumPy).

    The framing of channel_capture, which records messages rather than whole
    batches: a batch cut short keeps the messages it holds (BatchFramer, for
    training, drops it). A batch starts at an item carrying a batch_index
    tag: message k of batch b starts k*n items after the tag, up to
    batch_size messages (batch_size
    > 0), or up to the next tag (batch_size 0). A tag that is not on a
    message boundary (a multiple of n from item 0) closes the open batch
    (counted: misaligned_tags). With batch_size > 0, a packet_len tag on the
    same item must say batch_size (messages, as training_source -> nn_encoder
    carries it: nn_encoder scales offsets, not values) or batch_size * n
    (items, as model_free_tx writes it); any other length opens no batch
    (counted: bad_length_tags). Messages outside a batch get batch -1.
    """

    def __init__(self, n, batch_size):
        self.n, self.batch_size = n, batch_size
        self._tags = {}      # item offset -> [batch_index or None, packet_len or None], not yet applied
        self._open = None    # (batch_index, start item, messages or None) of the open batch
        self.misaligned_tags = self.bad_length_tags = 0

    def add_tag(self, offset, batch_index=None, packet_len=None):
        """The batch_index and/or packet_len tag values at absolute item `offset`."""
        entry = self._tags.setdefault(int(offset), [None, None])
        if batch_index is not None:
            entry[0] = batch_index
        if packet_len is not None:
            entry[1] = packet_len

    def frame(self, first, count):
        """(batch int64 [count], position int64 [count]) of messages first .. first+count-1; -1 outside a batch."""
        n = self.n
        batch = np.full(count, -1, dtype=np.int64)
        position = np.full(count, -1, dtype=np.int64)
        starts = (first + np.arange(count, dtype=np.int64)) * n
        end = (first + count) * n
        j = 0
        for offset in sorted(o for o in self._tags if o < end) + [end]:
            # Messages starting before this tag belong to what was open before it.
            hi = min(count, max(j, -(-(offset - first * n) // n)))
            if self._open is not None and hi > j:
                b, t0, limit = self._open
                k = (starts[j:hi] - t0) // n
                inside = k < limit if limit is not None else np.ones(hi - j, dtype=bool)
                batch[j:hi][inside], position[j:hi][inside] = b, k[inside]
            j = hi
            if offset == end:
                break
            self._apply(offset, *self._tags.pop(offset))
        return batch, position

    def _apply(self, offset, index, packet_len):
        if index is None:  # a packet_len alone opens nothing
            return
        if offset % self.n:
            self.misaligned_tags += 1
            self._open = None
            return
        if self.batch_size and packet_len is not None and packet_len not in (self.batch_size,
                                                                             self.batch_size * self.n):
            self.bad_length_tags += 1
            self._open = None
            return
        self._open = (index, offset, self.batch_size or None)

    def has_tag_at(self, offset):
        return self._tags.get(offset, [None])[0] is not None
