"""Live training core: TrainingWorker semantics and the two trainer ends, without GNU Radio."""
import math
import threading

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import channels, checkpoint, config, evaluation, live, models, prng, snr, theory, worker
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


# --- TransmitterTrainer ----------------------------------------------------------------

def test_transmitter_sends_f_of_m_on_receiver_batches_and_perturbs_on_transmitter_batches():
    enc, _ = fresh()
    tx = live.TransmitterTrainer(enc, sigma2=0.1, rx_batches=1, tx_batches=1, seed=0)
    table = enc.symbol_table()
    m = prng.batch_messages(0, 0, 20_000, M)
    np.testing.assert_array_equal(tx.symbols(0, m), table[m])  # batch 0: receiver phase
    w = tx.symbols(1, m) - math.sqrt(0.9) * table[m]            # batch 1: transmitter phase
    per_use = np.mean(np.abs(w) ** 2)
    assert abs(per_use - 0.1) < 6 * 0.1 / math.sqrt(20_000 * N)  # variance sigma2 per complex use
    assert tx.phase(1) == "transmitter"


def test_transmitter_refuses_unknown_expired_and_malformed_losses():
    enc, _ = fresh()
    tx = live.TransmitterTrainer(enc, rx_batches=0, tx_batches=1, store_batches=2)
    for b in range(4):
        tx.symbols(b, np.zeros(10, dtype=np.int64))
    assert tx.expired == 2                                   # batches 0 and 1 fell out of the store
    assert tx.on_losses(0, np.ones(10)) == "unknown"          # expired
    assert tx.on_losses(99, np.ones(10)) == "unknown"         # never sent
    assert tx.on_losses(2, np.ones(3)) == "mismatch"          # wrong length
    assert tx.on_losses(3, np.full(10, np.nan)) == "mismatch"  # not finite
    assert tx.counters()["unknown_losses"] == 2 and tx.counters()["bad_losses"] == 2
    assert tx.steps == 0


def test_transmitter_step_moves_the_table_and_publishes_weights():
    enc, _ = fresh()
    published = []
    tx = live.TransmitterTrainer(enc, rx_batches=0, tx_batches=1, lr=1e-2, on_weights=published.append,
                                 publish_every=2)
    before = tx._table.copy()
    for b in range(4):
        m = prng.batch_messages(0, b, 100, M)
        tx.symbols(b, m)
        assert tx.on_losses(b, np.random.default_rng(b).random(100)) == "queued"
    assert tx.steps == 4 and len(published) == 2
    assert not np.allclose(tx._table, before)
    cfg, enc2, _ = checkpoint.from_bytes(published[-1], need=("encoder",))
    assert cfg.M == M  # the published bytes are a valid encoder checkpoint


# --- ReceiverTrainer ----------------------------------------------------------------

def test_receiver_feeds_back_losses_only_on_transmitter_batches():
    _, dec = fresh()
    sent = []
    rx = live.ReceiverTrainer(dec, batch_size=B, rx_batches=2, tx_batches=1, seed=5,
                              on_losses=lambda b, l: sent.append((b, l)))
    enc, _ = fresh()
    for b in range(6):
        rx.on_batch(b, enc.symbol_table()[prng.batch_messages(5, b, B, M)])
    assert [b for b, _ in sent] == [2, 5]
    assert all(l.shape == (B,) and l.dtype == np.float32 for _, l in sent)
    assert rx.steps == 4
    with pytest.raises(ValueError, match="batch_size"):
        rx.on_batch(6, np.zeros((B + 1, N), dtype=np.complex64))


@pytest.mark.timeout(120)
def test_threaded_live_link_learns():
    """Both ends on worker threads, the streaming loop never waiting on a step.

    M=16, n=7 at 4 dB, 2500 batches of 500: measured BLER ~0.03; must beat
    uncoded BPSK (k=4, 0.049) by its 99.9% Wilson bound.
    """
    enc, dec = fresh()
    wtx, wrx = worker.TrainingWorker(blocking=True), worker.TrainingWorker(blocking=True)
    tx = live.TransmitterTrainer(enc, lr=5e-3, worker=wtx, seed=1)
    rx = live.ReceiverTrainer(dec, batch_size=500, lr=5e-3, worker=wrx, on_losses=tx.on_losses, seed=1)
    rng = np.random.default_rng(0)
    n0 = snr.n0_from_ebn0_db(4.0, M, N)
    for b in range(2500):
        rx.on_batch(b, channels.awgn_np(tx.symbols(b, prng.batch_messages(1, b, 500, M)), n0, "complex", rng))
    assert wrx.drain(30) and wtx.drain(30)
    wrx.stop(), wtx.stop()
    assert tx.steps == 1250 and rx.steps == 1250
    point = evaluation.evaluate_bler(LearnedLink(enc, dec), [4.0], min_errors=10**9, max_blocks=200_000)[0]
    assert theory.wilson_interval(point["block_errors"], point["blocks"], 0.999)[1] < theory.uncoded_bpsk_bler(4.0, 4)


def test_lr_schedule_decays_over_its_horizon_then_holds():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = live.lr_scheduler(opt, "cosine", 10)
    rates = []
    for _ in range(15):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == 1.0 and all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[10] == rates[14] == pytest.approx(0.01)  # held at the final rate after the horizon
    const = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s0 = live.lr_scheduler(const, "cosine", 0)  # no horizon: constant
    for _ in range(5):
        const.step()
        s0.step()
    assert const.param_groups[0]["lr"] == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        live.lr_scheduler(opt, "linear", 10)
    with pytest.raises(ValueError, match="schedule_steps"):
        live.lr_scheduler(opt, "cosine", -1)


def test_training_blocks_name_bad_schedule_parameters(tmp_path):
    from gnuradio import e2e
    path = str(tmp_path / "link.safetensors")
    checkpoint.save(path, config.LinkConfig(M=M, n=N), *fresh())
    for block in (e2e.nn_encoder, e2e.nn_decoder):
        with pytest.raises(ValueError, match="lr_schedule"):
            block(path, M, N, training=True, lr_schedule="linear")
        with pytest.raises(ValueError, match="schedule_steps"):
            block(path, M, N, training=True, schedule_steps=-5)
