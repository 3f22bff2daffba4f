"""core.framing.BatchFramer: batches from tags, what a lost or repeated sample costs, chunk independence."""
import numpy as np
import pytest

from gnuradio.e2e.core.framing import BatchFramer

L = 50  # samples per batch


def stream(batches, drops=(), repeats=()):
    """Samples 0..batches*L-1 with a tag (offset, index, L) at each batch start, then faults applied.

    drops: (offset, count) samples removed; repeats: (offset, count) samples
    sent twice (the copy carries no tag), both in original offsets.
    """
    x = np.arange(batches * L).astype(np.complex64)
    tag_at = {b * L: b for b in range(batches)}
    gone = {o + k for o, c in drops for k in range(c)}
    extra = dict(repeats)
    out, tags = [], []
    for i in range(len(x)):
        if i in extra:
            out.extend(x[i:i + extra[i]])
        if i in gone:
            continue
        if i in tag_at:
            tags.append((len(out), tag_at[i], L))
        out.append(x[i])
    return np.array(out, np.complex64), tags


def frame(samples, tags, chunks=None, room=None, mode="tags"):
    """Push samples in chunks (sizes from chunks(), else all at once); (batch indices, batches, counters)."""
    framer = BatchFramer(L, mode)
    got, off = [], 0
    while off < len(samples):
        k = len(samples) - off if chunks is None else min(chunks(), len(samples) - off)
        window = [t for t in tags if off <= t[0] < off + k]
        used, done = framer.push(samples[off:off + k], off, window, max_batches=None if room is None else room())
        got += done
        off += used
    return [b for b, _ in got], [x for _, x in got], framer.counters()


def test_clean_stream_is_framed_batch_by_batch():
    x, tags = stream(10)
    indices, batches, c = frame(x, tags)
    assert indices == list(range(10))
    for b, batch in zip(indices, batches):
        np.testing.assert_array_equal(batch, np.arange(b * L, (b + 1) * L))
    assert c == {"batches": 10, "truncated_batches": 0, "unframed_samples": 0, "bad_length_tags": 0,
                 "partial_batch_samples": 0}


def test_lost_samples_cost_the_batch_they_were_in():
    x, tags = stream(10, drops=[(3 * L + 7, 5)])
    indices, batches, c = frame(x, tags)
    assert indices == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(batches[3], np.arange(4 * L, 5 * L))  # batch 4 intact, in step
    assert (c["truncated_batches"], c["unframed_samples"]) == (1, 0)


def test_lost_tag_costs_its_batch_and_nothing_after():
    x, tags = stream(10)
    indices, _, c = frame(x, [t for t in tags if t[1] != 6])
    assert indices == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert c["unframed_samples"] == L


def test_repeated_samples_are_skipped_until_the_next_tag():
    x, tags = stream(10, repeats=[(5 * L + 10, 8)])
    indices, batches, c = frame(x, tags)
    assert indices == list(range(10))
    assert c["unframed_samples"] == 8 and c["truncated_batches"] == 0
    np.testing.assert_array_equal(batches[6], np.arange(6 * L, 7 * L))  # the next batch is in step again


def test_a_length_tag_of_another_size_opens_no_batch():
    x, tags = stream(4)
    tags = [(o, b, 2 * L if b == 2 else p) for o, b, p in tags]
    indices, _, c = frame(x, tags)
    assert indices == [0, 1, 3] and c["bad_length_tags"] == 1 and c["unframed_samples"] == L
    # Without packet_len the tag alone frames the batch.
    assert frame(x, [(o, b, None) for o, b, _ in tags])[0] == [0, 1, 2, 3]


def test_the_later_of_two_tags_on_one_sample_names_the_batch():
    x, tags = stream(3)
    tags = tags + [(L, 77, L)]
    assert frame(x, tags)[0] == [0, 77, 2]


def test_an_unfinished_batch_at_the_end_is_held_not_counted():
    x, tags = stream(3)
    indices, _, c = frame(x[:-10], tags)
    assert indices == [0, 1] and c["partial_batch_samples"] == L - 10


def test_count_mode_ignores_tags_and_goes_out_of_step_after_a_loss():
    x, tags = stream(6, drops=[(2 * L + 3, 1)])
    indices, batches, c = frame(x, [], mode="count")
    assert indices == [0, 1, 2, 3, 4]  # the last batch is one sample short
    np.testing.assert_array_equal(batches[3], np.arange(3 * L + 1, 4 * L + 1))  # shifted: out of step for good
    assert c["truncated_batches"] == 0 and c["partial_batch_samples"] == L - 1


def test_framing_does_not_depend_on_how_the_stream_is_cut():
    """Any cut into chunks, and any output room per call, frames the same batches."""
    x, tags = stream(40, drops=[(7 * L + 3, 5), (20 * L, 2)], repeats=[(30 * L + 11, 9)])
    reference = frame(x, tags)
    rng = np.random.default_rng(0)
    for _ in range(200):
        got = frame(x, tags, chunks=lambda: int(rng.integers(1, 3 * L)), room=lambda: int(rng.integers(1, 4)))
        assert got[0] == reference[0] and got[2] == reference[2]
        for a, b in zip(got[1], reference[1]):
            np.testing.assert_array_equal(a, b)


def test_room_limits_batches_per_push_and_keeps_the_rest():
    x, tags = stream(5)
    framer = BatchFramer(L)
    used, done = framer.push(x, 0, tags, max_batches=2)
    assert used == 2 * L and [b for b, _ in done] == [0, 1]


def test_parameters():
    with pytest.raises(ValueError, match="^framing must be one of"):
        BatchFramer(L, "headers")
    with pytest.raises(ValueError, match="^batch_len must"):
        BatchFramer(0)


def frames_of(batches, frames_per_batch, lost=()):
    """A stream of frames (L // frames_per_batch samples each), first frames tagged as batch starts,
    later ones as continuations; `lost` frame numbers never arrive."""
    per = L // frames_per_batch
    x, tags = [], []
    for f in range(batches * frames_per_batch):
        if f in lost:
            continue
        b, k = divmod(f, frames_per_batch)
        tags.append((len(x), b, L if k == 0 else None, k * per))
        x.extend(np.arange(b * L + k * per, b * L + (k + 1) * per))
    return np.array(x, np.complex64), tags


def test_batches_of_several_frames_continue_across_them():
    x, tags = frames_of(6, 5)
    indices, batches, c = frame(x, tags)
    assert indices == list(range(6)) and c["truncated_batches"] == 0
    for b, batch in zip(indices, batches):
        np.testing.assert_array_equal(batch, np.arange(b * L, (b + 1) * L))


@pytest.mark.parametrize("lost, kept", [((7,), [0, 2, 3, 4, 5]),          # a middle frame of batch 1
                                        ((5,), [0, 2, 3, 4, 5]),          # the first frame of batch 1
                                        ((9, 10), [0, 3, 4, 5]),          # the end of 1 and the start of 2
                                        ((14, 15, 16, 17, 18, 19), [0, 1, 4, 5])])
def test_a_lost_frame_costs_its_batch_never_the_next(lost, kept):
    x, tags = frames_of(6, 5, lost)
    indices, batches, c = frame(x, tags)
    assert indices == kept
    for b, batch in zip(indices, batches):
        np.testing.assert_array_equal(batch, np.arange(b * L, (b + 1) * L))  # never a mixed batch
    # and the same whatever the cut
    rng = np.random.default_rng(1)
    assert frame(x, tags, chunks=lambda: int(rng.integers(1, 2 * L)), room=lambda: 1)[0] == kept
