"""LinkConfig: everything needed to rebuild an encoder/decoder pair.

It is stored as JSON in every checkpoint's metadata (with the checkpoint's
kind, see core.kinds), so a checkpoint alone says what network it holds.
"""
import dataclasses

from . import validate

NORMALIZATIONS = ("energy", "average")
ACTIVATIONS = ("relu", "elu", "tanh", "linear")
RECEIVER_FRONTENDS = ("none", "transformer")
DECODER_ARCHITECTURES = ("mlp", "cnn")
DEFAULT_FRONTEND_HIDDEN = (32,)

# Which fields shape which network: merging a transmitter file with a
# receiver file takes each network's fields from the file that trained it;
# the shared fields must agree.
SHARED_FIELDS = ("M", "n", "mode")
ROLE_FIELDS = {
    "encoder": ("normalization", "encoder_hidden", "encoder_activation"),
    "decoder": ("decoder_hidden", "decoder_activation", "receiver_frontend", "frontend_hidden",
                "decoder_architecture"),
}


@dataclasses.dataclass(frozen=True)
class LinkConfig:
    """Architecture of an autoencoder link.

    M: messages (k = log2 M bits). n: channel uses per message.
    mode: 'complex' (n complex symbols) or 'real' (n real symbols, imaginary
    parts zero). normalization: 'energy' (every message has energy n) or
    'average' (mean energy over the M messages, uniform prior, is n).
    encoder_hidden / decoder_hidden: widths of the hidden dense layers;
    None means the paper default (one layer of width M).
    receiver_frontend: 'none', or 'transformer' (complex mode only): a radio
    transformer network in the receiver that estimates a one-tap channel h
    from the received block and divides it out before the decoder MLP, for
    Rayleigh block fading (see models.TransformerFrontend).
    frontend_hidden: hidden widths of the transformer's estimation network;
    None means DEFAULT_FRONTEND_HIDDEN. Only meaningful with the transformer:
    with receiver_frontend='none' it must stay None.
    decoder_architecture: 'mlp' (dense layers of widths decoder_hidden) or
    'cnn' (Conv1d layers over the n symbols with decoder_hidden channels,
    then a dense layer to the M logits; see models.Decoder).
    """

    M: int
    n: int
    mode: str = "complex"
    normalization: str = "energy"
    encoder_hidden: tuple = None
    encoder_activation: str = "elu"
    decoder_hidden: tuple = None
    decoder_activation: str = "relu"
    receiver_frontend: str = "none"
    frontend_hidden: tuple = None
    decoder_architecture: str = "mlp"

    def __post_init__(self):
        validate.sizes(self.M, self.n)
        validate.mode(self.mode)
        validate.choice("normalization", self.normalization, NORMALIZATIONS)
        for name in ("encoder_activation", "decoder_activation"):
            validate.choice(name, getattr(self, name), ACTIVATIONS)
        for name in ("encoder_hidden", "decoder_hidden"):
            value = getattr(self, name)
            object.__setattr__(self, name, (self.M,) if value is None else validate.widths(name, value))
        validate.choice("receiver_frontend", self.receiver_frontend, RECEIVER_FRONTENDS)
        if self.receiver_frontend == "transformer" and self.mode != "complex":
            raise ValueError("receiver_frontend must be 'none' in real mode: the 'transformer' front end "
                             f"undoes a complex channel gain (mode={self.mode!r})")
        if self.receiver_frontend == "none":
            if self.frontend_hidden is not None:
                raise ValueError("frontend_hidden must be None when receiver_frontend is 'none', "
                                 f"got {self.frontend_hidden!r}")
        else:
            value = DEFAULT_FRONTEND_HIDDEN if self.frontend_hidden is None else self.frontend_hidden
            object.__setattr__(self, "frontend_hidden", validate.widths("frontend_hidden", value))
        validate.choice("decoder_architecture", self.decoder_architecture, DECODER_ARCHITECTURES)

    @property
    def real_outputs(self):
        """Real numbers the encoder network produces per message."""
        return self.n if self.mode == "real" else 2 * self.n

    def to_dict(self):
        """JSON-ready fields (without kind and format_version, which the checkpoint adds)."""
        d = dataclasses.asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        d["decoder_hidden"] = list(self.decoder_hidden)
        if self.receiver_frontend == "none":
            # Left out, so the JSON of a plain link is what it was before these
            # fields existed and older gr-e2e versions still read it.
            del d["receiver_frontend"], d["frontend_hidden"]
        else:
            d["frontend_hidden"] = list(self.frontend_hidden)
        if self.decoder_architecture == "mlp":
            del d["decoder_architecture"]  # left out for the same reason
        return d

    @classmethod
    def from_dict(cls, d):
        """Build and validate from to_dict()'s output; ValueError names what is wrong."""
        return cls(**validate.config_dict(cls, d, ("M", "n")))

    def role_fields(self, role):
        """{field: value} of the fields that shape `role` ('encoder' or 'decoder')."""
        return {f: getattr(self, f) for f in ROLE_FIELDS[role]}


def merge_configs(tx, rx):
    """The link config of tx's encoder with rx's decoder; ValueError if they cannot pair.

    tx, rx: LinkConfig. M, n and mode must agree; every encoder field comes
    from tx and every decoder field from rx.
    """
    for f in SHARED_FIELDS:
        if getattr(tx, f) != getattr(rx, f):
            raise ValueError(f"the transmitter has {f}={getattr(tx, f)!r} but the receiver has "
                             f"{f}={getattr(rx, f)!r}: they do not form a link")
    return dataclasses.replace(tx, **rx.role_fields("decoder"))
