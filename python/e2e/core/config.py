"""LinkConfig: everything needed to rebuild an encoder/decoder pair.

It is stored as JSON in every checkpoint's metadata, so a checkpoint alone
says what network it holds.
"""
import dataclasses
import json

from . import snr

FORMAT_VERSION = 1
NORMALIZATIONS = ("energy", "average")
ACTIVATIONS = ("relu", "elu", "tanh", "linear")


@dataclasses.dataclass(frozen=True)
class LinkConfig:
    """Architecture of an autoencoder link.

    M: messages (k = log2 M bits). n: channel uses per message.
    mode: 'complex' (n complex symbols) or 'real' (n real symbols, imaginary
    parts zero). normalization: 'energy' (every message has energy n) or
    'average' (mean energy over the M messages, uniform prior, is n).
    encoder_hidden / decoder_hidden: widths of the hidden dense layers;
    None means the paper default (one layer of width M).
    """

    M: int
    n: int
    mode: str = "complex"
    normalization: str = "energy"
    encoder_hidden: tuple = None
    encoder_activation: str = "elu"
    decoder_hidden: tuple = None
    decoder_activation: str = "relu"

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

    @property
    def real_outputs(self):
        """Real numbers the encoder network produces per message."""
        return self.n if self.mode == "real" else 2 * self.n

    def to_json(self):
        d = dataclasses.asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        d["decoder_hidden"] = list(self.decoder_hidden)
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
