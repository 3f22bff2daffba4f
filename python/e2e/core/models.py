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


# Kernel of the CNN decoder's Conv1d layers, in symbols; padding keeps the n positions.
CNN_KERNEL = 3


def _cnn(in_channels, length, channels, activation, out_features):
    """[batch, in_channels * length] -> Conv1d stack over the length axis -> Dense(out_features).

    The input row is read as in_channels rows of `length` (for [batch, 2n]:
    real parts, then imaginary parts, i.e. the [batch, 2, n] layout).
    """
    layers = [nn.Unflatten(1, (in_channels, length))]
    for c_in, c_out in zip((in_channels,) + channels[:-1], channels):
        layers += [nn.Conv1d(c_in, c_out, CNN_KERNEL, padding=CNN_KERNEL // 2), _ACTIVATIONS[activation]()]
    layers += [nn.Flatten(), nn.Linear(channels[-1] * length, out_features)]
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


class TransformerFrontend(nn.Module):
    """Radio transformer network for a one-tap complex channel (block fading).

    O'Shea & Hoydis' receiver front end: a small network estimates the
    channel gain h of the block from the received symbols, and the block is
    equalised by it before the discriminative decoder sees it. Nothing
    supervises the estimate: it is trained end to end by the decoder's
    cross-entropy, so h_hat is whatever gain (scale and phase) makes the
    decoder's job easiest, not necessarily h itself.

    estimate: Dense(frontend_hidden, decoder_activation)... -> Dense(2),
    read as h_hat = out[:, 0] + j out[:, 1].
    equalise: y_eq = y / h_hat = y conj(h_hat) / (|h_hat|^2 + EPS), EPS
    keeping the division finite when the estimate comes near zero.

    Input:  y, real float32 [batch, 2n] (real parts, then imaginary parts)
    Output: y_eq, real float32 [batch, 2n] (same layout)
    """

    EPS = 1e-3

    def __init__(self, config: LinkConfig):
        super().__init__()
        self.n = config.n
        self.net = _mlp((2 * config.n,) + config.frontend_hidden, config.decoder_activation, 2)

    def estimate(self, y):
        """h_hat as real float32 [batch, 2] (real part, imaginary part)."""
        return self.net(y)

    def equalise(self, y, h):
        """y real [batch, 2n] divided by h real [batch, 2] (complex division per block)."""
        n = self.n
        hr, hi = h[:, :1], h[:, 1:]
        yr, yi = y[:, :n], y[:, n:]
        inv = 1.0 / (hr * hr + hi * hi + self.EPS)
        return torch.cat([(yr * hr + yi * hi) * inv, (yi * hr - yr * hi) * inv], dim=1)

    def forward(self, y):
        return self.equalise(y, self.estimate(y))


class Decoder(nn.Module):
    """n received symbols -> M logits (softmax gives message probabilities).

    With config.receiver_frontend == 'transformer' the received block first
    goes through a TransformerFrontend (attribute `frontend`, checkpoint keys
    decoder.frontend.*), which estimates and divides out a complex channel
    gain; the MLP (`net`) then decides on the equalised block. Otherwise
    `frontend` is None and the MLP sees the received block as it is.

    With config.decoder_architecture == 'cnn', `net` is a CNN instead of the
    MLP: the block is read as [batch, 2, n] (channels re, im; real mode: one
    channel of n real parts), Conv1d layers of decoder_hidden channels
    (kernel CNN_KERNEL, length kept) with decoder_activation, then flatten
    and Dense to M logits.

    Input:  real float32 [batch, 2n] (real parts, then imaginary parts)
    Output: logits float32 [batch, M]
    """

    def __init__(self, config: LinkConfig):
        super().__init__()
        self.config = config
        inputs = config.n if config.mode == "real" else 2 * config.n
        if config.decoder_architecture == "cnn":
            self.net = _cnn(inputs // config.n, config.n, config.decoder_hidden, config.decoder_activation,
                            config.M)
        else:
            self.net = _mlp((inputs,) + config.decoder_hidden, config.decoder_activation, config.M)
        # Built after net, so the MLP starts from the same weights as a plain
        # decoder built from the same seed.
        self.frontend = TransformerFrontend(config) if config.receiver_frontend == "transformer" else None

    def forward(self, y):
        if self.config.mode == "real":
            y = y[:, : self.config.n]
        if self.frontend is not None:
            y = self.frontend(y)
        return self.net(y)


def decide(logits):
    """Decided messages from decoder logits: int64 [batch] from [batch, M].

    The one decision rule of gr-e2e (blocks, evaluator, trainers). max().indices
    is about twice as fast as argmax() on CPU for [batch, M] float32; ties go to
    the lowest index either way.
    """
    return logits.max(dim=1).indices


def interleaved_decoder(decoder):
    """The decoder's MLP reading complex64 memory as it lies, or None where that does not apply.

    received_tensor copies complex symbols into [B, 2n] (real parts, then
    imaginary parts); on a (16,) decoder that copy costs as much as the
    network. Viewed as float32, complex64 [B, n] is already [B, 2n] with
    real and imaginary parts interleaved, so permuting the first layer's
    input columns gives the same logits (up to float summation order)
    without the copy. A decoder with a receiver frontend, or a CNN decoder
    (whose convolutions read the [2, n] layout), returns None.

    Input of the returned module:  float32 [batch, 2n] (re0, im0, re1, im1, ...),
        e.g. torch.from_numpy(y.view(np.float32)) for complex64 y [batch, n]
    Output: logits float32 [batch, M]
    """
    if decoder.frontend is not None or decoder.config.decoder_architecture != "mlp":
        return None
    c = decoder.config
    first = decoder.net[0]
    weight = first.weight.detach()
    columns = torch.zeros(weight.shape[0], c.n, 2, dtype=weight.dtype)
    columns[:, :, 0] = weight[:, :c.n]
    if c.mode == "complex":  # real mode ignores the imaginary parts: their columns stay zero
        columns[:, :, 1] = weight[:, c.n:]
    layer = nn.Linear(2 * c.n, weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(columns.reshape(weight.shape[0], 2 * c.n))
        layer.bias.copy_(first.bias.detach())
    return nn.Sequential(layer, *decoder.net[1:]).eval()


def received_tensor(y):
    """Received symbols as the decoder's input: complex NumPy [B, n] -> real float32 tensor [B, 2n]."""
    return torch.from_numpy(complex_to_real(np.asarray(y)).astype(np.float32, copy=False))


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
    from .prng import INIT, derived_seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, INIT))
        return Encoder(config), Decoder(config)
