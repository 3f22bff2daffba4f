"""LinkConfig: everything needed to rebuild an encoder/decoder pair.

It is stored as JSON in every checkpoint's metadata, so a checkpoint alone
says what network it holds.
"""
import dataclasses
import json

from . import snr

# Version 1 still: fields added later (receiver_frontend, frontend_hidden) are
# optional with defaults, so a version-1 file written before them loads as it
# did, and a link without a front end serialises exactly as before (to_json
# leaves the front-end fields out), so older readers still load it.
FORMAT_VERSION = 1
NORMALIZATIONS = ("energy", "average")
ACTIVATIONS = ("relu", "elu", "tanh", "linear")
RECEIVER_FRONTENDS = ("none", "transformer")
DEFAULT_FRONTEND_HIDDEN = (32,)


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

    def __post_init__(self):
        snr.validate_M_n(self.M, self.n)
        snr.validate_mode(self.mode)
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        for name in ("encoder_activation", "decoder_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {ACTIVATIONS}, got {getattr(self, name)!r}")
        for name in ("encoder_hidden", "decoder_hidden"):
            widths = getattr(self, name)
            widths = (self.M,) if widths is None else tuple(widths)
            if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
                raise ValueError(f"{name} must be a list of positive integers, got {list(widths)!r}")
            object.__setattr__(self, name, widths)
        if self.receiver_frontend not in RECEIVER_FRONTENDS:
            raise ValueError(f"receiver_frontend must be one of {RECEIVER_FRONTENDS}, "
                             f"got {self.receiver_frontend!r}")
        if self.receiver_frontend == "transformer" and self.mode != "complex":
            raise ValueError("receiver_frontend must be 'none' in real mode: the 'transformer' front end "
                             f"undoes a complex channel gain (mode={self.mode!r})")
        if self.receiver_frontend == "none":
            if self.frontend_hidden is not None:
                raise ValueError("frontend_hidden must be None when receiver_frontend is 'none', "
                                 f"got {self.frontend_hidden!r}")
        else:
            widths = DEFAULT_FRONTEND_HIDDEN if self.frontend_hidden is None else self.frontend_hidden
            if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
                raise ValueError(f"frontend_hidden must be a list of positive integers, got {widths!r}")
            widths = tuple(widths)
            if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
                raise ValueError(f"frontend_hidden must be a list of positive integers, got {list(widths)!r}")
            object.__setattr__(self, "frontend_hidden", widths)

    @property
    def real_outputs(self):
        """Real numbers the encoder network produces per message."""
        return self.n if self.mode == "real" else 2 * self.n

    def to_json(self):
        d = dataclasses.asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        d["decoder_hidden"] = list(self.decoder_hidden)
        if self.receiver_frontend == "none":
            # Left out, so the JSON of a plain link is what it was before these
            # fields existed and older gr-e2e versions still read it.
            del d["receiver_frontend"], d["frontend_hidden"]
        else:
            d["frontend_hidden"] = list(self.frontend_hidden)
        d["format_version"] = FORMAT_VERSION
        d["kind"] = "autoencoder"
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Parse and validate; raises ValueError with the reason."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config is not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ValueError("config is not a JSON object")
        version = d.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version is {version!r}, this gr-e2e reads {FORMAT_VERSION}")
        kind = d.pop("kind", None)
        if kind != "autoencoder":
            raise ValueError(f"model kind is {kind!r}, expected 'autoencoder'")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"config has unknown keys {sorted(unknown)}")
        missing = {"M", "n"} - set(d)
        if missing:
            raise ValueError(f"config lacks {sorted(missing)}")
        return cls(**d)
