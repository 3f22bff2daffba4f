"""Model-aware training: it learns, it is deterministic, restarts keep the best, schedules.

The learning check compares with a closed form, not with a number seen in a
run: uncoded BPSK carrying k = 4 bits at Eb/N0 = 4 dB has BLER
1 - (1 - Q(sqrt(2 Eb/N0)))**4 = 0.049. A 16-message code on 7 complex uses
trained at that Eb/N0 must beat it, with the Wilson 99.9% upper bound of its
measured BLER below 0.049 (a well trained link sits near 0.02, Hamming (7,4)
soft ML at 0.012).
"""
import math

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import channels, config, evaluation, models, prng, theory, training
from gnuradio.e2e.core.learned import LearnedLink

torch.set_num_threads(1)
CFG = config.LinkConfig(M=16, n=7, mode="complex")
EBN0 = 4.0


AWGN = channels.AWGN()


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained():
    enc, dec = models.build(CFG, seed=0)
    hist = training.train_model_aware(enc, dec, AWGN, EBN0, steps=400, batch_size=1000, lr=1e-2, seed=0)
    return enc, dec, hist


def test_loss_falls(trained):
    _, _, hist = trained
    assert len(hist["loss"]) == 40 and hist["step"][-1] == 400
    # the first logged loss averages steps 1..10, still near log(16) = 2.77
    assert hist["loss"][0] > 1.5
    assert hist["loss"][-1] < hist["loss"][0] / 5
    assert all(math.isfinite(v) for v in hist["loss"])


def test_learned_link_beats_uncoded_bpsk(trained):
    enc, dec, _ = trained
    assert not enc.training and not dec.training  # eval mode after training
    reference = float(theory.uncoded_bpsk_bler(EBN0, 4))
    assert reference == pytest.approx(0.0491, abs=1e-3)
    blocks = 30_000
    (p,) = evaluation.evaluate_bler(LearnedLink(enc, dec), [EBN0], min_errors=blocks + 1,
                                    max_blocks=blocks, seed=1)
    assert p["blocks"] == blocks
    lo, hi = theory.wilson_interval(p["block_errors"], blocks, 0.999)
    assert hi < reference, f"learned BLER {p['bler']:.4f} (99.9% upper {hi:.4f}) vs uncoded {reference:.4f}"
    # a useful energy-normalised constellation: every codeword has energy n
    table = enc.symbol_table()
    np.testing.assert_allclose(np.sum(np.abs(table) ** 2, axis=1), CFG.n, rtol=1e-5)


def test_untrained_link_does_not_beat_uncoded_bpsk():
    """The learning check can fail: an untrained pair is far worse than the reference."""
    enc, dec = models.build(CFG, seed=0)
    enc.eval(), dec.eval()
    (p,) = evaluation.evaluate_bler(LearnedLink(enc, dec), [EBN0], min_errors=10**9, max_blocks=5000)
    assert p["bler"] > 0.3


def test_deterministic():
    def run(init_seed, data_seed):
        enc, dec = models.build(CFG, seed=init_seed)
        hist = training.train_model_aware(enc, dec, AWGN, EBN0, steps=30, batch_size=200,
                                          lr=1e-2, seed=data_seed, log_every=5)
        return hist, state(enc), state(dec)

    a, b = run(3, 3), run(3, 3)
    assert a[0] == b[0]
    assert same_state(a[1], b[1]) and same_state(a[2], b[2])
    c = run(3, 4)  # same initialisation, other messages and noise (the noise stream follows the seed)
    assert a[0]["loss"] != c[0]["loss"] and not same_state(a[1], c[1])


def test_messages_follow_batch_index(monkeypatch):
    """Step i trains on prng.batch_messages(seed, i, batch_size, M)."""
    seen = []
    enc, dec = models.build(CFG, seed=0)
    real_forward = type(enc).forward

    def spy(self, m):
        seen.append(m.clone())
        return real_forward(self, m)

    monkeypatch.setattr(type(enc), "forward", spy)
    training.train_model_aware(enc, dec, AWGN, EBN0, steps=3, batch_size=50, seed=7)
    assert len(seen) == 3
    for i, m in enumerate(seen):
        np.testing.assert_array_equal(m.numpy(), prng.batch_messages(7, i, 50, CFG.M))


def test_train_decoder_only_leaves_encoder():
    enc, dec = models.build(CFG, seed=1)
    e0, d0 = state(enc), state(dec)
    training.train_model_aware(enc, dec, AWGN, EBN0, steps=20, batch_size=200, train=("decoder",))
    assert same_state(e0, state(enc))
    assert not same_state(d0, state(dec))


def test_train_encoder_only_leaves_decoder():
    enc, dec = models.build(CFG, seed=1)
    e0, d0 = state(enc), state(dec)
    training.train_model_aware(enc, dec, AWGN, EBN0, steps=20, batch_size=200, train=("encoder",))
    assert not same_state(e0, state(enc))
    assert same_state(d0, state(dec))


# --- fit_link -----------------------------------------------------------------------

def test_fit_link_keeps_best_restart():
    enc, dec, report = training.fit_link(CFG, AWGN, EBN0, steps=40, batch_size=200, seed=0, restarts=2,
                                         validation_blocks=5000)
    runs = report["runs"]
    assert [r["restart"] for r in runs] == [0, 1]
    assert runs[0]["seed"] != runs[1]["seed"]
    best = min(runs, key=lambda r: (r["validation_errors"], r["final_loss"]))
    assert report["chosen"] == best["restart"]
    assert all("models" not in r for r in runs)
    # the returned pair is the chosen restart: same validation errors on the same noise
    assert training.validation_errors(enc, dec, AWGN, EBN0, blocks=5000, seed=0) == best["validation_errors"]


@pytest.mark.parametrize("errors, chosen", [([7, 3], 1), ([3, 7], 0), ([5, 5, 2], 2)])
def test_fit_link_choice_by_validation_errors(monkeypatch, errors, chosen):
    calls = []

    def fake_validation(enc, dec, channel, ebn0_db, *, blocks, seed):
        calls.append((enc, dec))
        return errors[len(calls) - 1]

    monkeypatch.setattr(training, "validation_errors", fake_validation)
    enc, dec, report = training.fit_link(CFG, AWGN, EBN0, steps=2, batch_size=20, restarts=len(errors))
    assert report["chosen"] == chosen
    assert [r["validation_errors"] for r in report["runs"]] == errors
    assert enc is calls[chosen][0] and dec is calls[chosen][1]


def test_fit_link_deterministic_and_finetune():
    def fit():
        return training.fit_link(CFG, AWGN, (2.0, 6.0), steps=15, batch_size=100, seed=5, decoder_finetune_steps=5,
                                 validation_blocks=2000)

    (e1, d1, r1), (e2, d2, r2) = fit(), fit()
    assert same_state(state(e1), state(e2)) and same_state(state(d1), state(d2))
    assert r1["runs"][0]["validation_errors"] == r2["runs"][0]["validation_errors"]


def test_validation_errors_counts():
    enc, dec = models.build(CFG, seed=0)
    enc.eval(), dec.eval()
    e = training.validation_errors(enc, dec, AWGN, EBN0, blocks=2000, seed=0)
    assert 0 <= e <= 2000 and e > 1000  # untrained: mostly wrong


# --- learning-rate schedules ---------------------------------------------------------

def test_lr_factor_values():
    steps = 100
    assert all(training.lr_factor("constant", s, steps) == 1.0 for s in range(steps + 1))
    cos = [training.lr_factor("cosine", s, steps) for s in range(steps + 1)]
    assert cos[0] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.01)
    assert cos[50] == pytest.approx(0.01 + 0.99 * 0.5)
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    step = [training.lr_factor("step", s, steps) for s in range(steps)]
    assert step[:50] == [1.0] * 50 and step[50:80] == [0.1] * 30 and step[80:] == [0.01] * 20


def test_lr_schedule_applied_in_training():
    lr, steps = 1e-2, 20
    for schedule in training.SCHEDULES:
        enc, dec = models.build(CFG, seed=0)
        hist = training.train_model_aware(enc, dec, AWGN, EBN0, steps=steps, batch_size=20, lr=lr,
                                          lr_schedule=schedule, log_every=1)
        # after step i (1-based) the optimiser holds the rate for step i
        expected = [lr * training.lr_factor(schedule, s, steps) for s in hist["step"]]
        assert hist["lr"] == pytest.approx(expected, rel=1e-12), schedule


# --- argument validation ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"),
    (dict(steps=-5), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(log_every=0), "log_every"),
    (dict(lr=-1), "lr"),
    (dict(lr=0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(lr_schedule="linear"), "lr_schedule"),
    (dict(train=("encoder", "channel")), "train"),
    (dict(ebn0_db="4"), "ebn0_db"),
    (dict(ebn0_db=(8, 2)), "ebn0_db"),
])
def test_bad_arguments(kwargs, name):
    enc, dec = models.build(CFG, seed=0)
    e0 = state(enc)
    args = {"steps": 10, "ebn0_db": EBN0, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} (range )?must"):
        training.train_model_aware(enc, dec, AWGN, **args)
    assert same_state(e0, state(enc))  # refused before any step


def test_real_mode_refuses_a_rotating_channel():
    enc, dec = models.build(config.LinkConfig(M=16, n=7, mode="real"), seed=0)
    with pytest.raises(ValueError, match="^mode must be 'complex' for the RayleighBlockFading channel"):
        training.train_model_aware(enc, dec, channels.RayleighBlockFading(), EBN0, steps=1)


def test_lr_scheduler_holds_after_its_horizon():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = training.lr_scheduler(opt, "cosine", 10)
    rates = []
    for _ in range(15):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == 1.0 and rates[10:] == [pytest.approx(0.01)] * 5
    assert all(a > b for a, b in zip(rates[:10], rates[1:11]))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = training.lr_scheduler(opt, "step", 0)  # no horizon: constant
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 1.0
    with pytest.raises(ValueError, match="^schedule_steps must"):
        training.lr_scheduler(opt, "cosine", -1)


def test_lr_factor_unknown_schedule():
    with pytest.raises(ValueError, match="^lr_schedule must"):
        training.lr_factor("exponential", 0, 10)


@pytest.mark.parametrize("kwargs, name", [(dict(restarts=0), "restarts"), (dict(restarts=1.5), "restarts"),
                                          (dict(steps=0), "steps"), (dict(lr=-1.0), "lr")])
def test_fit_link_bad_arguments(kwargs, name):
    args = {"steps": 5, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} must"):
        training.fit_link(CFG, AWGN, EBN0, **args)
