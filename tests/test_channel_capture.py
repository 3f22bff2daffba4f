"""channel_capture: pairs line up, batches framed from tags, messages regenerated, the file, the checks."""
import numpy as np
import pmt
import pytest
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.core import channel_dataset, prng

M, N = 16, 7


def tag(offset, key, value):
    t = gr.tag_t()
    t.offset, t.key, t.value = offset, pmt.intern(key), value
    return t


def capture_of(tb, source, path, slowed_y=None, **kwargs):
    """source -> channel_capture in 0, and -> in 1 directly or through a copy with a small odd buffer."""
    cap = e2e.channel_capture(str(path), M, N, **kwargs)
    tb.connect(source, (cap, 0))
    if slowed_y:
        copy = blocks.copy(gr.sizeof_gr_complex)
        copy.set_max_output_buffer(slowed_y)  # in 1 sees its items in other, smaller pieces than in 0
        tb.connect(source, copy, (cap, 1))
    else:
        tb.connect(source, (cap, 1))
    return cap


@pytest.mark.timeout(60)
def test_a_noise_free_round_trip_lines_up_exactly(tmp_path, tiny_link):
    """x == y through a pass-through on one input, work() calls of odd sizes: every pair is (x_m, x_m)."""
    count = 3001
    msgs = np.random.default_rng(0).integers(0, M, count)
    tb = gr.top_block()
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    tb.connect(blocks.vector_source_b(msgs.tolist()), enc)
    path = tmp_path / "pairs.safetensors"
    cap = capture_of(tb, enc, path, slowed_y=61, source_label="loopback", sample_rate=1e6)
    tb.run(13)  # at most 13 items per work() call: messages cut across calls
    ds = channel_dataset.load_dataset(str(path), expect={"M": M, "n": N})
    assert len(ds) == count == cap.messages()
    table = tiny_link.encoder.symbol_table()
    np.testing.assert_array_equal(ds.x.numpy(), table[msgs])
    np.testing.assert_array_equal(ds.y.numpy(), ds.x.numpy())
    assert ds.batch_index is None and ds.messages is None
    assert (ds.source, ds.sample_rate, ds.seed, ds.batch_size, ds.mode) == ("loopback", 1e6, None, None, "complex")
    assert cap.counters()["writes"] == 1  # at stop


@pytest.mark.timeout(60)
def test_batches_from_tags_and_regenerated_messages(tmp_path, tiny_link):
    """training_source -> nn_encoder: each message's batch index from the tags, its message from (seed, b)."""
    batches, batch_size, seed = 40, 10, 3
    tb = gr.top_block()
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    tb.connect(e2e.training_source(M, batch_size, seed, num_batches=batches), enc)
    path, bare = tmp_path / "tagged.safetensors", tmp_path / "no_size.safetensors"
    capture_of(tb, enc, path, slowed_y=45, seed=seed, batch_size=batch_size)
    capture_of(tb, enc, bare)  # batch_size 0: batch indices, no messages
    tb.run(19)
    ds = channel_dataset.load_dataset(str(path))
    sent = np.concatenate([prng.batch_messages(seed, b, batch_size, M) for b in range(batches)])
    np.testing.assert_array_equal(ds.batch_index.numpy(), np.repeat(np.arange(batches), batch_size))
    np.testing.assert_array_equal(ds.messages.numpy(), sent)
    np.testing.assert_array_equal(ds.x.numpy(), tiny_link.encoder.symbol_table()[sent])
    np.testing.assert_array_equal(ds.y.numpy(), ds.x.numpy())
    assert (ds.seed, ds.batch_size) == (seed, batch_size)
    other = channel_dataset.load_dataset(str(bare))
    np.testing.assert_array_equal(other.batch_index.numpy(), ds.batch_index.numpy())
    assert other.messages is None and other.batch_size is None and other.seed == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("max_items", [None, 5])
def test_framing_cuts_misaligned_tags_and_wrong_lengths(tmp_path, record_logs, max_items):
    """Item i of x is the number i, so each recorded row says which message it was.

    batch 5 at message 0 (packet_len 3 n: items), batch_size 3: messages 0-2; 3, 4 unframed.
    batch 6 at message 5 (no packet_len): 5, 6; a tag inside message 6 closes it: 7 unframed.
    batch 7 at message 8 with packet_len 99: refused, 8, 9 unframed.
    batch 8 at message 10 (packet_len 3: messages), batch 9 at message 13 (cut short by the end).
    """
    count, seed, bs = 15, 2, 3
    long_ = lambda v: pmt.from_long(v)  # noqa: E731
    tags = [tag(0, "batch_index", pmt.from_uint64(5)), tag(0, "packet_len", long_(bs * N)),
            tag(5 * N, "batch_index", pmt.from_uint64(6)),
            tag(6 * N + 2, "batch_index", pmt.from_uint64(99)),
            tag(8 * N, "batch_index", pmt.from_uint64(7)), tag(8 * N, "packet_len", long_(99)),
            tag(10 * N, "batch_index", long_(8)), tag(10 * N, "packet_len", long_(bs)),
            tag(13 * N, "batch_index", pmt.from_uint64(9))]
    x = np.arange(count * N).astype(np.complex64)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False, 1, tags)
    path = tmp_path / "framed.safetensors"
    cap = capture_of(tb, src, path, slowed_y=16, seed=seed, batch_size=bs)
    log = record_logs(cap)
    tb.run(max_items) if max_items else tb.run()
    ds = channel_dataset.load_dataset(str(path))
    rows = (ds.x.numpy()[:, 0].real / N).astype(int)
    np.testing.assert_array_equal(rows, [0, 1, 2, 5, 6, 10, 11, 12, 13, 14])
    np.testing.assert_array_equal(ds.batch_index.numpy(), [5, 5, 5, 6, 6, 8, 8, 8, 9, 9])
    position = [0, 1, 2, 0, 1, 0, 1, 2, 0, 1]
    expected = [prng.batch_messages(seed, b, bs, M)[k] for b, k in zip(ds.batch_index.numpy(), position)]
    np.testing.assert_array_equal(ds.messages.numpy(), expected)
    np.testing.assert_array_equal(ds.y.numpy(), ds.x.numpy())
    c = cap.counters()
    assert (c["messages"], c["unframed_messages"], c["misaligned_tags"], c["bad_length_tags"]) == (10, 5, 1, 1)
    assert log.of("info") == [f"wrote 10 messages to {path}"]


@pytest.mark.timeout(60)
def test_writes_at_max_messages_every_save_every_and_at_stop(tmp_path, record_logs):
    x = np.arange(700 * N).astype(np.complex64)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist())
    path = tmp_path / "every.safetensors"
    cap = capture_of(tb, src, path, max_messages=500, save_every=200)
    log = record_logs(cap)
    tb.run(7 * 30)
    assert cap.counters() == {"messages": 500, "written": 500, "writes": 3, "unframed_messages": 0,
                              "ignored_messages": 200, "misaligned_tags": 0, "bad_length_tags": 0}
    assert [m for m in log.of("info") if m.startswith("wrote")] == [f"wrote {k} messages to {path}"
                                                                   for k in (200, 400, 500)]
    ds = channel_dataset.load_dataset(str(path))
    np.testing.assert_array_equal(ds.x.numpy().reshape(-1), x[:500 * N])
    # The stop wrote nothing more (nothing new); save() writes on demand.
    assert cap.save() and cap.counters()["writes"] == 4


@pytest.mark.timeout(60)
def test_tags_after_an_untagged_start_are_ignored_and_nothing_recorded_writes_nothing(tmp_path, record_logs):
    x = np.arange(20 * N).astype(np.complex64)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False, 1, [tag(7 * N, "batch_index", pmt.from_uint64(1))])
    path = tmp_path / "late.safetensors"
    cap = capture_of(tb, src, path, batch_size=4)
    log = record_logs(cap)
    tb.run()
    ds = channel_dataset.load_dataset(str(path))
    assert len(ds) == 20 and ds.batch_index is None and ds.messages is None
    assert len(log.of("warn")) == 1 and "untagged start" in log.of("warn")[0]
    # A flowgraph that records nothing (a stream shorter than a message) writes no file, and says so.
    empty = tmp_path / "empty.safetensors"
    tb = gr.top_block()
    short = blocks.vector_source_c([0j] * (N - 1))
    cap = capture_of(tb, short, empty)
    log = record_logs(cap)
    tb.run()
    assert not empty.exists() and "no message recorded" in log.of("warn")[0]


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(path=""), r"^path must"),
    (dict(path="/no/such/folder/x.safetensors"), r"^path must be in an existing folder, got '/no/such/folder"),
    (dict(M=300), r"^M must be an integer in \[2, 256\], got 300"),
    (dict(n=0), r"^n must be an integer"),
    (dict(max_messages=0), r"^max_messages must be an integer"),
    (dict(seed=-1), r"^seed must be an integer"),
    (dict(batch_size=-1), r"^batch_size must be an integer"),
    (dict(sample_rate=-1.0), r"^sample_rate must be a finite number"),
    (dict(source_label=3), r"^source_label must be a str, got 3"),
    (dict(save_every=-5), r"^save_every must be an integer"),
])
def test_bad_parameters_are_refused_naming_them(tmp_path, kwargs, pattern):
    args = dict(path=str(tmp_path / "d.safetensors"), M=M, n=N)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        e2e.channel_capture(**args)


def test_grc_template_and_ports():
    from gnuradio.grc.core.platform import Platform
    platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    fg = platform.make_flow_graph()
    block = fg.new_block("e2e_channel_capture")
    block.params["path"].set_value("pairs.safetensors")
    fg.rewrite()
    assert block.templates.render("make") == (
        "e2e.channel_capture('pairs.safetensors', 16, 7, max_messages=100000, seed=0, batch_size=0, "
        "sample_rate=0.0, source_label='flowgraph', save_every=0)")
    assert [(p.key, p.domain, p.dtype) for p in block.sinks] == [("0", "stream", "complex"),
                                                                 ("1", "stream", "complex")]
    assert block.sources == []
