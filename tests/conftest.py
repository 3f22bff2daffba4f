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
    training.train_model_aware(enc, dec, channels.AWGN((2.0, 8.0), 16, 7, "complex"),
                               steps=1500, batch_size=1000, lr=1e-2, seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    checkpoint.save(path, cfg, enc, dec)
    return Link(cfg, enc, dec, str(path))


@pytest.fixture(scope="session")
def other_link(tmp_path_factory):
    """Untrained M=16, n=7 complex link with other weights (a hot-swap target)."""
    cfg = config.LinkConfig(M=16, n=7, mode="complex")
    enc, dec = models.build(cfg, seed=2)
    enc.eval(), dec.eval()
    path = tmp_path_factory.mktemp("ckpt") / "other.safetensors"
    checkpoint.save(path, cfg, enc, dec)
    return Link(cfg, enc, dec, str(path))


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


def wait_until(predicate, timeout=20.0, interval=0.01):
    """Poll predicate() until true; False if timeout seconds pass first."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def poll():
    return wait_until


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
        checkpoint.save(d / f"{name}.safetensors", cfg, enc, dec)
    out["other_M"] = (d / "other_M.safetensors", "M=4")
    out["other_n"] = (d / "other_n.safetensors", "n=4")
    cfg = tiny_link.config
    checkpoint.save(d / "decoder_only.safetensors", cfg, None, tiny_link.decoder)
    checkpoint.save(d / "encoder_only.safetensors", cfg, tiny_link.encoder, None)
    out["decoder_only"] = (d / "decoder_only.safetensors", "missing tensors")
    out["encoder_only"] = (d / "encoder_only.safetensors", "missing tensors")
    return {k: (str(p), rx) for k, (p, rx) in out.items()}
