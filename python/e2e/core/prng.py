"""One seeded random-number scheme for all of gr-e2e.

The training messages of a batch are a pure function of (seed, batch index),
so a receiver regenerates what was sent from the batch index alone. Every
stream of randomness is derived with NumPy's SeedSequence from the seed, a
named purpose (Stream) and an optional path (a batch index, a restart), so
two purposes never share a stream.
"""
import enum

import numpy as np
import torch


class Stream(enum.IntEnum):
    """Purposes of random streams: (seed, Stream.X, ...) never collides with (seed, Stream.Y, ...)."""

    MESSAGES = 0      # training messages of a batch (both ends regenerate them)
    NOISE = 1         # channel noise while training
    INIT = 2          # network initialisation
    EVAL = 3          # Monte-Carlo evaluation: messages and channel of each point
    PERTURBATION = 4  # the model-free transmitter's exploration noise, per batch
    FEEDBACK = 5      # impairments of the loss feedback link, per batch
    VALIDATION = 6    # held-out messages that pick the best training restart
    FINETUNE = 7      # channel noise while fine-tuning a receiver on a frozen constellation
    ATTACK = 8        # an attacker's data: received signals a perturbation is crafted on, random shifts
    JAMMING = 9       # Gaussian jamming and other random perturbations
    ADVERSARY = 10    # robust training: the adversary's draws (FGM sets, generator noise)
    CHANNEL_GAN = 11  # learned channels: GAN minibatches, generator noise z, the real channel while training
    CAPTURE = 12      # channel datasets: simulated transmit symbols and channel draws, splits
    MPA = 13          # attention precoder: subchannel gains and noise while training and adapting


# Module-level names, so call sites read prng.NOISE as before.
MESSAGES, NOISE, INIT, EVAL = Stream.MESSAGES, Stream.NOISE, Stream.INIT, Stream.EVAL
PERTURBATION, FEEDBACK, VALIDATION, FINETUNE = Stream.PERTURBATION, Stream.FEEDBACK, Stream.VALIDATION, Stream.FINETUNE
ATTACK, JAMMING, ADVERSARY = Stream.ATTACK, Stream.JAMMING, Stream.ADVERSARY
CHANNEL_GAN, CAPTURE = Stream.CHANNEL_GAN, Stream.CAPTURE
MPA = Stream.MPA


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


def derived_seed(seed, *path):
    """A 32-bit integer seed derived from (seed, *path), for code that takes a plain seed."""
    return int(seed_sequence(seed, *path).generate_state(1)[0])


def batch_messages(seed, batch_index, batch_size, M):
    """Training messages of one batch: int64 array of shape [batch_size] in [0, M).

    A pure function of (seed, batch_index): transmitter and receiver call it
    independently and get the same messages.
    """
    return numpy_rng(seed, MESSAGES, batch_index).integers(0, M, size=int(batch_size), dtype=np.int64)
