"""Neural transmitter (Encoder) and receiver (Decoder) of an autoencoder link.

Tensors follow DESIGN.md: channel symbols travel as real tensors of shape
[batch, 2n], all real parts then all imaginary parts. In real mode the
imaginary half is zero on transmit and ignored on receive.
"""
import numpy as np
import torch
from torch import nn

from .config import LinkConfig

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "linear": nn.Identity}


def _mlp(widths, activation, out_features):
    layers = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), _ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Message index -> n channel symbols with Es = 1 per channel use.

    The network is one-hot -> Dense(hidden, activation)... -> Dense(2n or n).
    Normalisation is computed on the full codebook (all M messages), not on
    the batch, so a message's symbols do not depend on what else is in the
    batch and 'average' normalisation is exact under a uniform prior.

    Input:  messages, int64 [batch] in [0, M)
    Output: real float32 [batch, 2n]
    """

    def __init__(self, config: LinkConfig):
        super().__init__()
        self.config = config
        self.net = _mlp((config.M,) + config.encoder_hidden, config.encoder_activation,
                        config.real_outputs)

    def codebook(self):
        """All M codewords, normalised: real float32 [M, 2n]."""
        c = self.config
        # one-hot @ W of the first layer is a row lookup: feed the identity.
        raw = self.net(torch.eye(c.M, dtype=self.net[0].weight.dtype, device=self.net[0].weight.device))
        if c.normalization == "energy":
            raw = raw * torch.rsqrt(raw.pow(2).sum(dim=1, keepdim=True) / c.n)
        else:
            raw = raw * torch.rsqrt(raw.pow(2).sum(dim=1).mean() / c.n)
        if c.mode == "real":
            raw = torch.cat([raw, torch.zeros_like(raw)], dim=1)
        return raw

    def forward(self, messages):
        return self.codebook()[messages]

    @torch.no_grad()
    def symbol_table(self):
        """Codebook as complex64 NumPy array [M, n] (the block's lookup table)."""
        return real_to_complex(self.codebook()).cpu().numpy().astype(np.complex64)


class Decoder(nn.Module):
    """n received symbols -> M logits (softmax gives message probabilities).

    Input:  real float32 [batch, 2n] (real parts, then imaginary parts)
    Output: logits float32 [batch, M]
    """

    def __init__(self, config: LinkConfig):
        super().__init__()
        self.config = config
        inputs = config.n if config.mode == "real" else 2 * config.n
        self.net = _mlp((inputs,) + config.decoder_hidden, config.decoder_activation, config.M)

    def forward(self, y):
        if self.config.mode == "real":
            y = y[:, : self.config.n]
        return self.net(y)


def real_to_complex(x):
    """[batch, 2n] real -> [batch, n] complex (torch)."""
    n = x.shape[-1] // 2
    return torch.complex(x[..., :n], x[..., n:])


def complex_to_real(z):
    """[batch, n] complex -> [batch, 2n] real (torch or NumPy)."""
    if isinstance(z, np.ndarray):
        return np.concatenate([z.real, z.imag], axis=-1)
    return torch.cat([z.real, z.imag], dim=-1)


def build(config: LinkConfig, seed=None):
    """Fresh (Encoder, Decoder); with a seed, initialisation is reproducible.

    The seed is applied inside a forked RNG so the caller's global torch
    random state is left as it was.
    """
    if seed is None:
        return Encoder(config), Decoder(config)
    from .prng import INIT, seed_sequence
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed_sequence(seed, INIT).generate_state(1)[0]))
        return Encoder(config), Decoder(config)
