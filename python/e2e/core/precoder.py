"""The 'precoder' checkpoint kind: a link over N subchannels whose receiver knows the channel.

A precoder file holds a transmitter (network 'mpa_encoder': core.mpa's
MpaEncoder, message -> L features -> the attention layer -> N complex
symbols; or a PlainEncoder, the same link without the layer) and its
receiver (network 'csi_decoder': core.mpa's CsiDecoder, which reads the
received symbols and the channel gains). What mpa_precoder and csi_decoder
play, what `gr_e2e train --method mpa-tandem` writes.

The networks are not called 'encoder'/'decoder': those names belong to the
link kinds nn_encoder and nn_decoder load, and these networks do not fit
those blocks (they need channel state).

core.checkpoint is imported inside the functions: kinds.py imports this
module to register the kind, and checkpoint imports kinds.
"""
import dataclasses

from . import mpa, validate
from .subchannels import FAMILIES

ARCHITECTURES = ("mpa", "plain")


@dataclasses.dataclass(frozen=True)
class PrecoderConfig:
    """Architecture of a link over N subchannels with channel state at both ends.

    M: messages; N: subchannels (complex channel uses per message).
    architecture: 'mpa' (L features through the attention layer) or 'plain'
        (N symbols straight from the network: the autoencoder without the layer).
    L: features per message (architecture 'mpa'; ignored by 'plain').
    hidden: widths of the transmitter's hidden layers (None: (M,)).
    decoder_hidden: widths of the receiver's hidden layers (None: (4M,)).
    beta, steps, damping: the MPA iteration (inverse temperature, steps,
        damping; see core.mpa.iterate).
    train_family: the subchannel family trained on (core.subchannels.FAMILIES).
    ebn0_db: the training Eb/N0 in dB.
    """

    M: int
    N: int
    architecture: str = "mpa"
    L: int = 16
    hidden: tuple = None
    decoder_hidden: tuple = None
    beta: float = mpa.DEFAULT_BETA
    steps: int = mpa.DEFAULT_STEPS
    damping: float = mpa.DEFAULT_DAMPING
    train_family: str = "train"
    ebn0_db: float = 8.0

    def __post_init__(self):
        validate.integer("M", self.M, 2)
        validate.integer("N", self.N, 1)
        validate.choice("architecture", self.architecture, ARCHITECTURES)
        validate.integer("L", self.L, 1)
        object.__setattr__(self, "hidden", (self.M,) if self.hidden is None
                           else validate.widths("hidden", self.hidden))
        object.__setattr__(self, "decoder_hidden", (4 * self.M,) if self.decoder_hidden is None
                           else validate.widths("decoder_hidden", self.decoder_hidden))
        object.__setattr__(self, "beta", validate.real("beta", self.beta, 0))
        validate.integer("steps", self.steps, 0)
        object.__setattr__(self, "damping", validate.real("damping", self.damping, 0, 1, low_open=True))
        validate.choice("train_family", self.train_family, FAMILIES)
        object.__setattr__(self, "ebn0_db", validate.db("ebn0_db", self.ebn0_db))

    @property
    def adapts(self):
        """True when the transmitter has the attention layer (re-adapts from channel state)."""
        return self.architecture == "mpa"

    def to_dict(self):
        """JSON-ready fields (without kind and format_version, which the checkpoint adds)."""
        d = dataclasses.asdict(self)
        d["hidden"], d["decoder_hidden"] = list(self.hidden), list(self.decoder_hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        """Build and validate from to_dict()'s output; ValueError names what is wrong."""
        return cls(**validate.config_dict(cls, d, ("M", "N")))


def build_encoder(config):
    """A fresh transmitter for config: MpaEncoder ('mpa') or PlainEncoder ('plain')."""
    if config.adapts:
        return mpa.MpaEncoder(config.M, config.N, config.L, hidden=config.hidden, beta=config.beta,
                              steps=config.steps, damping=config.damping)
    return mpa.PlainEncoder(config.M, config.N, hidden=config.hidden)


def build_decoder(config):
    """A fresh receiver for config: CsiDecoder."""
    return mpa.CsiDecoder(config.M, config.N, hidden=config.decoder_hidden)


def save_precoder(path, config, encoder, decoder, metadata=None):
    """Atomically write a 'precoder' checkpoint; returns the path.

    metadata: {str: anything str() can write}, stored beside the config.
    """
    from . import checkpoint  # here, not above: kinds imports this module to register the kind
    return checkpoint.save(path, "precoder", config, {"mpa_encoder": encoder, "csi_decoder": decoder}, metadata)


def load_precoder(path, expect=None):
    """(config, encoder, decoder), both in eval mode, of a 'precoder' checkpoint file.

    expect: {config field: value} the caller requires, e.g. {'M': 16, 'N': 8}.
    A file of another kind, a damaged file or a mismatch raises
    checkpoint.CheckpointError naming the file.
    """
    from . import checkpoint
    c = checkpoint.load(path, kinds_allowed=("precoder",), expect=expect)
    return c.config, c.networks["mpa_encoder"], c.networks["csi_decoder"]


# Held-out channels x messages per channel that pick the best restart (about 10^4 messages:
# at BLER 0.03, some 300 errors, so restarts 15% apart are told apart).
VALIDATION_CHANNELS, VALIDATION_BLOCK = 500, 20


def fit_precoder(config, *, steps, stage1_steps=5, batch_size=500, lr=1e-2, seed=0, restarts=1,
                 progress_bar=False):
    """Train `restarts` links of this config over SubchannelChannel(N, config.train_family), keep the best.

    'mpa': tandem training (core.mpa.train, Algorithm 1); 'plain': the same
    loop without stage 2. steps counts stage-1 gradient steps in all
    (rounds = steps // stage1_steps, at least 1). Restart r starts from
    network weights and draws of its own (seeds derived from (seed, INIT, r));
    the kept one makes the fewest block errors on held-out channels of the
    training family at config.ebn0_db (stream (seed, VALIDATION, MPA)), with
    its own adaptation ('mpa': the MPA iteration per channel). Tandem
    training is sensitive to its start: final BLERs of single runs differ by
    up to 1.5x on unseen families.
    Returns (encoder, decoder, history: mean loss per round of the kept run,
    restarts: [{seed, errors, blocks, chosen}] per restart).
    """
    import torch
    from . import prng
    from .subchannels import SubchannelChannel
    validate.integer("steps", steps, 1)
    validate.integer("stage1_steps", stage1_steps, 1)
    validate.integer("seed", seed, 0)
    validate.integer("restarts", restarts, 1)
    channel = SubchannelChannel(config.N, config.train_family)
    best, report = None, []
    for r in range(restarts):
        run_seed = prng.derived_seed(seed, prng.INIT, r)
        torch.manual_seed(run_seed)
        encoder, decoder = build_encoder(config), build_decoder(config)
        history = mpa.train(encoder, decoder, channel, config.ebn0_db, rounds=max(1, steps // stage1_steps),
                            stage1_steps=stage1_steps, batch_size=batch_size, lr=lr, seed=run_seed,
                            progress_bar=progress_bar)
        errors, blocks, _ = mpa.block_errors(encoder, decoder, channel, config.ebn0_db,
                                             channels=VALIDATION_CHANNELS, block=VALIDATION_BLOCK,
                                             adaptation="mpa" if config.adapts else "none", seed=seed,
                                             purpose=prng.VALIDATION)
        report.append({"seed": run_seed, "errors": errors, "blocks": blocks, "chosen": False})
        if best is None or errors < best[0]:
            best = (errors, r, encoder, decoder, history)
    report[best[1]]["chosen"] = True
    return best[2], best[3], best[4], report
