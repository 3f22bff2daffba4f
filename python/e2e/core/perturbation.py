"""The 'perturbation' checkpoint kind: one universal adversarial perturbation in a file.

A universal perturbation (core.attacks.universal_perturbation) is crafted
once, offline, and replayed by a flowgraph or an evaluation. The file holds
the n complex symbols (network 'perturbation', tensor 'perturbation.p', real
float32 [2n]: real parts, then imaginary parts) and a PerturbationConfig
saying what it attacks (M, n, mode), at which PSR, how and on what it was
crafted. A perturbation whose energy does not match its PSR is refused on
saving and on loading (a hand-edited or corrupt file).

core.checkpoint is imported inside the functions: kinds.py imports this
module to register the kind, and checkpoint imports kinds.
"""
import dataclasses
import math
import os

import numpy as np
import torch
from torch import nn

from . import validate
from .attacks import PSR_RANGE_DB, budget

# universal: crafted white-box on the receiver it attacks (Sadeghi & Larsson).
# black-box: crafted on a substitute model and transferred to another receiver.
# random: one Gaussian draw scaled to the PSR (a fixed jamming waveform, the control).
METHODS = ("universal", "black-box", "random")

# How far the stored energy may be from the PSR in the config (float32 storage
# is exact to about 1e-6 dB; anything beyond this tolerance was edited).
PSR_TOLERANCE_DB = 1e-3


@dataclasses.dataclass(frozen=True)
class PerturbationConfig:
    """What a perturbation file holds and how it was made.

    M, n : ints, the link it attacks (messages, channel uses per message)
    mode : 'complex', or 'real' (the perturbation has zero imaginary parts)
    psr_db : float in [-60, 20], the PSR it was crafted at (its energy is
        exactly budget(psr_db, n))
    method : one of METHODS
    shift_invariant : bool, crafted to work at any cyclic shift (an attacker
        not aligned with the message boundaries)
    crafted_on : str, what it was crafted on (e.g. a checkpoint's file name);
        '' when unknown
    ebn0_db : float, Eb/N0 in dB of the attacker's received data
    """

    M: int
    n: int
    mode: str = "complex"
    psr_db: float = -6.0
    method: str = "universal"
    shift_invariant: bool = False
    crafted_on: str = ""
    ebn0_db: float = 8.0

    def __post_init__(self):
        validate.sizes(self.M, self.n)
        validate.mode(self.mode)
        object.__setattr__(self, "psr_db", validate.real("psr_db", self.psr_db, *PSR_RANGE_DB))
        validate.choice("method", self.method, METHODS)
        object.__setattr__(self, "shift_invariant", validate.boolean("shift_invariant", self.shift_invariant))
        if not isinstance(self.crafted_on, str):
            raise ValueError(f"crafted_on must be a string, got {self.crafted_on!r}")
        object.__setattr__(self, "ebn0_db", validate.db("ebn0_db", self.ebn0_db))

    def to_dict(self):
        """JSON-ready fields (without kind and format_version, which the checkpoint adds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build and validate from to_dict()'s output; ValueError names what is wrong."""
        return cls(**validate.config_dict(cls, d, [f.name for f in dataclasses.fields(cls)]))


class UniversalPerturbation(nn.Module):
    """One perturbation of n complex symbols, the network of a 'perturbation' file.

    Buffer p: real float32 [2n] (real parts, then imaginary parts), zero
    until set().
    forward(y): y complex [B, n] -> y + p, complex [B, n].
    """

    def __init__(self, config: PerturbationConfig):
        super().__init__()
        self.config = config
        self.register_buffer("p", torch.zeros(2 * config.n, dtype=torch.float32))

    def complex(self):
        """The perturbation as complex64 [n]."""
        n = self.config.n
        return torch.complex(self.p[:n], self.p[n:])

    def set(self, p_complex):
        """Store p_complex (complex [n]; NumPy or torch). Real mode needs zero imaginary parts."""
        p = torch.as_tensor(np.asarray(p_complex) if not isinstance(p_complex, torch.Tensor) else p_complex)
        p = p.detach().to(torch.complex64)
        if p.shape != (self.config.n,):
            raise ValueError(f"p must have shape [{self.config.n}], got {list(p.shape)}")
        if not bool(torch.isfinite(torch.view_as_real(p)).all()):
            raise ValueError("p holds NaN or infinite values")
        if self.config.mode == "real" and bool((p.imag != 0).any()):
            raise ValueError("p must have zero imaginary parts in real mode")
        with torch.no_grad():
            self.p.copy_(torch.cat([p.real, p.imag]))
        return self

    def forward(self, y):
        return y + self.complex().to(y.dtype)


def energy_mismatch(config, p_complex):
    """Why p does not fit config (energy vs psr_db, imaginary parts in real mode), or None."""
    p = np.asarray(p_complex, dtype=np.complex128)
    energy = float(np.sum(np.abs(p) ** 2))
    if config.mode == "real" and np.any(p.imag != 0):
        return "a real-mode perturbation has non-zero imaginary parts"
    stored = 10.0 * math.log10(energy / config.n) if energy > 0 else -math.inf
    if not abs(stored - config.psr_db) <= PSR_TOLERANCE_DB:
        return (f"its energy {energy:.6g} is a PSR of {stored:.4f} dB, but psr_db is {config.psr_db:g} "
                f"(energy {budget(config.psr_db, config.n):.6g}); the file is corrupt or was edited")
    return None


def save_perturbation(path, config, p_complex, metadata=None):
    """Atomically write a 'perturbation' checkpoint.

    config : PerturbationConfig
    p_complex : complex [n] (NumPy or torch) with energy budget(config.psr_db, n)
    metadata : {str: anything str() can write}, stored beside the config
    Returns the path. ValueError if p does not fit the config.
    """
    from . import checkpoint
    if not isinstance(config, PerturbationConfig):
        raise TypeError(f"config must be a PerturbationConfig, got {type(config).__name__}")
    module = UniversalPerturbation(config).set(p_complex)
    reason = energy_mismatch(config, module.complex().numpy())
    if reason:
        raise ValueError(f"p does not fit the config: {reason}")
    return checkpoint.save(path, "perturbation", config, {"perturbation": module}, metadata)


def load_perturbation(path, expect=None):
    """(PerturbationConfig, p complex64 NumPy [n]) from a 'perturbation' file.

    expect : {config field: value} the caller requires, e.g. {'M': 16, 'n': 7}.
    Every failure is a checkpoint.CheckpointError naming the file: another
    kind, a mismatch with expect, a bad tensor, or an energy that does not
    match psr_db.
    """
    from . import checkpoint
    c = checkpoint.load(path, kinds_allowed=("perturbation",), expect=expect)
    p = c.networks["perturbation"].complex().detach().numpy().astype(np.complex64)
    reason = energy_mismatch(c.config, p)
    if reason:
        raise checkpoint.CheckpointError(os.fspath(path), reason)
    return c.config, p
