"""core.prng: the training message sequence is a pure function of (seed, batch index).

Statistical bounds are at significance 1e-6 (chi-square quantiles from the
Wilson-Hilferty approximation, accurate to well under 1% at these degrees of
freedom), so a correct generator fails about once in a million runs.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import prng, theory

ALPHA = 1e-6


def chi2_quantile(p, k):
    """Wilson-Hilferty approximation of the chi-square quantile."""
    z = theory.normal_quantile(p)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3


@pytest.mark.parametrize("seed, batch, B, M", [(0, 0, 1000, 16), (7, 123, 64, 2), (2**40, 10**9, 10, 256)])
def test_batch_messages_pure_function(seed, batch, B, M):
    a = prng.batch_messages(seed, batch, B, M)
    # other draws in between, global seeds changed: no hidden state
    prng.batch_messages(seed, batch + 1, B, M)
    prng.numpy_rng(seed, prng.NOISE, batch).standard_normal(100)
    np.random.seed(99)
    torch.manual_seed(99)
    b = prng.batch_messages(seed, batch, B, M)
    assert a.dtype == np.int64 and a.shape == (B,)
    np.testing.assert_array_equal(a, b)


def test_batch_messages_same_in_another_process():
    """A receiver in another process regenerates exactly what was sent."""
    here = prng.batch_messages(5, 42, 200, 16).tolist()
    code = ("import json; from gnuradio.e2e.core import prng; "
            "print(json.dumps(prng.batch_messages(5, 42, 200, 16).tolist()))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=120).stdout
    assert json.loads(out) == here


def test_different_batches_and_seeds_differ():
    B, M = 1000, 16  # equal by chance with probability 16**-1000
    base = prng.batch_messages(0, 0, B, M)
    assert not np.array_equal(base, prng.batch_messages(0, 1, B, M))
    assert not np.array_equal(base, prng.batch_messages(1, 0, B, M))
    # (seed, batch) is a pair, not a sum or a concatenation
    assert not np.array_equal(prng.batch_messages(1, 2, B, M), prng.batch_messages(2, 1, B, M))
    rows = {tuple(prng.batch_messages(s, i, 50, M)) for s in range(5) for i in range(20)}
    assert len(rows) == 100


def test_purposes_have_separate_streams():
    tags = list(prng.Stream)
    assert len(set(int(t) for t in tags)) == len(tags) >= 7  # one number per named purpose
    draws = [tuple(prng.numpy_rng(3, t, 0).integers(0, 2**62, 4)) for t in tags]
    assert len(set(draws)) == len(tags)
    # batch_messages draws from the MESSAGES stream
    np.testing.assert_array_equal(prng.batch_messages(3, 9, 100, 16),
                                  prng.numpy_rng(3, prng.MESSAGES, 9).integers(0, 16, 100))


@pytest.mark.parametrize("M", [2, 3, 5, 16, 256, 1000])
def test_range(M):
    m = np.concatenate([prng.batch_messages(1, i, 5000, M) for i in range(4)])
    assert m.min() >= 0 and m.max() < M
    if M <= 256:  # every value occurs (miss probability < 256 * (1-1/256)**20000, about 1e-32)
        assert len(np.unique(m)) == M


def test_uniform_chi_square():
    M, B, batches = 16, 10000, 20
    m = np.concatenate([prng.batch_messages(11, i, B, M) for i in range(batches)])
    counts = np.bincount(m, minlength=M)
    expected = len(m) / M
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert stat < chi2_quantile(1 - ALPHA, M - 1), counts


def test_torch_generator_reproducible():
    a = torch.randn(100, generator=prng.torch_generator(4, prng.NOISE, 2))
    torch.manual_seed(0)
    b = torch.randn(100, generator=prng.torch_generator(4, prng.NOISE, 2))
    assert torch.equal(a, b)
    for other in (prng.torch_generator(4, prng.NOISE, 3), prng.torch_generator(5, prng.NOISE, 2),
                  prng.torch_generator(4, prng.EVAL, 2)):
        assert not torch.equal(a, torch.randn(100, generator=other))


def test_torch_generator_large_seeds():
    # the derived 64-bit state is shifted into manual_seed's accepted range
    for seed in (0, 1, 2**32, 2**63 - 1, 2**64 + 5):
        g = prng.torch_generator(seed, prng.INIT)
        assert torch.isfinite(torch.randn(3, generator=g)).all()


def test_negative_seed_refused():
    with pytest.raises(ValueError):
        prng.batch_messages(-1, 0, 10, 16)
