"""Perturbation generators and the 'adversary' checkpoint kind.

AdversaryConfig's fields, defaults, JSON and errors; PerturbationGenerator's
shapes and its budget (every row exactly on it, real mode with a zero
imaginary half); the checkpoint round trip, files of other kinds refused
both ways; the generator as an attacks.Perturbed perturbation.
"""
import json

import pytest
import torch

from gnuradio.e2e.core import adversary, attacks, channels, checkpoint, kinds
from gnuradio.e2e.core.adversary import AdversaryConfig, PerturbationGenerator
from gnuradio.e2e.core.checkpoint import CheckpointError

M, N = 16, 7
CONFIGS = [AdversaryConfig(M=M, n=N, mode=mode, architecture=arch, psr_db=psr)
           for mode in ("complex", "real") for arch in ("mlp", "cnn") for psr in (-6.0, 3.0)]


def built(config, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PerturbationGenerator(config).eval()


# --- AdversaryConfig --------------------------------------------------------------

def test_defaults():
    c = AdversaryConfig(M=M, n=N)
    assert (c.mode, c.architecture, c.psr_db) == ("complex", "mlp", adversary.DEFAULT_PSR_DB)
    assert c.hidden == adversary.DEFAULT_HIDDEN["mlp"]
    assert AdversaryConfig(M=M, n=N, architecture="cnn").hidden == adversary.DEFAULT_HIDDEN["cnn"]
    assert AdversaryConfig(M=M, n=N, hidden=[8, 4]).hidden == (8, 4)
    assert c.budget == pytest.approx(N * 10 ** (-0.6))
    hash(c)


@pytest.mark.parametrize("kwargs, name", [
    (dict(M=1), "M"), (dict(n=0), "n"), (dict(mode="iq"), "mode"),
    (dict(architecture="rnn"), "architecture"), (dict(hidden=[0]), "hidden"), (dict(hidden=16), "hidden"),
    (dict(psr_db="high"), "psr_db"), (dict(psr_db=float("nan")), "psr_db"), (dict(psr_db=40.0), "psr_db"),
])
def test_errors_name_the_field(kwargs, name):
    args = dict(M=M, n=N)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        AdversaryConfig(**args)


@pytest.mark.parametrize("config", CONFIGS[:4])
def test_json_round_trip(config):
    text = kinds.config_json("adversary", config)
    d = json.loads(text)
    assert d["kind"] == "adversary" and d["hidden"] == list(config.hidden)
    kind, back = kinds.parse_config_json(text)
    assert kind.name == "adversary" and back == config


def test_from_dict_refuses_unknown_and_missing_keys():
    d = AdversaryConfig(M=M, n=N).to_dict()
    with pytest.raises(ValueError, match="unknown keys.*'width'"):
        AdversaryConfig.from_dict({**d, "width": 3})
    del d["n"]
    with pytest.raises(ValueError, match=r"lacks \['n'\]"):
        AdversaryConfig.from_dict(d)


# --- PerturbationGenerator ----------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.mode}-{c.architecture}-{c.psr_db:g}dB")
def test_every_row_has_exactly_the_budget(config):
    g = built(config)
    x = torch.randn(64, 2 * N, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        p = g(x)
    assert p.shape == (64, 2 * N) and p.dtype == torch.float32
    energy = p.double().pow(2).sum(dim=1)
    torch.testing.assert_close(energy, torch.full_like(energy, attacks.budget(config.psr_db, N)),
                               rtol=1e-5, atol=0)
    assert attacks.psr_db_of(p[:, :N] + 1j * p[:, N:]) == pytest.approx(config.psr_db, abs=1e-4)
    if config.mode == "real":
        assert torch.all(p[:, N:] == 0)
    else:
        assert torch.any(p[:, N:] != 0)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_layers(architecture):
    g = built(AdversaryConfig(M=M, n=N, architecture=architecture, hidden=[12, 6]))
    if architecture == "mlp":
        lin = [m for m in g.net if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in lin] == [(14, 12), (12, 6), (6, 14)]
        assert sum(isinstance(m, torch.nn.ELU) for m in g.net) == 2
    else:
        conv = [m for m in g.net if isinstance(m, torch.nn.Conv1d)]
        assert [(m.in_channels, m.out_channels) for m in conv] == [(2, 12), (12, 6)]
        assert g.net[-1].in_features == 6 * N and g.net[-1].out_features == 2 * N


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_real_mode_reads_only_real_parts(architecture):
    g = built(AdversaryConfig(M=M, n=N, mode="real", architecture=architecture))
    x = torch.randn(8, 2 * N)
    x2 = x.clone()
    x2[:, N:] = torch.randn(8, N)
    torch.testing.assert_close(g(x), g(x2), rtol=0, atol=0)


def test_build_generator_is_reproducible():
    config = AdversaryConfig(M=M, n=N)
    state = torch.random.get_rng_state()
    a, b = adversary.build_generator(config, seed=5), adversary.build_generator(config, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = adversary.build_generator(config, seed=6)
    assert not torch.equal(a.net[0].weight, c.net[0].weight)


def test_gradient_reaches_the_generator():
    g = built(AdversaryConfig(M=M, n=N))
    p = g(torch.randn(32, 2 * N))
    p[:, 0].sum().backward()  # not the energy (constant): a direction
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in g.parameters())
    assert any(q.grad.abs().sum() > 0 for q in g.parameters())


def test_as_a_perturbed_channel():
    config = AdversaryConfig(M=M, n=N)
    g = built(config)
    channel = attacks.Perturbed(channels.AWGN(), adversary.GeneratorPerturbation(g))
    x = torch.randn(10, N, dtype=torch.complex64)
    y = channel(x, 0.0)
    torch.testing.assert_close(y - x, g(torch.cat([x.real, x.imag], 1)).detach()[:, :N]
                               + 1j * g(torch.cat([x.real, x.imag], 1)).detach()[:, N:])
    assert not channel.preserves_real
    real = adversary.GeneratorPerturbation(built(AdversaryConfig(M=M, n=N, mode="real")))
    assert attacks.Perturbed(channels.AWGN(), real).preserves_real


# --- the checkpoint kind -------------------------------------------------------------

def test_kind_registered():
    k = kinds.get("adversary")
    assert k.config_class is AdversaryConfig and set(k.networks) == {"generator"}
    assert "adversary" in kinds.holding("generator")


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[3], CONFIGS[5]],
                         ids=lambda c: f"{c.mode}-{c.architecture}")
def test_round_trip(tmp_path, config):
    g = built(config, seed=3)
    path = adversary.save_adversary(tmp_path / "adv.safetensors", config, g, metadata={"steps": 12})
    back_config, back = adversary.load_adversary(path, expect={"M": M, "n": N})
    assert back_config == config and not back.training
    x = torch.randn(16, 2 * N)
    torch.testing.assert_close(back(x), g(x), rtol=0, atol=0)
    assert checkpoint.load(path).metadata["steps"] == "12"


def test_other_kinds_refused_both_ways(tmp_path, tiny_link):
    with pytest.raises(CheckpointError, match="tiny.safetensors: is a autoencoder checkpoint; expected adversary"):
        adversary.load_adversary(tiny_link.path)
    path = adversary.save_adversary(tmp_path / "adv.safetensors", AdversaryConfig(M=M, n=N),
                                    built(AdversaryConfig(M=M, n=N)))
    with pytest.raises(CheckpointError, match="adv.safetensors: is a adversary checkpoint; expected autoencoder"):
        checkpoint.load_link(path)
    with pytest.raises(CheckpointError, match="adv.safetensors: is a adversary checkpoint; expected autoencoder or rec"):
        checkpoint.load_network(path, "decoder")
    with pytest.raises(CheckpointError, match=r"adv.safetensors: has n=7 but n=4 was expected"):
        adversary.load_adversary(path, expect={"n": 4})
    with pytest.raises(CheckpointError, match="missing.safetensors: no such file"):
        adversary.load_adversary(tmp_path / "missing.safetensors")


def test_damaged_generator_refused(tmp_path):
    from safetensors.torch import load as st_load, save as st_save
    config = AdversaryConfig(M=M, n=N)
    path = adversary.save_adversary(tmp_path / "adv.safetensors", config, built(config))
    data = open(path, "rb").read()
    tensors = st_load(data)
    tensors["generator.net.0.weight"][0, 0] = float("inf")
    (tmp_path / "bad.safetensors").write_bytes(st_save(tensors, metadata=checkpoint.read_metadata(path)))
    with pytest.raises(CheckpointError, match="bad.safetensors: tensor generator.net.0.weight holds NaN"):
        adversary.load_adversary(tmp_path / "bad.safetensors")
