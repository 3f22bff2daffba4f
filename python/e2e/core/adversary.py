"""Perturbation generators: networks that turn a transmitted block into a perturbation.

A generator G(x) sees the transmitted symbols x of one message and emits a
perturbation p scaled to a fixed budget: every row has energy exactly
budget(psr_db, n) = n * 10^(psr_db / 10), i.e. a perturbation-to-signal
ratio PSR = ||p||^2 / (n Es) of psr_db (Es = 1). The same network serves as
an attacker (a generative attack) and as the adversary of GAN-based robust
training (core.defense.train_gan_defense).

Architectures (after the GAN-based defense of autoencoder receivers):

  mlp   Dense(hidden..., ELU) -> Dense(2n), on the [batch, 2n] layout
  cnn   Conv1d(hidden channels..., ELU) over the n symbols of the
        [batch, 2, n] layout (channels re, im) -> flatten -> Dense(2n)

then the output row is L2-normalised to the budget. In real mode the
generator reads the n real parts only, emits n real values and a zero
imaginary half.

Checkpoints of kind 'adversary' (core.kinds) hold the network 'generator'
with an AdversaryConfig: save_adversary / load_adversary.
"""
import dataclasses
import math

import torch
from torch import nn

from . import attacks, validate
from .models import _cnn, _mlp, complex_to_real, real_to_complex

ARCHITECTURES = ("mlp", "cnn")
DEFAULT_PSR_DB = -6.0
# Hidden widths (mlp) or channel counts (cnn) when the config gives none.
DEFAULT_HIDDEN = {"mlp": (64, 64), "cnn": (16, 16)}
ACTIVATION = "elu"


@dataclasses.dataclass(frozen=True)
class AdversaryConfig:
    """Architecture and budget of a perturbation generator.

    M, n, mode: the link it perturbs (messages, channel uses per message,
    'complex' or 'real'); M only ties the file to links of that size.
    architecture: 'mlp' or 'cnn' (module docstring).
    hidden: widths of the hidden dense layers (mlp) or channel counts of the
    Conv1d layers (cnn); None means DEFAULT_HIDDEN[architecture].
    psr_db: the perturbation budget as a perturbation-to-signal ratio in dB.
    """

    M: int
    n: int
    mode: str = "complex"
    architecture: str = "mlp"
    hidden: tuple = None
    psr_db: float = DEFAULT_PSR_DB

    def __post_init__(self):
        validate.sizes(self.M, self.n)
        validate.mode(self.mode)
        validate.choice("architecture", self.architecture, ARCHITECTURES)
        value = DEFAULT_HIDDEN[self.architecture] if self.hidden is None else self.hidden
        object.__setattr__(self, "hidden", validate.widths("hidden", value))
        object.__setattr__(self, "psr_db", validate.db("psr_db", self.psr_db))
        attacks.budget(self.psr_db, self.n)  # refuses a PSR outside attacks.PSR_RANGE_DB, naming psr_db

    @property
    def budget(self):
        """Energy of every perturbation row: n * 10^(psr_db / 10)."""
        return attacks.budget(self.psr_db, self.n)

    def to_dict(self):
        """JSON-ready fields (without kind and format_version, which the checkpoint adds)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build and validate from to_dict()'s output; ValueError names what is wrong."""
        return cls(**validate.config_dict(cls, d, ("M", "n")))


class PerturbationGenerator(nn.Module):
    """Transmitted block -> perturbation with energy exactly the budget, per row.

    Input:  x, real float32 [batch, 2n], the transmitted symbols (real parts,
            then imaginary parts; real mode reads the real parts only)
    Output: p, real float32 [batch, 2n], same layout; every row has
            ||p||^2 = config.budget (zero imaginary half in real mode)
    """

    # Floor on a raw row's squared norm, so an all-zero output cannot divide by zero.
    EPS = 1e-12

    def __init__(self, config: AdversaryConfig):
        super().__init__()
        self.config = config
        channels = 1 if config.mode == "real" else 2
        width = channels * config.n
        if config.architecture == "cnn":
            self.net = _cnn(channels, config.n, config.hidden, ACTIVATION, width)
        else:
            self.net = _mlp((width,) + config.hidden, ACTIVATION, width)
        self.scale = math.sqrt(config.budget)

    def forward(self, x):
        c = self.config
        if c.mode == "real":
            x = x[:, : c.n]
        raw = self.net(x)
        p = raw * (self.scale * torch.rsqrt(raw.pow(2).sum(dim=1, keepdim=True).clamp_min(self.EPS)))
        if c.mode == "real":
            p = torch.cat([p, torch.zeros_like(p)], dim=1)
        return p


def build_generator(config: AdversaryConfig, seed=None):
    """A fresh PerturbationGenerator; with a seed, its initialisation is reproducible.

    As models.build: the seed (derived through stream prng.INIT) is applied
    inside a forked RNG, so the caller's global torch random state is left
    as it was.
    """
    if seed is None:
        return PerturbationGenerator(config)
    from .prng import INIT, derived_seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, INIT))
        return PerturbationGenerator(config)


class GeneratorPerturbation:
    """A generator as a per-message perturbation f(x, generator) -> p for attacks.Perturbed.

    Input:  x, complex [batch, n], the transmitted symbols; the second
            argument (a torch.Generator) is unused: G(x) draws nothing.
    Output: p, complex [batch, n] (x's dtype), no gradient to the generator.
    """

    def __init__(self, generator: PerturbationGenerator):
        self.generator = generator
        self.preserves_real = generator.config.mode == "real"

    def __call__(self, x, generator=None):
        with torch.no_grad():
            p = self.generator(complex_to_real(x).to(torch.float32))
        return real_to_complex(p).to(x.dtype)


def save_adversary(path, config, generator, metadata=None):
    """Atomically write an 'adversary' checkpoint holding `generator`; returns the path.

    metadata: {str: anything str() can write}, stored beside the config
    (e.g. steps trained, the link it was trained against).
    """
    from . import checkpoint  # here, not above: kinds imports this module to register the kind
    return checkpoint.save(path, "adversary", config, {"generator": generator}, metadata)


def load_adversary(path, expect=None):
    """(config, generator in eval mode) of an 'adversary' checkpoint file.

    expect: {config field: value} the caller requires, e.g. {'M': 16, 'n': 7}.
    A file of another kind, a damaged file or a mismatch raises
    checkpoint.CheckpointError naming the file.
    """
    from . import checkpoint
    c = checkpoint.load(path, kinds_allowed=("adversary",), expect=expect)
    return c.config, c.networks["generator"]
