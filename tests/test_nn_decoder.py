"""nn_decoder: batched decisions, probabilities, weights port, construction checks.

Every test drives the block through a running flowgraph and its ports;
messages reach it mid-stream by flowgraph_helpers.post_at, so the runs end
by themselves and nothing polls a clock.
"""
import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, e2e, gr

from flowgraph_helpers import post_at
from gnuradio.e2e.core import channels, checkpoint, config, learned, models, snr

M, N = 16, 7
# Decisions whose two best logits are closer than this may flip between two
# batchings of the same float32 matrix product; they are left out of
# exact-equality checks.
AMBIGUOUS_GAP = 1e-4


def noisy_symbols(link, count, ebn0_db, seed):
    """(messages int64 [count], received complex64 [count, n]) over AWGN."""
    msgs = np.random.default_rng(seed).integers(0, M, count)
    x = torch.from_numpy(link.encoder.symbol_table()[msgs])
    y = channels.AWGN()(x, snr.n0_from_ebn0_db(ebn0_db, M, N), torch.Generator().manual_seed(seed))
    return msgs, y.numpy()


def reference(decoder, y):
    """Decisions int64 [k] and a mask of unambiguous ones, decoding all of y at once."""
    with torch.inference_mode():
        logits = decoder(torch.from_numpy(models.complex_to_real(y)))
    top2 = torch.topk(logits, 2, dim=1).values
    return models.decide(logits).numpy(), (top2[:, 0] - top2[:, 1]).numpy() > AMBIGUOUS_GAP


def run_decoder(path, y, probabilities=False, batch_messages=1):
    tb = gr.top_block()
    src = blocks.vector_source_c(y.reshape(-1).tolist())
    dec = e2e.nn_decoder(path, M, N, probabilities=probabilities, batch_messages=batch_messages)
    snk = blocks.vector_sink_b()
    tb.connect(src, dec, snk)
    psnk = None
    if probabilities:
        psnk = blocks.vector_sink_f(M)
        tb.connect((dec, 1), psnk)
    tb.run()
    decided = np.array(snk.data(), dtype=np.int64)
    probs = np.array(psnk.data(), dtype=np.float32).reshape(-1, M) if probabilities else None
    return decided, probs


@pytest.mark.timeout(60)
def test_decodes_noiseless_codebook(tiny_link):
    msgs = np.tile(np.arange(M), 50)
    decided, _ = run_decoder(tiny_link.path, tiny_link.encoder.symbol_table()[msgs])
    np.testing.assert_array_equal(decided, msgs)


@pytest.mark.timeout(60)
def test_matches_learned_link_on_noisy_input(tiny_link):
    msgs, y = noisy_symbols(tiny_link, 20000, 3.0, seed=1)
    decided, _ = run_decoder(tiny_link.path, y)
    expected = learned.LearnedLink(tiny_link.encoder, tiny_link.decoder).receive(y.astype(np.complex128), None)
    _, clear = reference(tiny_link.decoder, y)
    assert len(decided) == len(msgs)
    np.testing.assert_array_equal(decided[clear], expected[clear])
    assert clear.mean() > 0.99  # the exclusion stays marginal
    assert np.mean(decided != msgs) > 0  # noisy enough that decisions are tested


@pytest.mark.timeout(60)
def test_probabilities_output(tiny_link):
    msgs, y = noisy_symbols(tiny_link, 3000, 3.0, seed=2)
    decided, probs = run_decoder(tiny_link.path, y, probabilities=True)
    assert probs.shape == (len(msgs), M)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    _, clear = reference(tiny_link.decoder, y)
    np.testing.assert_array_equal(probs.argmax(axis=1)[clear], decided[clear])
    # Noiseless-ish points are confident, noisy ones less so: the output is not one-hot.
    assert probs.max(axis=1).min() < 0.9 < np.median(probs.max(axis=1))


def run_with_message(dec, y, repeats, messages, at_message):
    """y repeated `repeats` times -> dec -> post_at(messages to dec's weights port) -> sink; decisions int64."""
    tb = gr.top_block()
    poster = post_at(np.uint8, at_message, dec, "weights", messages)
    snk = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_c(np.tile(y.reshape(-1), repeats).tolist()), dec, poster, snk)
    tb.run()
    assert poster.posted
    return np.array(snk.data(), dtype=np.int64)


@pytest.mark.timeout(60)
def test_weights_hot_swap_while_running(tiny_link, other_link, as_u8vector, record_logs):
    _, y = noisy_symbols(tiny_link, 256, 8.0, seed=3)
    old, old_clear = reference(tiny_link.decoder, y)
    new, new_clear = reference(other_link.decoder, y)
    dec = e2e.nn_decoder(tiny_link.path, M, N)
    log = record_logs(dec)
    # A receiver file (what model_free_rx publishes), as a PDU this time: (metadata . u8vector).
    pdu = pmt.cons(pmt.make_dict(), as_u8vector(checkpoint.to_bytes("receiver", other_link.config,
                                                                      {"decoder": other_link.decoder})))
    out = run_with_message(dec, y, 400, [pdu], at_message=20 * 256)
    idx = np.arange(len(out)) % len(y)
    informative = (old != new)[idx] & old_clear[idx] & new_clear[idx]
    assert informative.mean() > 0.5  # the two decoders really differ
    is_old, is_new = (out == old[idx])[informative], (out == new[idx])[informative]
    assert np.all(is_old | is_new), "every decision comes from one of the two decoders"
    switch = np.argmax(is_new)
    assert switch > 0 and np.all(is_old[:switch]) and np.all(is_new[switch:])
    assert np.nonzero(informative)[0][switch] > 20 * 256  # not before the message was sent
    assert log.of("error") == [] and len(log.of("info")) == 1


@pytest.mark.timeout(60)
def test_malformed_weights_are_logged_and_dropped(tiny_link, record_logs, as_u8vector):
    _, y = noisy_symbols(tiny_link, 256, 8.0, seed=4)
    old, clear = reference(tiny_link.decoder, y)
    dec = e2e.nn_decoder(tiny_link.path, M, N)
    log = record_logs(dec)
    good = checkpoint.to_bytes("autoencoder", tiny_link.config,
                               {"encoder": tiny_link.encoder, "decoder": tiny_link.decoder})
    cfg4 = config.LinkConfig(M=4, n=7)
    cfg_n = config.LinkConfig(M=16, n=3)

    def link_of(cfg):
        enc, dec_ = models.build(cfg, seed=0)
        return checkpoint.to_bytes("autoencoder", cfg, {"encoder": enc, "decoder": dec_})
    rng = np.random.default_rng(0)
    bad = [
        (pmt.intern("weights"), "got a symbol"),
        (pmt.PMT_NIL, "got a null"),
        (pmt.init_c32vector(2, [1j, 2]), "got a c32vector"),
        (pmt.cons(pmt.make_dict(), pmt.intern("x")), "got a pair whose cdr is a symbol"),
        (as_u8vector(rng.integers(0, 256, 10000, dtype=np.uint8).tobytes()), "safetensors"),
        (as_u8vector(good[:100]), "truncated"),
        (as_u8vector(link_of(cfg4)), "M=4"),
        (as_u8vector(link_of(cfg_n)), "n=3"),
        (as_u8vector(checkpoint.to_bytes("transmitter", tiny_link.config, {"encoder": tiny_link.encoder})),
         "is a transmitter checkpoint"),
    ]
    # Long enough that the decoder is still running when the messages arrive: it
    # takes up to 32768 messages per call, and messages reach a block between calls.
    out = run_with_message(dec, y, 400, [m for m, _ in bad], at_message=10 * 256)
    idx = np.arange(len(out)) % len(y)
    assert len(out) == 400 * 256  # the flowgraph ran on to the end
    np.testing.assert_array_equal(out[clear[idx]], old[idx][clear[idx]])
    errors = log.of("error")
    assert len(errors) == len(bad)
    for text, (_, expected) in zip(errors, bad):
        assert "dropped weights message" in text and expected in text, text


def test_set_checkpoint(tiny_link, other_link, bad_checkpoints, record_logs):
    _, y = noisy_symbols(tiny_link, 64, 8.0, seed=5)
    dec = e2e.nn_decoder(tiny_link.path, M, N)
    log = record_logs(dec)

    def decide():
        tb = gr.top_block()
        snk = blocks.vector_sink_b()
        tb.connect(blocks.vector_source_c(y.reshape(-1).tolist()), dec, snk)
        tb.run()
        return np.array(snk.data(), dtype=np.int64)

    assert dec.set_checkpoint(other_link.path) is True
    new, clear = reference(other_link.decoder, y)
    np.testing.assert_array_equal(decide()[clear], new[clear])
    path, reason = bad_checkpoints["truncated"]
    assert dec.set_checkpoint(path) is False
    np.testing.assert_array_equal(decide()[clear], new[clear])
    assert path in log.of("error")[0] and reason in log.of("error")[0]


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "not_safetensors", "pickle",
                                  "other_M", "other_n", "transmitter_file", "damaged_encoder", "damaged_decoder"])
def test_construction_refuses_bad_checkpoint(bad_checkpoints, case):
    path, reason = bad_checkpoints[case]
    with pytest.raises(checkpoint.CheckpointError, match=reason) as err:
        e2e.nn_decoder(path, M, N)
    assert path in str(err.value)


@pytest.mark.parametrize("kwargs, name", [
    (dict(M=-1, n=7), "M"), (dict(M=2.5, n=7), "M"), (dict(M=300, n=7), "M"),
    (dict(M=16, n=0), "n"), (dict(M=16, n=7.0), "n"),
    (dict(M=16, n=7, torch_threads=-1), "torch_threads"), (dict(M=16, n=7, torch_threads=1.5), "torch_threads"),
    (dict(M=16, n=7, batch_messages=0), "batch_messages"), (dict(M=16, n=7, batch_messages=2.0), "batch_messages"),
    (dict(M=16, n=7, probabilities=1), "probabilities"),
])
def test_bad_parameters_name_the_parameter(tiny_link, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be "):
        e2e.nn_decoder(tiny_link.path, **kwargs)


def test_inference_blocks_take_no_training_parameters(tiny_link):
    import inspect
    assert list(inspect.signature(e2e.nn_encoder.__init__).parameters) == ["self", "checkpoint", "M", "n"]
    assert list(inspect.signature(e2e.nn_decoder.__init__).parameters) == [
        "self", "checkpoint", "M", "n", "probabilities", "torch_threads", "batch_messages"]
    with pytest.raises(TypeError):
        e2e.nn_decoder(tiny_link.path, M, N, training=True)


def test_torch_threads(tiny_link):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        e2e.nn_decoder(tiny_link.path, M, N, torch_threads=0)
        assert torch.get_num_threads() == 2  # 0 leaves the process setting alone
        e2e.nn_decoder(tiny_link.path, M, N, torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.timeout(60)
def test_batch_messages_decodes_the_same_in_whole_batches(tiny_link):
    """batch_messages only changes how work() is called, not what it decides."""
    _, y = noisy_symbols(tiny_link, 4 * 512, 4.0, seed=7)
    plain, _ = run_decoder(tiny_link.path, y)
    batched, _ = run_decoder(tiny_link.path, y, batch_messages=512)
    np.testing.assert_array_equal(batched, plain)


@pytest.mark.timeout(60)
def test_batch_messages_drops_only_the_final_partial_batch(tiny_link):
    """The documented price: a finite stream's last partial batch is not decoded."""
    _, y = noisy_symbols(tiny_link, 3 * 256 + 100, 4.0, seed=8)
    plain, _ = run_decoder(tiny_link.path, y)
    batched, _ = run_decoder(tiny_link.path, y, batch_messages=256)
    assert len(batched) == 3 * 256
    np.testing.assert_array_equal(batched, plain[:3 * 256])


@pytest.mark.timeout(60)
def test_fast_stream_reaches_the_network_in_large_chunks(tiny_link):
    """The wrapper's input buffer is what makes the default fast: with GNU Radio's default
    buffer (8192 complex items) the network block never sees more than 1170 messages per call."""
    msgs = np.arange(200_000) % M
    y = tiny_link.encoder.symbol_table()[msgs]
    tb = gr.top_block()
    dec = e2e.nn_decoder(tiny_link.path, M, N)
    sizes, work = [], dec.network.work

    def counting_work(input_items, output_items):
        sizes.append(len(output_items[0]))
        return work(input_items, output_items)
    dec.network.work = counting_work
    snk = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_c(y.reshape(-1).tolist()), dec, snk)
    tb.run()
    np.testing.assert_array_equal(np.array(snk.data()), msgs)  # every message, the last ones too
    assert max(sizes) > 8192 // N
