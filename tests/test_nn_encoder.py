"""nn_encoder: symbol-table lookup, bad input, weights port, construction checks.

Every test drives the block through a running flowgraph and its ports;
messages reach it mid-stream by flowgraph_helpers.post_at, so the runs end
by themselves and nothing polls a clock.
"""
import numpy as np
import pmt
import pytest
from gnuradio import blocks, e2e, gr

from flowgraph_helpers import post_at
from gnuradio.e2e.core import checkpoint, config, models

M, N = 16, 7


def link_bytes(cfg, enc, dec):
    return checkpoint.to_bytes("autoencoder", cfg, {"encoder": enc, "decoder": dec})


def run_encoder(path, msgs):
    tb = gr.top_block()
    src = blocks.vector_source_b([int(m) for m in msgs])
    enc = e2e.nn_encoder(path, M, N)
    snk = blocks.vector_sink_c()
    tb.connect(src, enc, snk)
    tb.run()
    return enc, np.array(snk.data(), dtype=np.complex64)


@pytest.mark.timeout(60)
def test_output_is_the_symbol_table(tiny_link):
    msgs = np.random.default_rng(0).integers(0, M, 5000)
    enc, out = run_encoder(tiny_link.path, msgs)
    table = tiny_link.encoder.symbol_table()
    assert out.shape == (len(msgs) * N,)
    np.testing.assert_array_equal(out.reshape(-1, N), table[msgs])
    np.testing.assert_array_equal(enc.symbol_table(), table)
    assert enc.out_of_range() == 0
    # Es = 1 per complex symbol: the block sends the normalised codebook.
    assert np.mean(np.abs(table) ** 2) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.timeout(60)
def test_out_of_range_messages_send_zeros_and_are_counted(tiny_link):
    msgs = np.array([0, 16, 5, 255, 200, 15, 17], dtype=np.uint8)
    enc, out = run_encoder(tiny_link.path, msgs)  # returns: the flowgraph finished
    rows = out.reshape(-1, N)
    bad = msgs >= M
    np.testing.assert_array_equal(rows[~bad], tiny_link.encoder.symbol_table()[msgs[~bad]])
    assert np.all(rows[bad] == 0)
    assert enc.out_of_range() == int(bad.sum()) == 4


@pytest.mark.timeout(60)
def test_one_warning_per_burst_of_bad_input(tiny_link, record_logs):
    """Two bursts of bad input, far apart: two warnings, not one per item.

    A burst ends at the first work() call without bad input; 200 000 clean
    messages between the bursts span many calls, whatever the buffer sizes.
    """
    clean = np.arange(200_000) % M
    msgs = np.concatenate([clean, np.full(1000, 20), [1, 30, 40], clean, [99], clean]).astype(np.uint8)
    tb = gr.top_block()
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    log = record_logs(enc)
    tb.connect(blocks.vector_source_b(msgs.tolist()), enc, blocks.null_sink(gr.sizeof_gr_complex))
    tb.run()
    assert enc.out_of_range() == 1003
    warnings = log.of("warn")
    assert len(warnings) == 2, warnings
    assert "M=16" in warnings[0]


def run_with_message(enc, msgs, messages, at_message):
    """vector_source(msgs) -> enc -> post_at(messages to enc's weights port after at_message) -> sink."""
    tb = gr.top_block()
    poster = post_at(np.complex64, at_message * N, enc, "weights", messages)
    snk = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_b([int(m) for m in msgs]), enc, poster, snk)
    tb.run()
    assert poster.posted
    return np.array(snk.data(), dtype=np.complex64).reshape(-1, N)


@pytest.mark.timeout(60)
def test_weights_hot_swap_while_running(tiny_link, other_link, as_u8vector):
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    old, new = tiny_link.encoder.symbol_table(), other_link.encoder.symbol_table()
    msgs = np.arange(400_000) % M
    # A transmitter file (what model_free_tx publishes) is accepted as well as a link.
    msg = as_u8vector(checkpoint.to_bytes("transmitter", other_link.config, {"encoder": other_link.encoder}))
    rows = run_with_message(enc, msgs, [msg], at_message=50_000)
    is_old = np.all(rows == old[msgs], axis=1)
    is_new = np.all(rows == new[msgs], axis=1)
    assert np.all(is_old ^ is_new), "every message uses exactly one of the two tables"
    switch = np.argmax(is_new)
    assert 50_000 < switch < len(msgs) and np.all(is_old[:switch]) and np.all(is_new[switch:])
    np.testing.assert_array_equal(enc.symbol_table(), new)


@pytest.mark.timeout(60)
def test_malformed_weights_are_logged_and_dropped(tiny_link, record_logs, as_u8vector):
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    log = record_logs(enc)
    good = link_bytes(tiny_link.config, tiny_link.encoder, tiny_link.decoder)
    cfg4 = config.LinkConfig(M=4, n=7)
    cfg_real = config.LinkConfig(M=16, n=7, mode="real")
    rng = np.random.default_rng(0)
    bad = [
        (pmt.intern("new weights please"), "got a symbol"),
        (pmt.init_f32vector(3, [1.0, 2.0, 3.0]), "got a f32vector"),
        (pmt.cons(pmt.make_dict(), pmt.init_f32vector(1, [0.0])), "got a pair whose cdr is a f32vector"),
        (as_u8vector(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()), "safetensors"),
        (as_u8vector(good[: len(good) // 2]), "truncated"),
        (as_u8vector(link_bytes(cfg4, *models.build(cfg4, seed=0))), "M=4"),
        (as_u8vector(link_bytes(cfg_real, *models.build(cfg_real, seed=0))), "mode='real'"),
        (as_u8vector(checkpoint.to_bytes("receiver", tiny_link.config, {"decoder": tiny_link.decoder})),
         "is a receiver checkpoint"),
    ]
    msgs = np.arange(100_000) % M
    rows = run_with_message(enc, msgs, [m for m, _ in bad], at_message=10_000)
    np.testing.assert_array_equal(rows, tiny_link.encoder.symbol_table()[msgs])  # the flowgraph ran on
    errors = log.of("error")
    assert len(errors) == len(bad)
    for text, (_, expected) in zip(errors, bad):
        assert "dropped weights message" in text and expected in text, text


def test_weights_message_whose_header_length_starts_with_0x80(tiny_link, as_u8vector, record_logs):
    """The M=8, n=7 checkpoint has a 0x380-byte header: read it, refuse it for its M."""
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    log = record_logs(enc)
    cfg8 = config.LinkConfig(M=8, n=7)
    data = link_bytes(cfg8, *models.build(cfg8, seed=0))
    assert data[0] == 0x80  # what once made core mistake it for a pickle
    enc._post(pmt.intern("weights"), as_u8vector(data))  # queued: handled before the first work() call
    tb = gr.top_block()
    tb.connect(blocks.vector_source_b(list(range(M))), enc, blocks.null_sink(gr.sizeof_gr_complex))
    tb.run()
    assert "M=8" in log.of("error")[0]


def test_set_checkpoint(tiny_link, other_link, bad_checkpoints, record_logs):
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    log = record_logs(enc)
    assert enc.set_checkpoint(other_link.path) is True
    np.testing.assert_array_equal(enc.symbol_table(), other_link.encoder.symbol_table())
    path, reason = bad_checkpoints["other_M"]
    assert enc.set_checkpoint(path) is False
    np.testing.assert_array_equal(enc.symbol_table(), other_link.encoder.symbol_table())
    assert path in log.of("error")[0] and reason in log.of("error")[0]


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "not_safetensors", "pickle",
                                  "other_M", "other_n", "receiver_file", "damaged_encoder", "damaged_decoder"])
def test_construction_refuses_bad_checkpoint(bad_checkpoints, case):
    path, reason = bad_checkpoints[case]
    with pytest.raises(checkpoint.CheckpointError, match=reason) as err:
        e2e.nn_encoder(path, M, N)
    assert path in str(err.value)


@pytest.mark.parametrize("name, M_, n_", [
    ("M", -1, 7), ("M", 0, 7), ("M", 1, 7), ("M", 2.5, 7), ("M", 257, 7), ("M", True, 7),
    ("M", "16", 7), ("M", None, 7), ("n", 16, 0), ("n", 16, -3), ("n", 16, 1.5), ("n", 16, "7"),
    ("n", 16, True),
])
def test_bad_parameters_name_the_parameter(tiny_link, name, M_, n_):
    with pytest.raises(ValueError, match=rf"^{name} must be an integer") as err:
        e2e.nn_encoder(tiny_link.path, M_, n_)
    assert repr(M_ if name == "M" else n_) in str(err.value)
