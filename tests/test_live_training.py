"""Live training core: TrainingWorker semantics and the two trainer ends, without GNU Radio."""
import math
import threading

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import channels, checkpoint, config, evaluation, live, model_free, models, prng, snr, theory, worker
from gnuradio.e2e.core.learned import LearnedLink

torch.set_num_threads(1)
M, N, B = 16, 7, 200


def fresh(seed=1):
    return models.build(config.LinkConfig(M=M, n=N), seed=seed)


# --- TrainingWorker ----------------------------------------------------------------

def test_nonblocking_worker_drops_and_counts_when_full():
    gate = threading.Event()
    w = worker.TrainingWorker(max_pending=2, blocking=False)
    assert w.submit(gate.wait)           # taken by the thread, blocks it
    while w.pending:                      # wait until the thread holds it
        pass
    assert w.submit(lambda: None) and w.submit(lambda: None)
    assert not w.submit(lambda: None)     # queue full: dropped
    assert w.dropped == 1
    gate.set()
    assert w.drain(timeout=5)
    assert w.done == 3
    w.stop()


def test_blocking_worker_runs_everything_in_order():
    out = []
    w = worker.TrainingWorker(max_pending=1, blocking=True)
    for i in range(50):
        assert w.submit(out.append, i)
    assert w.drain(timeout=5)
    assert out == list(range(50)) and w.dropped == 0
    w.stop()


def test_worker_survives_failing_jobs_and_reports_them():
    seen = []
    w = worker.TrainingWorker(on_error=seen.append)
    w.submit(lambda: 1 / 0)
    w.submit(lambda: None)
    assert w.drain(timeout=5)
    assert w.errors == 1 and w.done == 1 and isinstance(seen[0], ZeroDivisionError)
    w.stop()
    assert not w.submit(lambda: None) and w.dropped == 1  # stopped: refused, counted
    w.start()  # a flowgraph run again: the worker runs again
    assert w.submit(lambda: None) and w.drain(timeout=5) and w.done == 2
    w.stop()


# --- TransmitterTrainer ----------------------------------------------------------------

def params(**kw):
    return model_free.ModelFreeParams(**kw)


def test_transmitter_sends_f_of_m_on_receiver_batches_and_perturbs_on_transmitter_batches():
    enc, _ = fresh()
    p = params(sigma2=0.1, rx_batches=1, tx_batches=1, seed=0)
    tx = live.TransmitterTrainer(enc, p)
    table = enc.symbol_table()
    m = prng.batch_messages(0, 0, 20_000, M)
    np.testing.assert_array_equal(tx.symbols(0, m), table[m])  # batch 0: receiver phase
    x_p = tx.symbols(1, m)                                       # batch 1: transmitter phase
    # One implementation of the relaxation: model_free.perturb with batch 1's stream.
    expected, _ = model_free.perturb(torch.from_numpy(models.complex_to_real(table[m])), 0.1, "complex",
                                     p.perturbation_generator(1))
    np.testing.assert_allclose(x_p, models.real_to_complex(expected).numpy(), rtol=1e-6, atol=1e-7)
    w = x_p - math.sqrt(0.9) * table[m]
    assert abs(np.mean(np.abs(w) ** 2) - 0.1) < 6 * 0.1 / math.sqrt(20_000 * N)  # sigma2 per complex use


def test_transmitter_refuses_unknown_expired_and_malformed_losses():
    enc, _ = fresh()
    tx = live.TransmitterTrainer(enc, params(rx_batches=0, tx_batches=1), store_batches=2)
    for b in range(4):
        tx.symbols(b, np.zeros(10, dtype=np.int64))
    assert tx.expired == 2                                   # batches 0 and 1 fell out of the store
    assert tx.on_losses(0, np.ones(10)) == "unknown"          # expired
    assert tx.on_losses(99, np.ones(10)) == "unknown"         # never sent
    assert tx.on_losses(2, np.ones(3)) == "mismatch"          # wrong length
    assert tx.on_losses(3, np.full(10, np.nan)) == "mismatch"  # not finite
    assert tx.counters()["unknown_losses"] == 2 and tx.counters()["bad_losses"] == 2
    assert tx.steps == 0


def test_transmitter_store_outlasts_the_samples_in_flight_by_default():
    enc, _ = fresh()  # n = N symbols per message
    small = live.TransmitterTrainer(enc, params(batch_size=40))
    assert small.store_batches * 40 * enc.config.n >= live.TransmitterTrainer.IN_FLIGHT_SAMPLES
    big = live.TransmitterTrainer(enc, params(batch_size=1 << 16))
    assert big.store_batches == 32  # never fewer


def test_transmitter_sends_nothing_for_out_of_range_messages_and_does_not_train_on_them():
    enc, _ = fresh()
    tx = live.TransmitterTrainer(enc, params(rx_batches=1, tx_batches=1))
    m = np.array([0, 3, M, 255, 5])
    for b in (0, 1):
        x = tx.symbols(b, m)
        assert np.all(x[2:4] == 0) and np.all(np.abs(x[[0, 1, 4]]) > 0)
    c = tx.counters()
    assert c["out_of_range"] == 4 and c["untrainable_batches"] == 1
    assert tx.on_losses(1, np.ones(5)) == "unknown"  # the batch was never stored


def test_transmitter_step_moves_the_table_publishes_and_saves_its_role(tmp_path):
    enc, _ = fresh()
    published = []
    out = str(tmp_path / "tx.safetensors")
    tx = live.TransmitterTrainer(enc, params(rx_batches=0, tx_batches=1, lr=1e-2), on_weights=published.append,
                                 publish_every=2, save_path=out, save_every=3)
    before = tx.symbol_table().copy()
    for b in range(4):
        m = prng.batch_messages(0, b, 100, M)
        tx.symbols(b, m)
        assert tx.on_losses(b, np.random.default_rng(b).random(100)) == "queued"
    assert tx.steps == 4 and len(published) == 2
    assert not np.allclose(tx.symbol_table(), before)
    c = checkpoint.from_bytes(published[-1])
    assert (c.kind, c.config.M, c.metadata) == ("transmitter", M, {"transmitter_steps": "4"})
    saved = checkpoint.load(out)  # written after step 3
    assert (saved.kind, saved.metadata["transmitter_steps"]) == ("transmitter", "3")
    tx.save()
    np.testing.assert_array_equal(checkpoint.load(out).network("encoder").symbol_table(), tx.symbol_table())


# --- ReceiverTrainer ----------------------------------------------------------------

def test_receiver_feeds_back_losses_only_on_transmitter_batches(tmp_path):
    _, dec = fresh()
    sent = []
    rx = live.ReceiverTrainer(dec, params(batch_size=B, rx_batches=2, tx_batches=1, seed=5),
                              on_losses=lambda b, l: sent.append((b, l)), save_path=str(tmp_path / "rx.safetensors"))
    enc, _ = fresh()
    for b in range(6):
        rx.on_batch(b, enc.symbol_table()[prng.batch_messages(5, b, B, M)])
    assert [b for b, _ in sent] == [2, 5]
    assert all(l.shape == (B,) and l.dtype == np.float32 for _, l in sent)
    assert rx.steps == 4
    with pytest.raises(ValueError, match="batch_size"):
        rx.on_batch(6, np.zeros((B + 1, N), dtype=np.complex64))
    saved = checkpoint.load(rx.save())
    assert (saved.kind, saved.metadata["receiver_steps"]) == ("receiver", "4")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_threaded_live_link_learns():
    """Both ends on worker threads, the streaming loop never waiting on a step.

    M=16, n=7 at 4 dB, 2500 batches of 500: measured BLER ~0.03; must beat
    uncoded BPSK (k=4, 0.049) by its 99.9% Wilson bound.
    """
    enc, dec = fresh()
    wtx, wrx = worker.TrainingWorker(blocking=True), worker.TrainingWorker(blocking=True)
    p = params(batch_size=500, lr=5e-3, seed=1)
    tx = live.TransmitterTrainer(enc, p, worker=wtx)
    rx = live.ReceiverTrainer(dec, p, worker=wrx, on_losses=tx.on_losses)
    gen = prng.torch_generator(0, prng.NOISE)
    n0 = snr.n0_from_ebn0_db(4.0, M, N)
    for b in range(2500):
        x = torch.from_numpy(tx.symbols(b, p.messages(b, M)))
        rx.on_batch(b, channels.AWGN()(x, n0, gen).numpy())
    assert wrx.drain(30) and wtx.drain(30)
    wrx.stop(), wtx.stop()
    assert tx.steps == 1250 and rx.steps == 1250
    point = evaluation.evaluate_bler(LearnedLink(enc, dec), [4.0], min_errors=10**9, max_blocks=200_000)[0]
    assert theory.wilson_interval(point["block_errors"], point["blocks"], 0.999)[1] < theory.uncoded_bpsk_bler(4.0, 4)


def test_trainers_need_a_params_object():
    enc, dec = fresh()
    with pytest.raises(TypeError, match="ModelFreeParams"):
        live.TransmitterTrainer(enc, {"sigma2": 0.1})
    with pytest.raises(ValueError, match="^publish_every must"):
        live.ReceiverTrainer(dec, params(), publish_every=-1)
