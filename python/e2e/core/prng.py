"""One seeded random-number scheme for all of gr-e2e.

The training messages of a batch are a pure function of (seed, batch index),
so a receiver regenerates what was sent from the batch index alone. Every
stream of randomness is derived with NumPy's SeedSequence from the seed plus a
purpose tag, so two purposes never share a stream.
"""
import numpy as np
import torch

# Purpose tags keep streams apart: (seed, MESSAGES, batch) never collides with
# (seed, NOISE, batch).
MESSAGES = 0
NOISE = 1
INIT = 2
EVAL = 3


def seed_sequence(seed, *path):
    return np.random.SeedSequence([int(seed)] + [int(p) for p in path])


def numpy_rng(seed, *path):
    """A NumPy Generator for (seed, *path)."""
    return np.random.default_rng(seed_sequence(seed, *path))


def torch_generator(seed, *path, device="cpu"):
    """A torch.Generator seeded from (seed, *path)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed_sequence(seed, *path).generate_state(1, np.uint64)[0]) >> 1)
    return g


def batch_messages(seed, batch_index, batch_size, M):
    """Training messages of one batch: int64 array of shape [batch_size] in [0, M).

    A pure function of (seed, batch_index): transmitter and receiver call it
    independently and get the same messages.
    """
    return numpy_rng(seed, MESSAGES, batch_index).integers(0, M, size=int(batch_size), dtype=np.int64)
