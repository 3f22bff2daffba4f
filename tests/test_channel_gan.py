"""Learned channel models: config, generator and discriminator, LearnedChannel, the 'channel_model'
checkpoint kind, the L2 regulariser and the two training loops (short runs)."""
import json
import math

import pytest
import torch

from gnuradio.e2e.core import channel_dataset as cd
from gnuradio.e2e.core import channel_gan as cg
from gnuradio.e2e.core import channel_gan_training as cgt
from gnuradio.e2e.core import channels, checkpoint, config, kinds, models
from gnuradio.e2e.core.channel_gan import ChannelModelConfig
from gnuradio.e2e.core.checkpoint import CheckpointError

N = 7
SMALL = dict(n=N, hidden=(16,), disc_hidden=(16,))


def _x(rows=64, seed=0):
    return torch.randn(rows, N, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


# --- ChannelModelConfig ------------------------------------------------------------

def test_config_defaults():
    c = ChannelModelConfig(n=N)
    assert (c.mode, c.generator, c.discriminator, c.M, c.ebn0_db) == ("complex", "residual", "pair", 16, None)
    assert c.hidden == cg.DEFAULT_HIDDEN and c.disc_hidden == cg.DEFAULT_DISC_HIDDEN
    assert c.noise_dim == 2 * N and ChannelModelConfig(n=N, mode="real").noise_dim == N
    assert ChannelModelConfig(n=N, hidden=[8, 4]).hidden == (8, 4)
    hash(c)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(M=1), "M"), (dict(mode="iq"), "mode"), (dict(generator="deep"), "generator"),
    (dict(discriminator="x"), "discriminator"), (dict(hidden=[0]), "hidden"), (dict(disc_hidden=8), "disc_hidden"),
    (dict(noise_dim=0), "noise_dim"), (dict(ebn0_db=float("inf")), "ebn0_db"),
])
def test_config_errors_name_the_field(kwargs, name):
    args = dict(n=N)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        ChannelModelConfig(**args)


def test_config_json_round_trip_and_unknown_keys():
    c = ChannelModelConfig(n=N, generator="plain", discriminator="output", ebn0_db=3.0, noise_dim=4)
    text = kinds.config_json("channel_model", c)
    assert json.loads(text)["kind"] == "channel_model"
    kind, back = kinds.parse_config_json(text)
    assert kind.name == "channel_model" and back == c
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        ChannelModelConfig.from_dict({**c.to_dict(), "depth": 3})
    with pytest.raises(ValueError, match=r"lacks \['n'\]"):
        ChannelModelConfig.from_dict({"M": 16})


# --- networks ----------------------------------------------------------------------

def test_residual_generator_starts_as_identity_plus_small_noise():
    G, _ = cg.build_channel_model(ChannelModelConfig(n=N), seed=0)
    x = models.complex_to_real(_x(256))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        y1, y2 = G(x, G.noise(256, gen)), G(x, G.noise(256, gen))
    assert y1.shape == x.shape and y1.dtype == torch.float32
    ratio = float((y1 - x).norm() / x.norm())
    assert 0 < ratio < 0.05, ratio
    assert not torch.equal(y1, y2)  # the output depends on z: noise, however small
    # A plain generator starts anywhere: nothing ties it to x.
    P, _ = cg.build_channel_model(ChannelModelConfig(n=N, generator="plain"), seed=0)
    with torch.no_grad():
        assert float((P(x, P.noise(256, gen)) - x).norm() / x.norm()) > 0.5


def test_networks_are_xavier_initialised():
    G, D = cg.build_channel_model(ChannelModelConfig(n=N, generator="plain"), seed=0)
    for net in (G.net, D.net):
        for layer in (m for m in net if isinstance(m, torch.nn.Linear)):
            bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            w = layer.weight.detach()
            assert float(w.abs().max()) <= bound
            # Xavier-uniform draws reach near the bound; PyTorch's default stays within 1/sqrt(fan_in),
            # well below it on the 128 x 128 layers, and its biases are not zero.
            assert float(w.abs().max()) > 0.9 * bound
            assert torch.count_nonzero(layer.bias) == 0


def test_builds_are_reproducible_from_the_seed():
    c = ChannelModelConfig(**SMALL)
    a, b = cg.build_channel_model(c, seed=4), cg.build_channel_model(c, seed=4)
    for m1, m2 in zip(a, b):
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(p1, p2)


def test_discriminator_pair_sees_x_output_does_not():
    x, y = models.complex_to_real(_x(32, 1)), models.complex_to_real(_x(32, 2))
    other_x = models.complex_to_real(_x(32, 3))
    for kind, sees_x in (("pair", True), ("output", False)):
        _, D = cg.build_channel_model(ChannelModelConfig(n=N, discriminator=kind), seed=0)
        with torch.no_grad():
            logits = D(x, y)
            assert logits.shape == (32,)
            assert (not torch.equal(logits, D(other_x, y))) == sees_x


def test_real_mode_reads_and_writes_real_parts_only():
    G, D = cg.build_channel_model(ChannelModelConfig(n=N, mode="real"), seed=0)
    x = models.complex_to_real(_x(16).real.to(torch.complex64))
    with torch.no_grad():
        y = G(x, G.noise(16))
        assert torch.count_nonzero(y[:, N:]) == 0
        junk = x.clone()
        junk[:, N:] = 5.0
        torch.testing.assert_close(D(x, y), D(junk, y))


# --- LearnedChannel -----------------------------------------------------------------

def test_learned_channel_is_reproducible_and_ignores_n0():
    G, _ = cg.build_channel_model(ChannelModelConfig(n=N, generator="plain"), seed=0)
    ch = cg.LearnedChannel(G)
    x = _x(8)
    y1 = ch(x, 0.1, torch.Generator().manual_seed(9))
    y2 = ch(x, 10.0, torch.Generator().manual_seed(9))
    torch.testing.assert_close(y1, y2)
    assert not torch.equal(y1, ch(x, 0.1, torch.Generator().manual_seed(10)))
    torch.testing.assert_close(ch.sample(x, torch.Generator().manual_seed(9)), y1)
    assert y1.dtype == torch.complex64 and ch(x.to(torch.complex128), 0.0).dtype == torch.complex128
    assert not ch.preserves_real
    with pytest.raises(ValueError, match=r"x must be complex \[batch, 7\]"):
        ch(_x(4)[:, :5], 0.0)
    with pytest.raises(TypeError, match="needs a ChannelGenerator"):
        cg.LearnedChannel(torch.nn.Linear(2, 2))


def test_learned_channel_is_differentiable_in_x():
    G, _ = cg.build_channel_model(ChannelModelConfig(n=N), seed=0)
    x = _x(64).requires_grad_(True)
    y = cg.LearnedChannel(G)(x, None, torch.Generator().manual_seed(0))
    y.real.sum().backward()
    grad = torch.view_as_real(x.grad)
    assert torch.isfinite(grad).all()
    # Residual at initialisation: dy/dx is the identity plus a small term.
    torch.testing.assert_close(grad[..., 0], torch.ones(64, N), atol=0.1, rtol=0)
    assert float(grad[..., 1].abs().max()) < 0.1


def test_learned_channel_works_in_the_evaluator_and_trainers(tiny_link):
    from gnuradio.e2e.core import evaluation, learned
    G, _ = cg.build_channel_model(ChannelModelConfig(n=N), seed=0)
    res = evaluation.evaluate_bler(learned.LearnedLink(tiny_link.encoder, tiny_link.decoder), [3.0],
                                   channel=cg.LearnedChannel(G), min_errors=10, max_blocks=2000, batch_size=2000)
    # An untrained residual model is nearly noiseless: the link decodes almost everything.
    assert res[0]["bler"] < 0.01


# --- checkpoint kind ----------------------------------------------------------------

def test_channel_model_checkpoint_round_trip(tmp_path):
    c = ChannelModelConfig(n=N, ebn0_db=3.0, **{k: v for k, v in SMALL.items() if k != "n"})
    G, D = cg.build_channel_model(c, seed=1)
    path = cg.save_channel_model(tmp_path / "cm.safetensors", c, G, D, metadata={"steps": 12})
    c2, G2, D2 = cg.load_channel_model(path, expect={"n": N})
    assert c2 == c and not G2.training and not D2.training
    for a, b in ((G, G2), (D, D2)):
        for (ka, pa), (kb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(pa, pb)
    assert checkpoint.load(path).metadata == {"steps": "12"}
    assert "channel_model" in kinds.names() and kinds.holding("discriminator") == ["channel_model"]


def test_other_kinds_and_damage_are_refused_naming_the_file(tmp_path):
    c = ChannelModelConfig(**SMALL)
    G, D = cg.build_channel_model(c, seed=1)
    path = str(cg.save_channel_model(tmp_path / "cm.safetensors", c, G, D))
    link_cfg = config.LinkConfig(M=16, n=N)
    enc, dec = models.build(link_cfg, seed=0)
    link = str(checkpoint.save_link(tmp_path / "link.safetensors", link_cfg, enc, dec))
    with pytest.raises(CheckpointError, match=rf"^{link}: is a autoencoder checkpoint; expected channel_model"):
        cg.load_channel_model(link)
    with pytest.raises(CheckpointError, match=rf"^{path}: is a channel_model checkpoint; expected autoencoder"):
        checkpoint.load_link(path)
    with pytest.raises(CheckpointError, match=rf"^{path}: has n=7 but n=4 was expected"):
        cg.load_channel_model(path, expect={"n": 4})
    from safetensors.torch import load as st_load, save as st_save
    tensors = st_load(open(path, "rb").read())
    tensors["discriminator.net.0.weight"][0, 0] = float("nan")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(st_save(tensors, metadata=checkpoint.read_metadata(path)))
    with pytest.raises(CheckpointError, match=rf"^{bad}: tensor discriminator.net.0.weight holds NaN"):
        cg.load_channel_model(bad)
    with pytest.raises(CheckpointError, match="no such file"):
        cg.load_channel_model(tmp_path / "none.safetensors")


# --- regulariser --------------------------------------------------------------------

def test_l2_penalty_value_and_gradient_is_lambda_theta():
    G, _ = cg.build_channel_model(ChannelModelConfig(**SMALL), seed=0)
    with torch.no_grad():  # non-zero biases too, so the check covers them
        for p in G.parameters():
            p.add_(0.1)
    lam = 0.01
    penalty = cgt.l2_penalty(G, lam)
    expected = lam * 0.5 * sum(float(p.detach().double().pow(2).sum()) for p in G.parameters())
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    for name, p in G.named_parameters():
        torch.testing.assert_close(p.grad, lam * p.detach(), msg=name)
    assert float(cgt.l2_penalty(G, 0.0)) == 0.0
    with pytest.raises(ValueError, match="^l2 must"):
        cgt.l2_penalty(G, -1.0)


# --- training loops (short) ---------------------------------------------------------

@pytest.fixture(scope="module")
def awgn_pairs():
    return cd.simulate_dataset("awgn", N, 3.0, 500, seed=0)


def test_fit_channel_history_reproducibility_and_checks(awgn_pairs):
    c = ChannelModelConfig(**SMALL)
    runs = []
    for _ in range(2):
        G, D = cg.build_channel_model(c, seed=0)
        hist = cgt.fit_channel(G, D, awgn_pairs, steps=25, batch_size=64, seed=3)
        runs.append((G, hist))
    hist = runs[0][1]
    assert set(hist) == {"step", "d_loss", "g_loss"} and hist["step"] == [10, 20, 25]
    assert all(math.isfinite(v) for v in hist["d_loss"] + hist["g_loss"])
    for p1, p2 in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(p1, p2)
    assert not runs[0][0].training
    G, D = cg.build_channel_model(ChannelModelConfig(n=5, hidden=(8,), disc_hidden=(8,)), seed=0)
    with pytest.raises(ValueError, match="the dataset has n=7"):
        cgt.fit_channel(G, D, awgn_pairs, steps=1)
    G, D = cg.build_channel_model(c, seed=0)
    for kwargs, name in ((dict(steps=0), "steps"), (dict(steps=1, d_steps=0), "d_steps"),
                         (dict(steps=1, lr=0.0), "lr"), (dict(steps=1, lr_schedule="linear"), "lr_schedule")):
        with pytest.raises(ValueError, match=f"^{name} must"):
            cgt.fit_channel(G, D, awgn_pairs, **kwargs)


class _NoGradChannel(channels.Channel):
    """AWGN that fails if it is ever called where a gradient could flow: the real channel is a black box."""

    preserves_real = True

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, n0, generator=None):
        assert not torch.is_grad_enabled() and not x.requires_grad
        self.calls += 1
        return channels.AWGN()(x, n0, generator)


def test_train_gan_link_runs_algorithm_1_without_differentiating_the_channel():
    link_cfg = config.LinkConfig(M=16, n=N)
    enc, dec = models.build(link_cfg, seed=0)
    G, D = cg.build_channel_model(ChannelModelConfig(**SMALL), seed=0)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in
              (("T", enc), ("R", dec), ("G", G), ("D", D))}
    real = _NoGradChannel()
    hist = cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=12, batch_size=32, pretrain_steps=3, xavier=True)
    assert set(hist) == {"step", "d_loss", "g_loss", "receiver_loss", "transmitter_loss"}
    assert hist["step"] == [10, 12] and real.calls == 15
    for name, net in (("T", enc), ("R", dec), ("G", G), ("D", D)):
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), f"{name} did not train"
        assert all(p.requires_grad for p in net.parameters()), f"{name} left frozen"
    with pytest.raises(ValueError, match="the channel model has n=5"):
        G5, D5 = cg.build_channel_model(ChannelModelConfig(n=5, hidden=(8,), disc_hidden=(8,)), seed=0)
        cgt.train_gan_link(enc, dec, G5, D5, real, 3.0, steps=1)
    with pytest.raises(ValueError, match="mode must be 'complex'"):
        cgt.train_gan_link(*models.build(config.LinkConfig(M=16, n=N, mode="real"), seed=0),
                           *cg.build_channel_model(ChannelModelConfig(n=N, mode="real", hidden=(8,),
                                                                      disc_hidden=(8,))),
                           channels.by_name("pa"), 3.0, steps=1)


class _RecordingAWGN(channels.Channel):
    """AWGN that keeps every input it is given."""

    preserves_real = True

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x, n0, generator=None):
        self.inputs.append(x.clone())
        return channels.AWGN()(x, n0, generator)


def test_train_gan_link_probes_ride_with_the_batch_in_one_channel_call():
    enc, dec = models.build(config.LinkConfig(M=16, n=N), seed=0)
    G, D = cg.build_channel_model(ChannelModelConfig(**SMALL), seed=0)
    real = _RecordingAWGN()
    recipe = dict(cgt.tracking_recipe(), batch_size=32, random_inputs=0.25, d_steps=2)
    cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=3, pretrain_steps=1, **recipe)
    # One call per step: the 32 codewords, then d_steps * 8 fresh probes.
    assert [x.shape for x in real.inputs] == [(48, N)] * 4
    probes = torch.cat([x[32:] for x in real.inputs])
    assert len(torch.unique(probes.real)) == probes.numel()  # fresh draws, never repeated
    # i.i.d. CN(0, 1): mean energy 1 per symbol, std 1; 448 symbols put 4.7 standard errors in +-0.22.
    energy = float((probes.abs() ** 2).mean())
    assert abs(energy - 1.0) < 0.22, energy
    # the batch rows are the link's codewords (of the transmitter of that step)
    assert all(len(torch.unique(x[:32, 0].real)) <= 16 for x in real.inputs)
    with pytest.raises(ValueError, match="^random_inputs must"):
        cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=1, random_inputs=1.0)
    with pytest.raises(ValueError, match="^gan_l2 must"):
        cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=1, gan_l2=-0.1)
    with pytest.raises(ValueError, match="^link_lr must"):
        cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=1, link_lr=0.0)
    with pytest.raises(ValueError, match="^link_lr_schedule must"):
        cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=1, link_lr_schedule="linear")


def test_train_gan_link_link_lr_drives_t_and_r_only():
    """Adam moves each parameter by about lr per step: at link_lr = 1e-9, T and R stay put while G and D train."""
    enc, dec = models.build(config.LinkConfig(M=16, n=N), seed=0)
    G, D = cg.build_channel_model(ChannelModelConfig(**SMALL), seed=0)
    nets = {"T": enc, "R": dec, "G": G, "D": D}
    before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
    cgt.train_gan_link(enc, dec, G, D, channels.AWGN(), 3.0, steps=5, batch_size=32, link_lr=1e-9,
                       link_lr_schedule="cosine")
    moved = {k: max(float((a - b.detach()).abs().max()) for a, b in zip(before[k], net.parameters()))
             for k, net in nets.items()}
    assert moved["T"] < 1e-7 and moved["R"] < 1e-7, moved
    assert moved["G"] > 1e-4 and moved["D"] > 1e-4, moved


def test_train_gan_link_real_mode_probes_are_real():
    cfg = config.LinkConfig(M=16, n=N, mode="real")
    enc, dec = models.build(cfg, seed=0)
    G, D = cg.build_channel_model(ChannelModelConfig(n=N, mode="real", hidden=(8,), disc_hidden=(8,)), seed=0)
    real = _RecordingAWGN()
    cgt.train_gan_link(enc, dec, G, D, real, 3.0, steps=2, batch_size=16, random_inputs=0.5)
    probes = torch.cat([x[16:] for x in real.inputs])
    assert probes.shape == (16, N) and torch.count_nonzero(probes.imag) == 0
    assert torch.count_nonzero(probes.real) == probes.numel()


def test_train_gan_link_is_reproducible_with_xavier_initialisation():
    """The paper's re-initialisation of T and R draws from the seed's streams, never from torch's global RNG."""
    runs = []
    for _ in range(2):
        enc, dec = models.build(config.LinkConfig(M=16, n=N), seed=0)
        G, D = cg.build_channel_model(ChannelModelConfig(**SMALL), seed=0)
        torch.rand(7)  # moves the global RNG between the runs
        cgt.train_gan_link(enc, dec, G, D, channels.AWGN(), 3.0, steps=2, batch_size=16, xavier=True, seed=5)
        runs.append([p.detach().clone() for net in (enc, dec, G, D) for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_transmitter_learns_only_through_the_generator():
    """With a generator that blocks gradients (y does not depend on x), T gets no gradient and stays put."""
    link_cfg = config.LinkConfig(M=16, n=N)
    enc, dec = models.build(link_cfg, seed=0)
    G, D = cg.build_channel_model(ChannelModelConfig(n=N, generator="plain", hidden=(8,), disc_hidden=(8,)), seed=0)
    with torch.no_grad():
        G.net[0].weight[:, : 2 * N] = 0.0  # G ignores x ...
    G.net[0].weight.register_hook(lambda g: g.index_fill(1, torch.arange(2 * N), 0.0))  # ... and keeps ignoring it
    t0 = [p.detach().clone() for p in enc.parameters()]
    cgt.train_gan_link(enc, dec, G, D, channels.AWGN(), 3.0, steps=3, batch_size=16, l2=0.0)
    assert all(torch.equal(a, b) for a, b in zip(t0, enc.parameters()))


def test_paper_recipe():
    r = cgt.paper_recipe(epochs=2)
    assert (r["M"], r["n"], r["batch_size"], r["l2"], r["ebn0_db"], r["n_train"]) == (16, 7, 320, 0.01, 3.0, 10000)
    assert r["steps"] == math.ceil(2 * 10000 / 320) and r["xavier"] and r["generator"] == "residual"
