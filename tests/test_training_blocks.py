"""nn_encoder and nn_decoder in training mode: framing, phases, ports, counters, checks, stop()."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.block_common import loss_message, parse_loss_message
from gnuradio.e2e.core import checkpoint, prng

M, N = 16, 7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tagged_source(msgs, batch_size, first_index):
    """vector_source_b with a batch_index tag (uint64) on the first item of each batch."""
    tags = []
    for j in range(len(msgs) // batch_size):
        t = gr.tag_t()
        t.offset, t.key, t.value = j * batch_size, pmt.intern("batch_index"), pmt.from_uint64(first_index + j)
        tags.append(t)
    return blocks.vector_source_b([int(m) for m in msgs], False, 1, tags)


def run_encoder(path, msgs, batch_size, first_index=None, **kwargs):
    tb = gr.top_block()
    src = (blocks.vector_source_b([int(m) for m in msgs]) if first_index is None
           else tagged_source(msgs, batch_size, first_index))
    enc = e2e.nn_encoder(path, M, N, training=True, batch_size=batch_size, blocking=True, **kwargs)
    snk = blocks.vector_sink_c()
    tb.connect(src, enc, snk)
    tb.run()
    return enc, np.array(snk.data(), dtype=np.complex64).reshape(-1, N)


@pytest.mark.timeout(60)
def test_encoder_phases_follow_the_tagged_batch_index(tiny_link):
    B, sigma2 = 2000, 0.02
    msgs = np.concatenate([prng.batch_messages(0, b, B, M) for b in (9, 10)])
    table = tiny_link.encoder.symbol_table()
    # Tags say batches 9 and 10: with R = T = 10, 9 is a receiver batch and 10 a transmitter batch.
    enc, out = run_encoder(tiny_link.path, msgs, B, first_index=9, sigma2=sigma2)
    np.testing.assert_array_equal(out[:B], table[msgs[:B]])
    w = out[B:] - math.sqrt(1 - sigma2) * table[msgs[B:]]
    # Perturbation variance sigma2 per complex use: mean of |w|^2 over 14000 draws, 5 sigma.
    assert abs(np.mean(np.abs(w) ** 2) - sigma2) < 5 * sigma2 / math.sqrt(w.size)
    assert np.mean(np.abs(out[B:]) ** 2) == pytest.approx(1.0, abs=0.02)  # Es stays 1
    assert enc.training_counters()["batches"] == 2
    # Without tags the batches are counted from 0: both are receiver batches, sent unperturbed.
    _, out = run_encoder(tiny_link.path, msgs, B)
    np.testing.assert_array_equal(out, table[msgs])


def test_encoder_loss_port_steps_counts_and_drops(tiny_link, record_logs):
    B = 100
    enc = e2e.nn_encoder(tiny_link.path, M, N, training=True, batch_size=B, blocking=True,
                         rx_batches=1, tx_batches=1)
    log = record_logs(enc)
    before = enc.symbol_table()
    msgs = prng.batch_messages(0, 1, B, M)
    # work() needs a flowgraph (stream tags); what it sends is the trainer's symbols().
    for b in (0, 1):  # a receiver batch, then a transmitter batch
        enc._trainer.symbols(b, msgs)
    enc._on_loss(pmt.intern("junk"))
    enc._on_loss(loss_message(7, np.ones(B)))             # never sent
    enc._on_loss(loss_message(0, np.ones(B)))             # a receiver batch: nothing stored
    enc._on_loss(loss_message(1, np.ones(B // 2)))        # wrong length: dropped, batch consumed
    c = enc.training_counters()
    assert (c["malformed_loss_messages"], c["unknown_losses"], c["bad_losses"]) == (1, 2, 1)
    assert len(log.of("warn")) == 2
    enc._trainer.symbols(2, msgs)
    enc._trainer.symbols(3, msgs)
    enc._on_loss(loss_message(3, np.random.default_rng(0).random(B)))
    assert enc.drain(10)
    assert enc.training_counters()["transmitter_steps"] == 1
    assert not np.array_equal(enc.symbol_table(), before)  # the step changed the encoder
    assert enc.stop() and enc.stop()                       # idempotent


def run_until(tb, done, timeout=30):
    """Start tb (an endless source), wait until done() or timeout, stop it; done()'s last value."""
    import time
    tb.start()
    try:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)
        return done()
    finally:
        tb.stop()
        tb.wait()


@pytest.mark.timeout(60)
def test_decoder_decides_and_sends_losses_and_metrics(tiny_link, tmp_path):
    B = 200
    out_path = str(tmp_path / "dec.safetensors")
    tb = gr.top_block()
    # Endless source: message ports are only served while the flowgraph runs.
    src = e2e.training_source(M, B, 3)
    enc = e2e.nn_encoder(tiny_link.path, M, N, training=True, batch_size=B, seed=3, rx_batches=2,
                         tx_batches=2, blocking=True, lr=1e-9)
    dec = e2e.nn_decoder(tiny_link.path, M, N, training=True, batch_size=B, seed=3, rx_batches=2,
                         tx_batches=2, blocking=True, lr=1e-9, metrics_every=2, checkpoint_out=out_path)
    sent, decided = blocks.vector_sink_b(), blocks.vector_sink_b()
    losses, metrics = blocks.message_debug(), blocks.message_debug()
    tb.connect(src, enc, dec, decided)
    tb.connect(src, sent)
    tb.msg_connect(dec, "loss", losses, "store")
    tb.msg_connect(dec, "metrics", metrics, "store")
    assert run_until(tb, lambda: losses.num_messages() >= 6 and metrics.num_messages() >= 2)
    # Noiseless, trained link, (almost) frozen by lr 1e-9: decisions are the sent messages.
    got_decided = np.array(decided.data())
    assert len(got_decided) >= 10 * B
    assert np.array_equal(got_decided, np.array(sent.data())[:len(got_decided)])
    got = [parse_loss_message(losses.get_message(i)) for i in range(6)]
    assert [b for b, _ in got] == [2, 3, 6, 7, 10, 11]  # the transmitter batches, in order
    assert all(v.shape == (B,) and v.dtype == np.float32 and (v >= 0).all() for _, v in got)
    assert max(float(v.mean()) for _, v in got) < 0.05  # near-perfect link: small cross-entropy
    m = dec.training_metrics()
    assert m["receiver_steps"] >= 6 and m["bler"] == 0 and m["dropped_batches"] == 0
    first = metrics.get_message(0)
    assert pmt.to_long(pmt.dict_ref(first, pmt.intern("receiver_steps"), pmt.PMT_NIL)) >= 2
    assert pmt.to_double(pmt.dict_ref(first, pmt.intern("bler"), pmt.PMT_NIL)) == 0.0
    assert len(dec.metrics_history()) >= metrics.num_messages()
    # stop() wrote the whole link: this decoder and the starting checkpoint's encoder.
    _, e, d = checkpoint.load(out_path)
    np.testing.assert_allclose(e.symbol_table(), tiny_link.encoder.symbol_table(), atol=1e-6)


@pytest.mark.timeout(60)
def test_weights_port_publishes_loadable_encoders(tiny_link):
    B, every = 100, 5
    tb = gr.top_block()
    src = e2e.training_source(M, B, 0)
    enc = e2e.nn_encoder(tiny_link.path, M, N, training=True, batch_size=B, blocking=True, publish_every=every)
    dec = e2e.nn_decoder(tiny_link.path, M, N, training=True, batch_size=B, blocking=True)
    weights = blocks.message_debug()
    tb.connect(src, enc, dec, blocks.null_sink(gr.sizeof_char))
    tb.msg_connect(dec, "loss", enc, "loss")
    tb.msg_connect(enc, "weights", weights, "store")
    assert run_until(tb, lambda: weights.num_messages() >= 3)
    steps = enc.training_counters()["transmitter_steps"]
    assert steps // every >= weights.num_messages() >= 3
    msg = weights.get_message(weights.num_messages() - 1)
    cfg, e, _ = checkpoint.from_bytes(bytes(pmt.u8vector_elements(msg)), need=("encoder",))
    assert (cfg.M, cfg.n) == (M, N)
    # An inference encoder accepts the published weights on its weights input.
    plain = e2e.nn_encoder(tiny_link.path, M, N)
    plain._on_weights(msg)
    np.testing.assert_array_equal(plain.symbol_table(), e.symbol_table())
    assert not np.array_equal(e.symbol_table(), tiny_link.encoder.symbol_table())  # it was trained


def test_periodic_and_shared_checkpoints(tiny_link, other_link, tmp_path):
    """Both blocks writing one checkpoint_out: the file holds both trained networks."""
    path = str(tmp_path / "link.safetensors")
    B = 50
    enc = e2e.nn_encoder(other_link.path, M, N, training=True, batch_size=B, blocking=True, lr=0.05,
                         rx_batches=0, tx_batches=1, checkpoint_out=path, save_every=1)
    dec = e2e.nn_decoder(other_link.path, M, N, training=True, batch_size=B, blocking=True, lr=0.05,
                         rx_batches=1, tx_batches=0, checkpoint_out=path)
    msgs = prng.batch_messages(0, 0, B, M)
    out = enc._trainer.symbols(0, msgs).reshape(-1)
    enc._on_loss(loss_message(0, np.linspace(0, 1, B)))
    assert enc.drain(10)
    assert os.path.exists(path)  # save_every=1: written by the worker after the step
    _, e1, d1 = checkpoint.load(path)
    np.testing.assert_array_equal(e1.symbol_table(), enc.symbol_table())
    decided = np.empty(B, dtype=np.uint8)
    assert dec.work([out], [decided]) == B
    assert dec.stop()  # drains, then writes its decoder with the encoder saved above
    _, e2, d2 = checkpoint.load(path)
    np.testing.assert_array_equal(e2.symbol_table(), enc.symbol_table())
    y = np.random.default_rng(1).standard_normal((5, 2 * N)).astype(np.float32)
    with torch.no_grad():
        assert not torch.equal(d2(torch.from_numpy(y)), other_link.decoder(torch.from_numpy(y)))
    assert enc.stop()


@pytest.mark.parametrize("kwargs, name", [
    (dict(batch_size=0), "batch_size"),
    (dict(seed=-1), "seed"),
    (dict(sigma2=0.0), "sigma2"),
    (dict(sigma2=1.0), "sigma2"),
    (dict(lr=0), "lr"),
    (dict(rx_batches=-1), "rx_batches"),
    (dict(rx_batches=0, tx_batches=0), "rx_batches"),
    (dict(baseline="median"), "baseline"),
    (dict(publish_every=-1), "publish_every"),
    (dict(save_every=1.5), "save_every"),
    (dict(checkpoint_out=3), "checkpoint_out"),
])
def test_encoder_training_parameters_are_named(tiny_link, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        e2e.nn_encoder(tiny_link.path, M, N, training=True, **kwargs)
    e2e.nn_encoder(tiny_link.path, M, N, training=False, **kwargs)  # inference ignores them


@pytest.mark.parametrize("kwargs, name", [
    (dict(batch_size=0), "batch_size"),
    (dict(seed=2.0), "seed"),
    (dict(lr=-1e-3), "lr"),
    (dict(tx_batches=-2), "tx_batches"),
    (dict(feedback_snr_db=float("nan")), "feedback_snr_db"),
    (dict(feedback_snr_db="6"), "feedback_snr_db"),
    (dict(feedback_bits=25), "feedback_bits"),
    (dict(feedback_bits=-1), "feedback_bits"),
    (dict(feedback_loss_prob=1.5), "feedback_loss_prob"),
    (dict(metrics_every=-1), "metrics_every"),
    (dict(probabilities=True), "probabilities"),
])
def test_decoder_training_parameters_are_named(tiny_link, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        e2e.nn_decoder(tiny_link.path, M, N, training=True, **kwargs)


def test_training_ignores_weights_messages_and_set_checkpoint(tiny_link, other_link, record_logs, as_u8vector):
    enc = e2e.nn_encoder(tiny_link.path, M, N, training=True, batch_size=10)
    log = record_logs(enc)
    before = enc.symbol_table()
    enc._on_weights(as_u8vector(open(other_link.path, "rb").read()))
    assert enc.set_checkpoint(other_link.path) is False
    np.testing.assert_array_equal(enc.symbol_table(), before)
    assert len(log.of("warn")) == 2
    dec = e2e.nn_decoder(tiny_link.path, M, N, training=True, batch_size=10)
    assert dec.set_checkpoint(other_link.path) is False
    enc.stop(), dec.stop()


@pytest.mark.timeout(120)
def test_gui_flowgraph_runs_offscreen(tmp_path, tiny_link):
    subprocess.run(["grcc", "-o", str(tmp_path), os.path.join(ROOT, "examples", "model_free_awgn.grc")],
                   check=True, capture_output=True, timeout=100)
    path = str(tmp_path / "model_free_awgn.py")
    out = str(tmp_path / "out.safetensors")
    driver = f"""
import importlib.util, json, sys, time
from PyQt5 import Qt
app = Qt.QApplication(sys.argv)
spec = importlib.util.spec_from_file_location("model_free_awgn", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = module.model_free_awgn(checkpoint={tiny_link.path!r}, checkpoint_out={out!r}, num_batches=200, rate=1e7)
tb.start()
tb.wait()
t0 = time.time()
while tb.rx_metrics.get("receiver_steps", 0) < 50 and time.time() - t0 < 10:
    app.processEvents()
    time.sleep(0.05)
print("RESULT " + json.dumps({{"metrics": tb.e2e_nn_decoder_0.training_metrics(), "probe": tb.rx_metrics}}))
tb.stop()
tb.wait()
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, env=env, timeout=100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["metrics"]["batches"] == 199 and result["metrics"]["receiver_steps"] == 100
    assert result["probe"].get("receiver_steps", 0) >= 50  # the GUI's probe saw the decoder's metrics
    assert result["metrics"]["bler"] < 0.2  # started from the trained tiny link
    checkpoint.load(out)  # written at stop


def test_checkpoint_out_forgets_an_earlier_flowgraphs_networks(tiny_link, other_link, tmp_path):
    """A second pair of blocks on the same checkpoint_out must not pair with the first pair's copies."""
    path = str(tmp_path / "again.safetensors")
    first = e2e.nn_decoder(tiny_link.path, M, N, training=True, batch_size=10, checkpoint_out=path)
    first.save_checkpoint()  # the registry now holds tiny_link's decoder for this path
    first.stop()
    enc = e2e.nn_encoder(other_link.path, M, N, training=True, batch_size=10, checkpoint_out=path)
    dec = e2e.nn_decoder(other_link.path, M, N, training=True, batch_size=10, checkpoint_out=path)
    enc.save_checkpoint()  # before the new decoder has saved anything
    _, _, d = checkpoint.load(path)
    y = torch.from_numpy(np.random.default_rng(2).standard_normal((5, 2 * N)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(d(y), other_link.decoder(y))  # the new blocks' own starting decoder
    enc.stop(), dec.stop()


@pytest.mark.timeout(60)
def test_non_blocking_mode_accounts_for_every_batch(tiny_link):
    """blocking=False (a radio): batches the worker cannot take are dropped and counted, never lost."""
    B, batches = 100, 600
    tb = gr.top_block()
    src = e2e.training_source(M, B, 0, num_batches=batches)
    enc = e2e.nn_encoder(tiny_link.path, M, N, training=True, batch_size=B, blocking=False)
    dec = e2e.nn_decoder(tiny_link.path, M, N, training=True, batch_size=B, blocking=False)
    tb.connect(src, enc, dec, blocks.null_sink(gr.sizeof_char))
    tb.msg_connect(dec, "loss", enc, "loss")
    tb.run()  # stop() drains the workers
    m, c = dec.training_metrics(), enc.training_counters()
    assert m["batches"] == batches
    assert m["receiver_steps"] + m["loss_messages"] + m["lost_feedback"] + m["dropped_batches"] == batches, m
    assert c["transmitter_steps"] + c["dropped_steps"] <= m["loss_messages"]
    assert c["worker_errors"] == 0 and c["bad_losses"] == 0
