"""core.checkpoint: safetensors round trip, every refusal path, atomic save, no unpickling."""
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from gnuradio.e2e.core import checkpoint, config, kinds, models
from gnuradio.e2e.core.checkpoint import CheckpointError


def parse_link_json(text):
    """The LinkConfig of an autoencoder config JSON (kinds.parse_config_json)."""
    kind, cfg = kinds.parse_config_json(text)
    assert kind.name == "autoencoder"
    return cfg


torch.set_num_threads(1)
CFG = config.LinkConfig(M=8, n=3, decoder_hidden=[16, 16])


@pytest.fixture(scope="module")
def link():
    enc, dec = models.build(CFG, seed=4)
    enc.eval(), dec.eval()
    return enc, dec


@pytest.fixture
def saved(tmp_path, link):
    path = tmp_path / "link.safetensors"
    checkpoint.save_link(path, CFG, *link, metadata={"seed": 4, "note": "unit test"})
    return str(path)


def tensors_of(link):
    enc, dec = link
    t = {"encoder." + k: v.clone() for k, v in enc.state_dict().items()}
    t.update({"decoder." + k: v.clone() for k, v in dec.state_dict().items()})
    return t


def craft(tensors, config_json=None, extra_meta=None):
    """safetensors bytes with the given tensors and (unless None) a gr-e2e config."""
    meta = dict(extra_meta or {})
    if config_json is not None:
        meta[checkpoint.CONFIG_KEY] = config_json
    return st_save(tensors, metadata=meta)


def refused(tmp_path, data, *reason, name="bad.safetensors", **kw):
    """Write data to a file, load it, return the CheckpointError after checking the message."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path, **kw)
    msg = str(e.value)
    assert msg.startswith(str(path) + ": "), msg
    for r in reason:
        assert r in msg, msg
    assert e.value.source == str(path)
    return e.value


# --- round trip ------------------------------------------------------------------------

def test_round_trip(saved, link):
    cfg, enc, dec = checkpoint.load_link(saved)
    assert cfg == CFG
    for mine, theirs in zip(link, (enc, dec)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
        assert not theirs.training
    np.testing.assert_array_equal(enc.symbol_table(), link[0].symbol_table())
    meta = checkpoint.read_metadata(saved)
    assert meta["seed"] == "4" and meta["note"] == "unit test"
    assert parse_link_json(meta[checkpoint.CONFIG_KEY]) == CFG
    # no temporary file left behind
    assert os.listdir(os.path.dirname(saved)) == ["link.safetensors"]


def networks(link):
    return {"encoder": link[0], "decoder": link[1]}


def test_bytes_round_trip_and_kinds(link):
    c = checkpoint.from_bytes(checkpoint.to_bytes("autoencoder", CFG, networks(link)))
    assert (c.kind, c.config, sorted(c.networks)) == ("autoencoder", CFG, ["decoder", "encoder"])
    assert c.source == "weights message" and c.metadata == {}
    tx = checkpoint.from_bytes(checkpoint.to_bytes("transmitter", CFG, {"encoder": link[0]}, {"steps": 3}))
    assert (tx.kind, sorted(tx.networks), tx.metadata) == ("transmitter", ["encoder"], {"steps": "3"})
    np.testing.assert_array_equal(tx.network("encoder").symbol_table(), link[0].symbol_table())
    with pytest.raises(CheckpointError, match=r"^weights message: is a transmitter checkpoint, which holds "
                                              r"\['encoder'\] but no decoder"):
        tx.network("decoder")
    rx = checkpoint.from_bytes(checkpoint.to_bytes("receiver", CFG, {"decoder": link[1]}))
    assert sorted(rx.networks) == ["decoder"]


@pytest.mark.parametrize("kind, nets", [("autoencoder", ("encoder",)), ("transmitter", ("encoder", "decoder")),
                                        ("receiver", ("encoder",)), ("gan", ("encoder",))])
def test_to_bytes_refuses_networks_that_do_not_fit_the_kind(link, kind, nets):
    with pytest.raises(ValueError, match=kind):
        checkpoint.to_bytes(kind, CFG, {name: dict(encoder=link[0], decoder=link[1])[name] for name in nets})


def test_kind_registry():
    assert {"autoencoder", "transmitter", "receiver", "adversary", "perturbation", "channel_model",
            "precoder"} <= set(kinds.names())
    assert kinds.holding("encoder") == ["autoencoder", "transmitter"]
    assert kinds.holding("decoder") == ["autoencoder", "receiver"]
    with pytest.raises(ValueError, match=r"model kind is 'beamformer'; this gr-e2e knows \['adversary', 'autoencoder'"):
        kinds.get("beamformer")
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.Kind("receiver", config.LinkConfig, {"decoder": models.Decoder}))
    with pytest.raises(ValueError, match="at least one network"):
        kinds.register(kinds.Kind("empty", config.LinkConfig, {}))
    with pytest.raises(TypeError, match="needs a LinkConfig"):
        kinds.config_json("receiver", {"M": 8})


def test_load_network_takes_any_kind_holding_it(tmp_path, link):
    paths = {"link": checkpoint.save_link(tmp_path / "l.safetensors", CFG, *link),
             "tx": checkpoint.save(tmp_path / "t.safetensors", "transmitter", CFG, {"encoder": link[0]}),
             "rx": checkpoint.save(tmp_path / "r.safetensors", "receiver", CFG, {"decoder": link[1]})}
    for name in ("link", "tx"):
        cfg, enc = checkpoint.load_network(paths[name], "encoder", expect={"M": 8})
        np.testing.assert_array_equal(enc.symbol_table(), link[0].symbol_table())
    for name in ("link", "rx"):
        assert checkpoint.load_network(paths[name], "decoder")[0] == CFG
    with pytest.raises(CheckpointError, match=r"is a receiver checkpoint; expected autoencoder or transmitter"):
        checkpoint.load_network(paths["rx"], "encoder")
    with pytest.raises(CheckpointError, match=r"is a transmitter checkpoint; expected autoencoder or receiver"):
        checkpoint.load_network(open(paths["tx"], "rb").read(), "decoder")
    with pytest.raises(CheckpointError, match=r"is a receiver checkpoint; expected autoencoder$"):
        checkpoint.load_link(paths["rx"])
    with pytest.raises(ValueError, match=r"^checkpoint must be a path"):
        checkpoint.load_network(None, "encoder")


def test_a_damaged_network_is_refused_even_when_the_caller_needs_the_other(tmp_path, link):
    """Every tensor of a file is checked, whichever network the reader uses."""
    t = tensors_of(link)
    t["decoder.net.0.weight"][0, 0] = float("nan")
    data = craft(t, kinds.config_json("autoencoder", CFG))
    path = tmp_path / "half_broken.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"decoder.net.0.weight holds NaN"):
        checkpoint.load_network(path, "encoder")
    t = tensors_of(link)
    t["decoder.net.9.weight"] = torch.zeros(2)  # a stray tensor in a transmitter file
    tx_only = {k: v for k, v in t.items() if k.startswith("encoder.") or k == "decoder.net.9.weight"}
    path.write_bytes(craft(tx_only, kinds.config_json("transmitter", CFG)))
    with pytest.raises(CheckpointError, match=r"unexpected tensors of \['decoder'\]: a transmitter checkpoint "
                                              r"holds only \['encoder'\]"):
        checkpoint.load_network(path, "encoder")


def test_merge_pairs_a_transmitter_with_a_receiver(tmp_path, link):
    tx_cfg = config.LinkConfig(M=8, n=3, encoder_hidden=[32], normalization="average")
    rx_cfg = config.LinkConfig(M=8, n=3, decoder_hidden=[16, 16], decoder_activation="elu")
    enc, _ = models.build(tx_cfg, seed=1)
    _, dec = models.build(rx_cfg, seed=2)
    tx = checkpoint.save(tmp_path / "tx.safetensors", "transmitter", tx_cfg, {"encoder": enc}, {"transmitter_steps": 7})
    rx = checkpoint.save(tmp_path / "rx.safetensors", "receiver", rx_cfg, {"decoder": dec}, {"receiver_steps": 9})
    out, _, _ = checkpoint.merge_files(tx, rx, tmp_path / "link.safetensors")
    cfg, e, d = checkpoint.load_link(out)
    assert (cfg.encoder_hidden, cfg.normalization) == ((32,), "average")  # encoder fields from the transmitter
    assert (cfg.decoder_hidden, cfg.decoder_activation) == ((16, 16), "elu")  # decoder fields from the receiver
    np.testing.assert_array_equal(e.symbol_table(), enc.symbol_table())
    y = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.equal(d(y), dec(y))
    meta = checkpoint.read_metadata(out)
    assert meta["transmitter.transmitter_steps"] == "7" and meta["receiver.receiver_steps"] == "9"
    assert json.loads(meta["merged_from"])["receiver"] == os.path.abspath(rx)
    # Two links merge too; links of another size or mode do not.
    checkpoint.merge(checkpoint.load(out), checkpoint.load(out))
    other = checkpoint.save(tmp_path / "o.safetensors", "receiver", config.LinkConfig(M=8, n=4),
                            {"decoder": models.build(config.LinkConfig(M=8, n=4))[1]})
    with pytest.raises(CheckpointError, match=r"the transmitter has n=3 but the receiver has n=4"):
        checkpoint.merge_files(tx, other, tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()
    with pytest.raises(CheckpointError, match="holds .* but no encoder"):
        checkpoint.merge(checkpoint.load(rx), checkpoint.load(rx))


def test_save_creates_folder_and_overwrites(tmp_path, link):
    path = tmp_path / "a" / "b" / "c.safetensors"
    checkpoint.save_link(path, CFG, *link)
    other = models.build(CFG, seed=5)
    checkpoint.save_link(path, CFG, *other)
    _, enc, _ = checkpoint.load_link(path)
    assert torch.equal(enc.net[0].weight, other[0].net[0].weight)
    assert os.listdir(path.parent) == ["c.safetensors"]


@pytest.mark.parametrize("pad", range(0, 256, 8))
def test_any_header_length_loads(link, pad):
    """Header lengths whose low byte is 0x80 (= pickle's first byte) must load too.

    safetensors pads its header to a multiple of 8 bytes, so 1 header length in
    32 has the low byte 0x80; metadata of 0, 8, ..., 248 extra characters walks
    through all 32 low bytes.
    """
    data = checkpoint.to_bytes("autoencoder", CFG, networks(link), metadata={"pad": "x" * pad})
    assert checkpoint.from_bytes(data).config == CFG


def test_header_low_byte_0x80_case_is_exercised(link):
    lows = {checkpoint.to_bytes("autoencoder", CFG, networks(link), metadata={"pad": "x" * p})[0]
            for p in range(0, 256, 8)}
    assert len(lows) == 32 and 0x80 in lows


# --- file-level refusals --------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match="no such file") as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory") as e:
        checkpoint.load(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_empty_path():
    with pytest.raises(CheckpointError, match="no checkpoint file given"):
        checkpoint.load("")


def test_empty_file(tmp_path):
    refused(tmp_path, b"", "0 bytes", "too short")


def test_truncated(tmp_path, saved):
    data = open(saved, "rb").read()
    (header_len,) = struct.unpack("<Q", data[:8])
    assert len(data) > 8 + header_len + 100
    for cut in (1, 4, 7):  # inside the 8-byte length
        refused(tmp_path, data[:cut], f"is {cut} bytes", "too short")
    for cut in (8, 9, 8 + header_len // 2, 8 + header_len - 1):  # inside the header
        refused(tmp_path, data[:cut], "truncated", f"file has {cut}")
    for cut in (8 + header_len, 8 + header_len + 1, (8 + header_len + len(data)) // 2, len(data) - 1):
        refused(tmp_path, data[:cut], "truncated", f"file has {cut}")  # inside the tensor data


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(tmp_path, seed):
    data = np.random.default_rng(seed).bytes(1000)
    err = refused(tmp_path, data)
    assert err.reason


def test_header_not_json(tmp_path):
    refused(tmp_path, struct.pack("<Q", 16) + b"\xff" * 16 + b"\0" * 8, "not a safetensors file", "not JSON")
    refused(tmp_path, struct.pack("<Q", 8) + b"[1, 2]  ", "not a JSON object")


@pytest.mark.parametrize("offsets", [5, "x", ["a", "b"], [0], None, {"a": 1}])
def test_corrupt_data_offsets(tmp_path, offsets):
    """A header with malformed data_offsets is refused as corrupt, never a TypeError."""
    h = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": offsets}}).encode()
    h += b" " * (-len(h) % 8)
    refused(tmp_path, struct.pack("<Q", len(h)) + h + b"\0" * 4, "corrupt")


def test_safetensors_without_gr_e2e_metadata(tmp_path, link):
    refused(tmp_path, craft(tensors_of(link)), "no 'gr_e2e_config' metadata", "not a gr-e2e checkpoint")
    refused(tmp_path, craft(tensors_of(link), extra_meta={"format": "pt"}), "not a gr-e2e checkpoint")


def test_invalid_config_json(tmp_path, link):
    refused(tmp_path, craft(tensors_of(link), "{M: 8"), "invalid config", "not valid JSON")
    d = json.loads(kinds.config_json("autoencoder", CFG))
    d["M"] = 0
    refused(tmp_path, craft(tensors_of(link), json.dumps(d)), "invalid config", "M must")


def test_wrong_format_version(tmp_path, link):
    d = json.loads(kinds.config_json("autoencoder", CFG))
    d["format_version"] = 99
    refused(tmp_path, craft(tensors_of(link), json.dumps(d)), "invalid config", "format_version is 99")


def test_wrong_kind(tmp_path, link):
    d = json.loads(kinds.config_json("autoencoder", CFG))
    d["kind"] = "ra-gan"
    refused(tmp_path, craft(tensors_of(link), json.dumps(d)), "kind is 'ra-gan'")


def test_missing_tensor(tmp_path, link):
    t = tensors_of(link)
    del t["decoder.net.2.bias"]
    refused(tmp_path, craft(t, kinds.config_json("autoencoder", CFG)), "missing tensors ['decoder.net.2.bias']")


def test_extra_tensor(tmp_path, link):
    t = tensors_of(link)
    t["encoder.net.9.weight"] = torch.zeros(2, 2)
    refused(tmp_path, craft(t, kinds.config_json("autoencoder", CFG)), "unexpected tensors ['encoder.net.9.weight']")


def test_wrong_shape(tmp_path, link):
    t = tensors_of(link)
    t["encoder.net.0.weight"] = torch.zeros(8, 9)
    refused(tmp_path, craft(t, kinds.config_json("autoencoder", CFG)), "encoder.net.0.weight", "shape [8, 9]", "needs [8, 8]")


def test_config_disagrees_with_weights(tmp_path, link):
    # weights of an M=8 link under a config that says M=16
    cfg16 = config.LinkConfig(M=16, n=3, decoder_hidden=[16, 16])
    refused(tmp_path, craft(tensors_of(link), kinds.config_json("autoencoder", cfg16)), "shape")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int32])
def test_wrong_dtype(tmp_path, link, dtype):
    t = tensors_of(link)
    t["decoder.net.0.weight"] = t["decoder.net.0.weight"].to(dtype)
    refused(tmp_path, craft(t, kinds.config_json("autoencoder", CFG)), "decoder.net.0.weight", "dtype", str(dtype))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights(tmp_path, link, bad):
    t = tensors_of(link)
    t["encoder.net.2.bias"][1] = bad
    refused(tmp_path, craft(t, kinds.config_json("autoencoder", CFG)), "encoder.net.2.bias", "NaN or infinite")


class _Trap:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_torch_save_pickles_refused(tmp_path, link):
    buf = io.BytesIO()
    torch.save({"encoder": link[0].state_dict()}, buf)
    refused(tmp_path, buf.getvalue(), "pickled", "never unpickles", name="zip.pt")
    buf = io.BytesIO()
    torch.save(link[0].state_dict(), buf, _use_new_zipfile_serialization=False)
    refused(tmp_path, buf.getvalue(), "pickled", name="legacy.pt")


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickle_refused_and_never_loaded(tmp_path, protocol):
    trap = tmp_path / "unpickled"
    data = pickle.dumps({"x": _Trap(str(trap)), "pad": "y" * 64}, protocol=protocol)
    err = refused(tmp_path, data)
    if protocol >= 2:
        assert "pickled" in str(err)
    assert not trap.exists()


def test_expect_mismatch_names_field(tmp_path, saved):
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(saved, expect={"M": 32})
    msg = str(e.value)
    assert msg.startswith(saved) and "M=8" in msg and "32" in msg
    with pytest.raises(CheckpointError, match=r"has n=3 but n=7 was expected"):
        checkpoint.load(saved, expect={"M": 8, "n": 7})
    with pytest.raises(CheckpointError, match=r"mode='complex' but mode='real'"):
        checkpoint.load(saved, expect={"mode": "real"})
    assert checkpoint.load(saved, expect={"M": 8, "n": 3}).config == CFG


@pytest.mark.parametrize("data", [b"", b"garbage bytes, not a checkpoint", b"\x80\x04junk", bytes(64)])
def test_from_bytes_garbage_names_weights_message(data):
    with pytest.raises(CheckpointError) as e:
        checkpoint.from_bytes(data)
    assert str(e.value).startswith("weights message: ")
    assert e.value.source == "weights message"


def test_checkpoint_error_is_value_error():
    assert issubclass(CheckpointError, ValueError)


# --- atomic save -------------------------------------------------------------------------

def _assert_still_old(path, old_enc):
    cfg, enc, _ = checkpoint.load_link(path)
    assert cfg == CFG
    assert torch.equal(enc.net[0].weight, old_enc.net[0].weight)
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)], "temporary file left behind"


def test_crash_at_rename_keeps_previous(saved, link, monkeypatch):
    new = models.build(CFG, seed=99)

    def boom(*a, **k):
        raise OSError(5, "simulated crash at rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated crash"):
        checkpoint.save_link(saved, CFG, *new)
    monkeypatch.undo()
    _assert_still_old(saved, link[0])


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_crash_during_write_keeps_previous(saved, link, monkeypatch, exc):
    new = models.build(CFG, seed=99)
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise exc

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(type(exc)):
        checkpoint.save_link(saved, CFG, *new)
    monkeypatch.undo()
    _assert_still_old(saved, link[0])


def test_crash_at_fsync_keeps_previous(saved, link, monkeypatch):
    def boom(fd):
        raise OSError(5, "simulated I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        checkpoint.save_link(saved, CFG, *models.build(CFG, seed=98))
    monkeypatch.undo()
    _assert_still_old(saved, link[0])
