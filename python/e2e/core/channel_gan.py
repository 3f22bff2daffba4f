"""Learned channel models: a conditional GAN for p(y | x), and the channel that plays it back.

After the residual-aided GAN (RA-GAN) of end-to-end learning without a
channel model: a generator G learns to draw y ~ p(y | x) from observed (x, y)
pairs, a discriminator D learns to tell real pairs from generated ones, and
the trained generator stands in for the channel when a transmitter is
trained by backpropagation (the real channel has no gradient).

Generator, on the networks' real layout [batch, 2n] (DESIGN.md):

  residual   y = x + G_R([x, z])   (the paper's skip connection: the network
                                    learns only what the channel adds to x)
  plain      y = G([x, z])

with z ~ N(0, I) of noise_dim real numbers per message, G an MLP
Dense(hidden..., ELU) -> Dense(2n). Weights are Xavier-uniform, biases zero;
a residual generator's last layer starts at RESIDUAL_OUTPUT_GAIN times its
Xavier draw, so at initialisation y = x + (a small perturbation): identity
plus a little noise, from which training moves towards the channel.

Discriminator, logits [batch] (> 0: judged real):

  pair     D([x, y])   sees the pair, so it judges the conditional p(y | x)
  output   D(y)        sees y only: the paper's literal form, which judges
                       the marginal of y and cannot see whether y belongs to x

an MLP Dense(disc_hidden..., LeakyReLU(0.2)) -> Dense(1), Xavier-uniform.

In real mode (imaginary parts of x zero) the networks read and write the n
real parts only; the generator's imaginary half is zero.

Checkpoints of kind 'channel_model' (core.kinds) hold both networks, so a
training run can resume: save_channel_model / load_channel_model.
"""
import dataclasses
import typing

import torch
from torch import nn

from . import validate
from .channels import Channel
from .models import complex_to_real, real_to_complex

GENERATORS = ("residual", "plain")
DISCRIMINATORS = ("pair", "output")
DEFAULT_HIDDEN = (128, 128)
DEFAULT_DISC_HIDDEN = (128, 128)
# Scale of the residual branch's last layer at initialisation: its output is
# ~1e-2 of x, so an untrained residual generator is the identity plus a little noise.
RESIDUAL_OUTPUT_GAIN = 0.01
LEAKY_SLOPE = 0.2


@dataclasses.dataclass(frozen=True)
class ChannelModelConfig:
    """Architecture of a learned channel model (generator and discriminator).

    n: complex channel uses per message (the generator maps [batch, 2n] to [batch, 2n]).
    mode: 'complex', or 'real' (imaginary parts zero; the networks see n real parts).
    generator: 'residual' (y = x + G_R([x, z])) or 'plain' (y = G([x, z])).
    hidden: widths of the generator's hidden layers.
    noise_dim: real noise inputs z per message; None means the signal width
        (2n in complex mode, n in real mode).
    discriminator: 'pair' (sees x and y) or 'output' (sees y only).
    disc_hidden: widths of the discriminator's hidden layers.
    ebn0_db: the Eb/N0 (dB) of the channel the model was learned from, or
        None; documentation for users: the model's noise is learned, not set.
    M: messages of the link whose rate (log2(M)/n) defines that Eb/N0.
    """

    n: int
    mode: str = "complex"
    generator: str = "residual"
    hidden: tuple = DEFAULT_HIDDEN
    noise_dim: typing.Optional[int] = None
    discriminator: str = "pair"
    disc_hidden: tuple = DEFAULT_DISC_HIDDEN
    ebn0_db: typing.Optional[float] = None
    M: int = 16

    def __post_init__(self):
        validate.sizes(self.M, self.n)
        validate.mode(self.mode)
        validate.choice("generator", self.generator, GENERATORS)
        validate.choice("discriminator", self.discriminator, DISCRIMINATORS)
        object.__setattr__(self, "hidden", validate.widths("hidden", self.hidden))
        object.__setattr__(self, "disc_hidden", validate.widths("disc_hidden", self.disc_hidden))
        noise_dim = self.width if self.noise_dim is None else validate.integer("noise_dim", self.noise_dim, 1)
        object.__setattr__(self, "noise_dim", noise_dim)
        if self.ebn0_db is not None:
            object.__setattr__(self, "ebn0_db", validate.db("ebn0_db", self.ebn0_db))

    @property
    def width(self):
        """Real numbers per message the networks read and write: 2n (complex) or n (real)."""
        return self.n if self.mode == "real" else 2 * self.n

    def to_dict(self):
        """JSON-ready fields (without kind and format_version, which the checkpoint adds)."""
        d = dataclasses.asdict(self)
        d["hidden"], d["disc_hidden"] = list(self.hidden), list(self.disc_hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build and validate from to_dict()'s output; ValueError names what is wrong."""
        return cls(**validate.config_dict(cls, d, ("n",)))


def _mlp(widths, activation, out_features):
    layers = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), activation()]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


def _xavier(net, last_gain=1.0):
    """Xavier-uniform weights, zero biases; the last layer's weights scaled by last_gain."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer in linears:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        linears[-1].weight.mul_(last_gain)


class ChannelGenerator(nn.Module):
    """Conditional generator of received symbols: y = x + G_R([x, z]) (residual) or G([x, z]) (plain).

    Input:  x, real float32 [batch, 2n], transmitted symbols (real parts, then
            imaginary parts; real mode reads the real parts only)
            z, real float32 [batch, noise_dim], the generator's noise (N(0, 1))
    Output: y, real float32 [batch, 2n], same layout (zero imaginary half in real mode)
    """

    def __init__(self, config: ChannelModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.net = _mlp((w + config.noise_dim,) + config.hidden, nn.ELU, w)
        _xavier(self.net, RESIDUAL_OUTPUT_GAIN if config.generator == "residual" else 1.0)

    def forward(self, x, z):
        c = self.config
        if c.mode == "real":
            x = x[:, : c.n]
        out = self.net(torch.cat([x, z], dim=1))
        if c.generator == "residual":
            out = x + out
        if c.mode == "real":
            out = torch.cat([out, torch.zeros_like(out)], dim=1)
        return out

    def noise(self, batch, generator=None, device="cpu"):
        """z ~ N(0, 1): real float32 [batch, noise_dim], drawn from `generator`."""
        return torch.randn((batch, self.config.noise_dim), generator=generator, device=device)


class ChannelDiscriminator(nn.Module):
    """Real-or-generated judge of channel pairs.

    Input:  x, real float32 [batch, 2n], transmitted symbols (ignored by an
            'output' discriminator)
            y, real float32 [batch, 2n], received or generated symbols
    Output: logits, float32 [batch] (sigmoid: probability that (x, y) is real)
    """

    def __init__(self, config: ChannelModelConfig):
        super().__init__()
        self.config = config
        w = config.width
        inputs = 2 * w if config.discriminator == "pair" else w
        self.net = _mlp((inputs,) + config.disc_hidden, lambda: nn.LeakyReLU(LEAKY_SLOPE), 1)
        _xavier(self.net)

    def forward(self, x, y):
        c = self.config
        if c.mode == "real":
            x, y = x[:, : c.n], y[:, : c.n]
        features = torch.cat([x, y], dim=1) if c.discriminator == "pair" else y
        return self.net(features).squeeze(1)


def build_channel_model(config: ChannelModelConfig, seed=None):
    """Fresh (ChannelGenerator, ChannelDiscriminator); with a seed, initialisation is reproducible.

    As models.build: the seed (through stream prng.INIT) is applied inside a
    forked RNG, so the caller's global torch random state is left as it was.
    """
    if seed is None:
        return ChannelGenerator(config), ChannelDiscriminator(config)
    from .prng import INIT, derived_seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, INIT))
        return ChannelGenerator(config), ChannelDiscriminator(config)


class LearnedChannel(Channel):
    """A trained generator as a channel: y = G(x, z), z ~ N(0, 1) per message.

    forward(x, n0, generator) and sample(x, generator):
      x:         complex tensor [batch, n], transmitted symbols
      n0:        ignored: the model's noise is learned from the data it was
                 fitted to (config.ebn0_db says at what Eb/N0), not set by N0
      generator: torch.Generator for z (None: the global RNG), so a seeded
                 generator reproduces the same y
      returns    complex tensor [batch, n], x's dtype

    Differentiable in x (a transmitter trains through it); the generator's
    own parameters are not trained by whoever holds the channel unless they
    are given to an optimizer.
    """

    def __init__(self, generator: ChannelGenerator):
        super().__init__()
        if not isinstance(generator, ChannelGenerator):
            raise TypeError(f"LearnedChannel needs a ChannelGenerator, got {type(generator).__name__}")
        self.generator = generator
        self.config = generator.config
        # A real-mode model writes zero imaginary parts: it may carry a real-mode link.
        self.preserves_real = generator.config.mode == "real"

    def sample(self, x, generator=None):
        if x.dim() != 2 or x.shape[1] != self.config.n:
            raise ValueError(f"x must be complex [batch, {self.config.n}], got shape {list(x.shape)}")
        z = self.generator.noise(x.shape[0], generator, x.device)
        y = self.generator(complex_to_real(x).to(torch.float32), z)
        return real_to_complex(y).to(x.dtype)

    def forward(self, x, n0=None, generator=None):
        return self.sample(x, generator)


def save_channel_model(path, config, generator, discriminator, metadata=None):
    """Atomically write a 'channel_model' checkpoint holding both networks; returns the path.

    metadata: {str: anything str() can write}, stored beside the config
    (e.g. steps trained, the dataset it was fitted to).
    """
    from . import checkpoint  # here, not above: kinds imports this module to register the kind
    return checkpoint.save(path, "channel_model", config,
                           {"generator": generator, "discriminator": discriminator}, metadata)


def load_channel_model(path, expect=None):
    """(config, generator, discriminator), both in eval mode, of a 'channel_model' checkpoint file.

    expect: {config field: value} the caller requires, e.g. {'n': 7}.
    A file of another kind, a damaged file or a mismatch raises
    checkpoint.CheckpointError naming the file.
    """
    from . import checkpoint
    c = checkpoint.load(path, kinds_allowed=("channel_model",), expect=expect)
    return c.config, c.networks["generator"], c.networks["discriminator"]
