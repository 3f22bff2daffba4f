"""Shared fixtures: a tiny trained M=16, n=7 complex link and its checkpoint."""
import collections

import pytest
import torch

from gnuradio.e2e.core import channels, checkpoint, config, models, training

# Two cores shared with a GNU Radio scheduler: torch's default of one thread
# per core oversubscribes them and training runs ~20x slower.
torch.set_num_threads(1)

Link = collections.namedtuple("Link", "config encoder decoder path")


@pytest.fixture(scope="session")
def tiny_link(tmp_path_factory):
    """Trained M=16, n=7 complex link (BLER about 3e-2 at Eb/N0 = 3 dB), saved."""
    cfg = config.LinkConfig(M=16, n=7, mode="complex")
    enc, dec = models.build(cfg, seed=1)
    training.train_model_aware(enc, dec, channels.AWGN(), (2.0, 8.0), steps=1500, batch_size=1000, lr=1e-2, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    checkpoint.save_link(path, cfg, enc, dec)
    return Link(cfg, enc, dec, str(path))


@pytest.fixture(scope="session")
def other_link(tmp_path_factory):
    """Untrained M=16, n=7 complex link with other weights (a hot-swap target)."""
    cfg = config.LinkConfig(M=16, n=7, mode="complex")
    enc, dec = models.build(cfg, seed=2)
    enc.eval(), dec.eval()
    path = tmp_path_factory.mktemp("ckpt") / "other.safetensors"
    checkpoint.save_link(path, cfg, enc, dec)
    return Link(cfg, enc, dec, str(path))


Precoder = collections.namedtuple("Precoder", "config encoder decoder path")


def _train_precoder(tmp_path_factory, architecture, rounds):
    from gnuradio.e2e.core import mpa, precoder, subchannels
    cfg = precoder.PrecoderConfig(M=16, N=8, L=16, architecture=architecture)
    torch.manual_seed(1)  # network initialisation (the builders take no seed)
    enc, dec = precoder.build_encoder(cfg), precoder.build_decoder(cfg)
    mpa.train(enc, dec, subchannels.SubchannelChannel(8, "train"), 8.0, rounds=rounds, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / f"precoder_{architecture}.safetensors"
    precoder.save_precoder(path, cfg, enc, dec)
    return Precoder(cfg, enc.eval(), dec.eval(), str(path))


@pytest.fixture(scope="session")
def tiny_precoder(tmp_path_factory):
    """Trained M=16, N=8, L=16 attention precoder ('train' family, 8 dB), saved (about 4 s).

    At 8 dB on the 'train' family its BLER is about 0.09 at alpha0 and 0.05 adapted.
    """
    return _train_precoder(tmp_path_factory, "mpa", 60)


@pytest.fixture(scope="session")
def tiny_plain_precoder(tmp_path_factory):
    """The same link without the attention layer ('plain' architecture), saved (under 1 s)."""
    return _train_precoder(tmp_path_factory, "plain", 60)


class RecordingLogger:
    """Stands in for a block's self.logger: records (level, text), then forwards."""

    def __init__(self, real):
        self.real, self.records = real, []

    def _log(self, level, text):
        self.records.append((level, text))
        getattr(self.real, level)(text)

    def debug(self, text):
        self._log("debug", text)

    def info(self, text):
        self._log("info", text)

    def warn(self, text):
        self._log("warn", text)

    def error(self, text):
        self._log("error", text)

    def of(self, level):
        return [t for lv, t in self.records if lv == level]


@pytest.fixture
def record_logs():
    """record_logs(block) -> RecordingLogger now used by that Python block."""
    def attach(block):
        rec = RecordingLogger(block.logger)
        # An instance attribute shadows the gateway's logger for Python code.
        block.logger = rec
        return rec
    return attach


def u8vector(data):
    """bytes -> PMT u8vector (the weights-port payload)."""
    import numpy as np
    import pmt
    return pmt.init_u8vector(len(data), np.frombuffer(data, dtype=np.uint8).tolist())


@pytest.fixture
def as_u8vector():
    return u8vector


@pytest.fixture(scope="session")
def bad_checkpoints(tmp_path_factory, tiny_link):
    """Files an M=16, n=7 block must refuse: name -> (path, regex the error must match)."""
    d = tmp_path_factory.mktemp("bad")
    good = open(tiny_link.path, "rb").read()
    out = {"missing": (d / "does_not_exist.safetensors", "no such file"),
           "directory": (d, "is a directory")}
    (d / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    out["truncated"] = (d / "truncated.safetensors", "truncated")
    (d / "text.safetensors").write_bytes(b"hello, this is not a checkpoint\n" * 4)
    out["not_safetensors"] = (d / "text.safetensors", "not a safetensors file")
    # Writing a pickle is safe; the test only checks that it is never loaded.
    torch.save({"encoder.net.0.weight": torch.zeros(16, 16)}, d / "pickle.pt")
    out["pickle"] = (d / "pickle.pt", "pickled")
    for name, cfg in (("other_M", config.LinkConfig(M=4, n=7)), ("other_n", config.LinkConfig(M=16, n=4))):
        enc, dec = models.build(cfg, seed=0)
        checkpoint.save_link(d / f"{name}.safetensors", cfg, enc, dec)
    out["other_M"] = (d / "other_M.safetensors", "M=4")
    out["other_n"] = (d / "other_n.safetensors", "n=4")
    cfg = tiny_link.config
    checkpoint.save(d / "receiver.safetensors", "receiver", cfg, {"decoder": tiny_link.decoder})
    checkpoint.save(d / "transmitter.safetensors", "transmitter", cfg, {"encoder": tiny_link.encoder})
    out["receiver_file"] = (d / "receiver.safetensors", "is a receiver checkpoint; expected autoencoder or transmitter")
    out["transmitter_file"] = (d / "transmitter.safetensors",
                               "is a transmitter checkpoint; expected autoencoder or receiver")
    # A link whose encoder is sound but whose decoder is damaged, and the reverse: every
    # block refuses the file, whatever part it needs.
    from safetensors.torch import load as st_load, save as st_save
    for broken in ("encoder", "decoder"):
        tensors = st_load(good)
        name = f"{broken}.net.0.weight"
        tensors[name][0, 0] = float("nan")
        meta = checkpoint.read_metadata(tiny_link.path)
        (d / f"damaged_{broken}.safetensors").write_bytes(st_save(tensors, metadata=meta))
        out[f"damaged_{broken}"] = (d / f"damaged_{broken}.safetensors", f"{name} holds NaN")
    return {k: (str(p), rx) for k, (p, rx) in out.items()}


def pmt_dict_types(msg):
    """{key: 'long' | 'double' | 'bool' | 'symbol' | other} of a PMT dict's values."""
    import pmt
    items = pmt.dict_items(msg)
    out = {}
    for i in range(pmt.length(items)):
        kv = pmt.nth(i, items)
        v = pmt.cdr(kv)
        out[pmt.symbol_to_string(pmt.car(kv))] = next(
            (name for name in ("bool", "integer", "real", "symbol") if getattr(pmt, "is_" + name)(v)), "other"
        ).replace("integer", "long").replace("real", "double")
    return out
