"""Checkpoint kinds: what a gr-e2e file holds and how it is rebuilt.

A kind names a config class and the networks a file of that kind holds
(each network's tensors are stored under '<network>.'). Every file is
validated whole against its kind, whatever part a reader uses.

Built-in kinds:

  autoencoder   LinkConfig; networks encoder and decoder (a whole link)
  transmitter   LinkConfig; network encoder (what a transmitter trains)
  receiver      LinkConfig; network decoder (what a receiver trains)
  adversary     adversary.AdversaryConfig; network generator (a perturbation
                generator: a generative attack, or a defense's adversary)
  perturbation  perturbation.PerturbationConfig; network perturbation (one
                universal adversarial perturbation, what adversarial_source plays)
  channel_model channel_gan.ChannelModelConfig; networks generator and
                discriminator (a learned channel, what learned_channel plays)
  precoder      precoder.PrecoderConfig; networks mpa_encoder and csi_decoder
                (a link over N subchannels: the MPA precoder's transmitter, or
                the same link without the layer, and a receiver that knows h)

A config class provides to_dict() -> JSON-ready dict and from_dict(d),
which validates and raises ValueError naming the field. The JSON stored in a
checkpoint is that dict plus 'kind' and 'format_version'.
"""
import dataclasses
import json
import typing

from . import models
from .config import LinkConfig

# Version 1 still: fields added later (receiver_frontend, frontend_hidden) are
# optional with defaults, so a version-1 file written before them loads as it
# did, and a link without a front end serialises exactly as before, so older
# readers still load it. Kinds other than 'autoencoder' are new, and older
# readers refuse them by name, as they should.
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Kind:
    """name; config_class; networks: network name -> builder(config) -> torch.nn.Module."""

    name: str
    config_class: type
    networks: typing.Mapping
    description: str = ""

    def build(self, config):
        """Fresh networks for this config: {network name: module}."""
        return {net: make(config) for net, make in self.networks.items()}


_KINDS = {}


def register(kind):
    """Add a kind; a name can be registered once."""
    if kind.name in _KINDS:
        raise ValueError(f"checkpoint kind {kind.name!r} is already registered")
    if not kind.networks:
        raise ValueError(f"checkpoint kind {kind.name!r} must hold at least one network")
    _KINDS[kind.name] = kind
    return kind


def get(name):
    """The Kind called name; ValueError naming the known kinds otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"model kind is {name!r}; this gr-e2e knows {sorted(_KINDS)}") from None


def names():
    return sorted(_KINDS)


def holding(network):
    """Names of the kinds whose files hold `network` (e.g. 'encoder')."""
    return sorted(k.name for k in _KINDS.values() if network in k.networks)


def config_json(kind_name, config):
    """The JSON stored in a checkpoint's metadata for this kind and config."""
    kind = get(kind_name)
    if not isinstance(config, kind.config_class):
        raise TypeError(f"a {kind_name} checkpoint needs a {kind.config_class.__name__}, "
                        f"got {type(config).__name__}")
    d = config.to_dict()
    d["format_version"] = FORMAT_VERSION
    d["kind"] = kind_name
    return json.dumps(d, sort_keys=True)


def parse_config_json(text):
    """(Kind, config) from a checkpoint's config JSON; ValueError with the reason."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ValueError("config is not a JSON object")
    version = d.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"format_version is {version!r}, this gr-e2e reads {FORMAT_VERSION}")
    kind = get(d.pop("kind", None))
    try:
        return kind, kind.config_class.from_dict(d)
    except TypeError as e:
        raise ValueError(f"config does not fit a {kind.name}: {e}") from None


register(Kind("autoencoder", LinkConfig, {"encoder": models.Encoder, "decoder": models.Decoder},
              "a whole link: transmitter and receiver networks"))
register(Kind("transmitter", LinkConfig, {"encoder": models.Encoder},
              "the transmitter network of a link"))
register(Kind("receiver", LinkConfig, {"decoder": models.Decoder},
              "the receiver network of a link"))
from .adversary import AdversaryConfig, PerturbationGenerator  # noqa: E402 (after the built-in kinds)
register(Kind("adversary", AdversaryConfig, {"generator": PerturbationGenerator},
              "a generator that perturbs transmitted signals (attack or defense adversary)"))
from .perturbation import PerturbationConfig, UniversalPerturbation  # noqa: E402 (after the built-in kinds)
register(Kind("perturbation", PerturbationConfig, {"perturbation": UniversalPerturbation},
              "a universal adversarial perturbation"))
from .channel_gan import ChannelDiscriminator, ChannelGenerator, ChannelModelConfig  # noqa: E402
register(Kind("channel_model", ChannelModelConfig,
              {"generator": ChannelGenerator, "discriminator": ChannelDiscriminator},
              "a learned channel: conditional GAN generator and discriminator of p(y | x)"))
from .precoder import PrecoderConfig, build_decoder, build_encoder  # noqa: E402
register(Kind("precoder", PrecoderConfig, {"mpa_encoder": build_encoder, "csi_decoder": build_decoder},
              "a link over N subchannels with channel state at both ends: the MPA precoder's "
              "transmitter (or the same link without the layer) and its receiver"))
