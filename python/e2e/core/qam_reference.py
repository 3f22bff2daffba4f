"""A 16-QAM link with a neural receiver: the fixed-constellation reference for decision regions.

The transmitter is not learned: an ordinary Encoder whose weights are set so
that it emits Gray 16-QAM (linear activation, first layer the identity,
second layer the QAM points, 'average' normalisation, which leaves a
unit-energy constellation as it is). Only the decoder is trained. The result
is a plain link (autoencoder) checkpoint, so every tool that reads links
(gr_e2e eval, nn_decoder, gr_e2e plot regions) reads it as it is.
"""
import json

import numpy as np
import torch

from . import baselines, channels, config, models, training, validate

QAM16_POINTS = baselines.uncoded_link(4, "16qam").constellation  # complex128 [16], Gray, Es = 1
DEFAULT_TRAIN_EBN0_DB = 10.0
DEFAULT_STEPS = 1000
METHOD = "receiver only, fixed 16-QAM transmitter"


def qam16_config(decoder_hidden=None):
    """LinkConfig of the reference: M = 16, n = 1 complex, encoder fixed by qam16_encoder."""
    return config.LinkConfig(M=16, n=1, mode="complex", normalization="average", encoder_hidden=(16,),
                             encoder_activation="linear", decoder_hidden=decoder_hidden)


@torch.no_grad()
def qam16_encoder(cfg):
    """An Encoder of cfg (qam16_config) whose codebook is exactly QAM16_POINTS (float32)."""
    enc, _ = models.build(cfg, seed=0)
    first, second = enc.net[0], enc.net[-1]
    first.weight.copy_(torch.eye(16))
    first.bias.zero_()
    second.weight.copy_(torch.from_numpy(np.stack([QAM16_POINTS.real, QAM16_POINTS.imag]).astype(np.float32)))
    second.bias.zero_()
    enc.eval()
    return enc


def train_qam16_link(train_ebn0_db=DEFAULT_TRAIN_EBN0_DB, steps=DEFAULT_STEPS, batch_size=1000,
                     decoder_hidden=None, seed=0, progress_bar=False):
    """Train a decoder on the fixed 16-QAM transmitter over AWGN.

    train_ebn0_db: a number, or (lo, hi) drawn per example.
    Returns (config, encoder, decoder, metadata), metadata as gr_e2e train
    writes it (the training Eb/N0 as JSON under 'ebn0_db').
    """
    train_ebn0_db = validate.db_or_range("train_ebn0_db", train_ebn0_db)
    cfg = qam16_config(decoder_hidden)
    enc = qam16_encoder(cfg)
    _, dec = models.build(cfg, seed=seed)
    training.train_model_aware(enc, dec, channels.AWGN(), train_ebn0_db, steps=steps, batch_size=batch_size,
                               seed=seed, train=("decoder",), progress_bar=progress_bar,
                               desc="16-QAM receiver")
    metadata = {"ebn0_db": json.dumps(train_ebn0_db), "seed": seed, "steps": steps, "method": METHOD,
                "channel": "awgn"}
    return cfg, enc, dec, metadata
