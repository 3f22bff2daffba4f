"""training_source: batches are prng.batch_messages(seed, b), tagged, and it stops when asked."""
import numpy as np
import pmt
import pytest
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.core import prng


def run_source(*args, **kwargs):
    tb = gr.top_block()
    src = e2e.training_source(*args, **kwargs)
    snk = blocks.vector_sink_b()
    tb.connect(src, snk)
    tb.run()
    return src, np.array(snk.data(), dtype=np.int64), snk.tags()


@pytest.mark.timeout(60)
def test_batches_are_the_prng_messages_with_tags():
    M, B, seed, num = 16, 300, 7, 9
    src, out, tags = run_source(M, B, seed, num_batches=num)
    assert len(out) == num * B and src.batches_sent() == num
    for b in range(num):
        np.testing.assert_array_equal(out[b * B:(b + 1) * B], prng.batch_messages(seed, b, B, M))
    lengths = [(t.offset, pmt.to_long(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "packet_len"]
    index = [(t.offset, pmt.to_uint64(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "batch_index"]
    assert lengths == [(b * B, B) for b in range(num)]
    assert index == [(b * B, b) for b in range(num)]
    assert all(pmt.is_uint64(t.value) for t in tags if pmt.symbol_to_string(t.key) == "batch_index")


@pytest.mark.timeout(60)
def test_other_seed_other_messages_and_range():
    _, a, _ = run_source(4, 1000, 1, num_batches=2)
    _, b, _ = run_source(4, 1000, 2, num_batches=2)
    assert not np.array_equal(a, b)
    assert a.min() == 0 and a.max() == 3


@pytest.mark.timeout(60)
def test_forever_runs_until_head_stops_it():
    tb = gr.top_block()
    src = e2e.training_source(16, 100, 0)
    head = blocks.head(gr.sizeof_char, 2500)
    snk = blocks.vector_sink_b()
    tb.connect(src, head, snk)
    tb.run()
    assert len(snk.data()) == 2500
    assert src.batches_sent() >= 25


@pytest.mark.parametrize("kwargs, name", [
    (dict(M=1, batch_size=10, seed=0), "M"),
    (dict(M=257, batch_size=10, seed=0), "M"),
    (dict(M=16, batch_size=0, seed=0), "batch_size"),
    (dict(M=16, batch_size=2.5, seed=0), "batch_size"),
    (dict(M=16, batch_size=10, seed=-1), "seed"),
    (dict(M=16, batch_size=10, seed=0, num_batches=-3), "num_batches"),
    (dict(M=16, batch_size=10, seed=0, num_batches=True), "num_batches"),
])
def test_bad_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        e2e.training_source(**kwargs)
