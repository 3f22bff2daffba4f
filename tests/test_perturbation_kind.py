"""The 'perturbation' checkpoint kind: PerturbationConfig, save/load, refusals."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gnuradio.e2e.core import attacks, checkpoint, kinds, perturbation
from gnuradio.e2e.core.checkpoint import CheckpointError
from gnuradio.e2e.core.perturbation import PerturbationConfig


def _p(psr_db=-6.0, n=7, seed=0, real=False):
    p = torch.randn(n, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))
    if real:
        p = torch.complex(p.real, torch.zeros_like(p.real))
    return attacks.scale_to_psr(p, psr_db)


def _config(**changes):
    fields = dict(M=16, n=7, mode="complex", psr_db=-6.0, method="universal", shift_invariant=True,
                  crafted_on="tiny.safetensors", ebn0_db=8.0)
    fields.update(changes)
    return PerturbationConfig(**fields)


def test_the_kind_is_registered():
    kind = kinds.get("perturbation")
    assert kind.config_class is PerturbationConfig
    assert set(kind.networks) == {"perturbation"}


def test_round_trip(tmp_path):
    cfg, p = _config(), _p()
    path = perturbation.save_perturbation(tmp_path / "u.safetensors", cfg, p, metadata={"note": "crafted"})
    got_cfg, got_p = perturbation.load_perturbation(path, expect={"M": 16, "n": 7})
    assert got_cfg == cfg
    assert got_p.dtype == np.complex64 and got_p.shape == (7,)
    assert np.array_equal(got_p, p.numpy())
    assert checkpoint.load(path).metadata["note"] == "crafted"
    assert PerturbationConfig.from_dict(cfg.to_dict()) == cfg


def test_real_mode_round_trip_and_refusal(tmp_path):
    cfg = _config(mode="real", psr_db=-10.0, method="black-box", shift_invariant=False, crafted_on="")
    p = _p(-10.0, real=True)
    path = perturbation.save_perturbation(tmp_path / "r.safetensors", cfg, p)
    got_cfg, got_p = perturbation.load_perturbation(path)
    assert got_cfg == cfg and np.all(got_p.imag == 0)
    with pytest.raises(ValueError, match="imaginary"):
        perturbation.save_perturbation(tmp_path / "bad.safetensors", cfg, _p(-10.0))


def test_wrong_n_is_refused_through_expect(tmp_path):
    path = perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p())
    with pytest.raises(CheckpointError, match=r"u\.safetensors.*n=7.*n=4"):
        perturbation.load_perturbation(path, expect={"n": 4})


def test_other_kinds_are_refused_both_ways(tmp_path, other_link):
    with pytest.raises(CheckpointError, match="is a autoencoder checkpoint; expected perturbation"):
        perturbation.load_perturbation(other_link.path)
    path = perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p())
    with pytest.raises(CheckpointError, match="is a perturbation checkpoint; expected autoencoder"):
        checkpoint.load_link(path)
    with pytest.raises(CheckpointError, match="holds no decoder|is a perturbation checkpoint"):
        checkpoint.load_network(path, "decoder")


@pytest.mark.parametrize("bad", [25.0, -70.0, float("nan"), "low"])
def test_bad_psr_db_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="psr_db"):
        _config(psr_db=bad)


@pytest.mark.parametrize("field, bad", [("M", 1), ("n", 0), ("mode", "iq"), ("method", "magic"),
                                        ("shift_invariant", "yes"), ("crafted_on", 3), ("ebn0_db", "8")])
def test_other_bad_fields_are_refused_naming_them(field, bad):
    with pytest.raises(ValueError, match=field):
        _config(**{field: bad})


def test_from_dict_refuses_unknown_and_missing_keys():
    d = _config().to_dict()
    with pytest.raises(ValueError, match="unknown keys.*'target'"):
        PerturbationConfig.from_dict({**d, "target": 1})
    del d["psr_db"]
    with pytest.raises(ValueError, match="lacks.*psr_db"):
        PerturbationConfig.from_dict(d)


def test_save_refuses_a_perturbation_of_another_energy(tmp_path):
    with pytest.raises(ValueError, match="PSR of -3.0.*psr_db is -6"):
        perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p(-3.0))
    with pytest.raises(ValueError, match=r"shape \[7\]"):
        perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p(n=5))
    assert not (tmp_path / "u.safetensors").exists()


def _rewrite(path, out, scale=1.0, config_changes=None):
    """A hand-edited copy of a perturbation file: tensor scaled, config fields changed."""
    data = open(path, "rb").read()
    tensors = st_load(data)
    tensors["perturbation.p"] = tensors["perturbation.p"] * scale
    meta = checkpoint.read_metadata(path)
    cfg = json.loads(meta[checkpoint.CONFIG_KEY])
    cfg.update(config_changes or {})
    meta[checkpoint.CONFIG_KEY] = json.dumps(cfg)
    out.write_bytes(st_save(tensors, metadata=meta))
    return out


def test_load_refuses_an_energy_that_does_not_match_psr_db(tmp_path):
    path = perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p())
    louder = _rewrite(path, tmp_path / "louder.safetensors", scale=1.01)  # +0.086 dB
    with pytest.raises(CheckpointError, match=r"louder\.safetensors.*psr_db is -6.*corrupt or was edited"):
        perturbation.load_perturbation(louder)
    relabelled = _rewrite(path, tmp_path / "relabelled.safetensors", config_changes={"psr_db": -3.0})
    with pytest.raises(CheckpointError, match="psr_db is -3"):
        perturbation.load_perturbation(relabelled)
    zero = _rewrite(path, tmp_path / "zero.safetensors", scale=0.0)
    with pytest.raises(CheckpointError, match="zero.safetensors"):
        perturbation.load_perturbation(zero)


def test_load_refuses_a_config_with_a_bad_psr_db_naming_it(tmp_path):
    path = perturbation.save_perturbation(tmp_path / "u.safetensors", _config(), _p())
    bad = _rewrite(path, tmp_path / "bad.safetensors", config_changes={"psr_db": 99.0})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*invalid config.*psr_db"):
        perturbation.load_perturbation(bad)
    with pytest.raises(CheckpointError, match="no such file"):
        perturbation.load_perturbation(tmp_path / "missing.safetensors")


def test_universal_perturbation_module():
    cfg = _config()
    module = perturbation.UniversalPerturbation(cfg)
    assert module.p.shape == (14,) and module.p.dtype == torch.float32
    p = _p()
    module.set(p.numpy())
    assert torch.equal(module.complex(), p)
    assert torch.equal(module.p[:7], p.real) and torch.equal(module.p[7:], p.imag)
    y = torch.zeros(3, 7, dtype=torch.complex64)
    assert torch.equal(module(y), p.expand(3, 7))
    with pytest.raises(ValueError, match="NaN"):
        module.set(torch.full((7,), float("nan"), dtype=torch.complex64))
