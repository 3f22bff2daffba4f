"""block_error_counter: counts, running BLER stream, bit errors, metrics messages."""
import math

import numpy as np
import pmt
import pytest
from gnuradio import blocks, e2e, gr

from conftest import pmt_dict_types


def sequences(count, error_rate, seed, k=4):
    rng = np.random.default_rng(seed)
    sent = rng.integers(0, 2 ** k, count).astype(np.uint8)
    decided = sent.copy()
    wrong = rng.random(count) < error_rate
    decided[wrong] = (sent[wrong] + rng.integers(1, 2 ** k, wrong.sum())) % 2 ** k
    return sent, decided


def popcount(x):
    return sum(bin(int(v)).count("1") for v in x)


def run_counter(sent, decided, counter=None, raw=False, **kwargs):
    """sent, decided -> counter -> running BLER; (counter, running BLER, metrics dicts or raw PMTs)."""
    tb = gr.top_block()
    counter = counter or e2e.block_error_counter(**kwargs)
    snk = blocks.vector_sink_f()
    dbg = blocks.message_debug()
    tb.connect(blocks.vector_source_b(sent.tolist()), (counter, 0))
    tb.connect(blocks.vector_source_b(decided.tolist()), (counter, 1))
    tb.connect(counter, snk)
    tb.msg_connect((counter, "metrics"), (dbg, "store"))
    tb.run()
    messages = [dbg.get_message(i) for i in range(dbg.num_messages())]
    return counter, np.array(snk.data()), messages if raw else [pmt.to_python(m) for m in messages]


@pytest.mark.timeout(60)
def test_counts_and_running_bler():
    sent, decided = sequences(20000, 0.05, seed=0)
    counter, running, _ = run_counter(sent, decided)
    wrong = sent != decided
    assert counter.blocks() == len(sent)
    assert counter.errors() == wrong.sum() > 0
    assert counter.bler() == pytest.approx(wrong.mean())
    expected = np.cumsum(wrong) / np.arange(1, len(sent) + 1)
    assert len(running) == len(sent)
    np.testing.assert_allclose(running, expected, rtol=1e-6)
    assert counter.bit_errors() == 0 and counter.bits() == 0 and math.isnan(counter.ber())


@pytest.mark.timeout(60)
def test_bit_errors_are_the_popcount_of_the_xor():
    sent, decided = sequences(5000, 0.2, seed=1, k=8)
    counter, _, _ = run_counter(sent, decided, bits_per_message=8)
    assert counter.bit_errors() == popcount(sent ^ decided) > 0
    assert counter.bits() == 8 * len(sent)
    assert counter.ber() == pytest.approx(counter.bit_errors() / counter.bits())


@pytest.mark.timeout(60)
def test_metrics_published_every_report_every_messages():
    sent, decided = sequences(1050, 0.1, seed=2)
    _, _, reports = run_counter(sent, decided, bits_per_message=4, report_every=100)
    assert [r["blocks"] for r in reports] == list(range(100, 1001, 100))
    for r in reports:
        b = r["blocks"]
        assert r["errors"] == np.count_nonzero(sent[:b] != decided[:b])
        assert r["bler"] == pytest.approx(r["errors"] / b)
        assert r["bit_errors"] == popcount(sent[:b] ^ decided[:b])
        assert r["ber"] == pytest.approx(r["bit_errors"] / (4 * b))
    _, _, reports = run_counter(sent, decided, report_every=500)
    assert [r["blocks"] for r in reports] == [500, 1000]
    assert all(math.isnan(r["ber"]) and r["bit_errors"] == 0 for r in reports)
    _, _, reports = run_counter(sent, decided)
    assert reports == []


def test_metrics_use_the_pmt_types_of_every_metrics_port():
    """long for counts, double for rates: the same dict format as the training blocks' metrics."""
    sent, decided = sequences(200, 0.1, seed=5)
    _, _, (msg, *_) = run_counter(sent, decided, raw=True, bits_per_message=4, report_every=100)
    assert pmt_dict_types(msg) == {"blocks": "long", "errors": "long", "bit_errors": "long", "bler": "double",
                                   "ber": "double"}


def test_result_does_not_depend_on_how_buffers_are_cut():
    """work() called directly: the point is to choose the cuts, which a scheduler would choose itself."""
    sent, decided = sequences(3000, 0.1, seed=3)
    whole = e2e.block_error_counter(bits_per_message=4)
    out_whole = np.empty(len(sent), dtype=np.float32)
    whole.work([sent, decided], [out_whole])
    pieces = e2e.block_error_counter(bits_per_message=4)
    out_pieces = np.empty(len(sent), dtype=np.float32)
    for a, b in ((0, 1), (1, 700), (700, 701), (701, 3000)):
        assert pieces.work([sent[a:b], decided[a:b]], [out_pieces[a:b]]) == b - a
    np.testing.assert_array_equal(out_pieces, out_whole)
    assert (pieces.blocks(), pieces.errors(), pieces.bit_errors()) == \
           (whole.blocks(), whole.errors(), whole.bit_errors())


@pytest.mark.timeout(60)
def test_reset():
    sent, decided = sequences(1000, 0.3, seed=4)
    counter, _, _ = run_counter(sent, decided, bits_per_message=4)
    assert counter.errors() > 0
    counter.reset()
    assert (counter.blocks(), counter.errors(), counter.bit_errors(), counter.bits()) == (0, 0, 0, 0)
    assert math.isnan(counter.bler()) and math.isnan(counter.ber())
    _, out, _ = run_counter(np.array([1, 2], np.uint8), np.array([1, 3], np.uint8), counter=counter)
    np.testing.assert_array_equal(out, [0.0, 0.5])  # counted from zero again


@pytest.mark.parametrize("kwargs, name", [
    (dict(bits_per_message=-1), "bits_per_message"), (dict(bits_per_message=9), "bits_per_message"),
    (dict(bits_per_message=2.0), "bits_per_message"), (dict(report_every=-5), "report_every"),
    (dict(report_every=1.5), "report_every"), (dict(report_every=True), "report_every"),
])
def test_bad_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer"):
        e2e.block_error_counter(**kwargs)
