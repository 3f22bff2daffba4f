"""LinkConfig validation and JSON, Encoder normalisation and layout, Decoder, helpers."""
import json

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import kinds, models
from gnuradio.e2e.core.config import LinkConfig


def parse_link_json(text):
    """The LinkConfig of an autoencoder config JSON (kinds.parse_config_json)."""
    kind, cfg = kinds.parse_config_json(text)
    assert kind.name == "autoencoder"
    return cfg

torch.set_num_threads(1)


# --- LinkConfig ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(M=1, n=7), "M"),
    (dict(M=16.0, n=7), "M"),
    (dict(M=True, n=7), "M"),
    (dict(M="16", n=7), "M"),
    (dict(M=16, n=0), "n"),
    (dict(M=16, n=-3), "n"),
    (dict(M=16, n=7.0), "n"),
    (dict(M=16, n=7, mode="imaginary"), "mode"),
    (dict(M=16, n=7, normalization="peak"), "normalization"),
    (dict(M=16, n=7, encoder_activation="sigmoid"), "encoder_activation"),
    (dict(M=16, n=7, decoder_activation="softmax"), "decoder_activation"),
    (dict(M=16, n=7, encoder_hidden=[0]), "encoder_hidden"),
    (dict(M=16, n=7, encoder_hidden=[16, 2.5]), "encoder_hidden"),
    (dict(M=16, n=7, encoder_hidden=[True]), "encoder_hidden"),
    (dict(M=16, n=7, decoder_hidden=[-4]), "decoder_hidden"),
    (dict(M=16, n=7, decoder_hidden=["64"]), "decoder_hidden"),
])
def test_linkconfig_errors_name_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        LinkConfig(**kwargs)


def test_linkconfig_defaults():
    c = LinkConfig(M=16, n=7)
    assert (c.mode, c.normalization) == ("complex", "energy")
    assert c.encoder_hidden == (16,) and c.decoder_hidden == (16,)
    assert c.real_outputs == 14
    assert LinkConfig(M=16, n=7, mode="real").real_outputs == 7
    c2 = LinkConfig(M=8, n=3, encoder_hidden=[32, 8], decoder_hidden=[64, 64])
    assert c2.encoder_hidden == (32, 8) and c2.decoder_hidden == (64, 64)
    hash(c2)  # frozen and hashable: lists were turned into tuples
    with pytest.raises(Exception):
        c2.M = 4


CONFIGS = [
    LinkConfig(M=16, n=7),
    LinkConfig(M=16, n=7, mode="real", normalization="average"),
    LinkConfig(M=8, n=3, encoder_hidden=[32, 8], decoder_hidden=[64, 64],
               encoder_activation="tanh", decoder_activation="elu"),
    LinkConfig(M=3, n=1, encoder_activation="linear", decoder_activation="linear"),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_json_round_trip(cfg):
    text = kinds.config_json("autoencoder", cfg)
    d = json.loads(text)
    assert d["format_version"] == kinds.FORMAT_VERSION and d["kind"] == "autoencoder"
    back = parse_link_json(text)
    assert back == cfg
    assert kinds.config_json("autoencoder", back) == text


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: "[1, 2]", "not a JSON object"),
    (lambda d: {**d, "format_version": 2}, "format_version"),
    (lambda d: {k: v for k, v in d.items() if k != "format_version"}, "format_version"),
    (lambda d: {**d, "kind": "gan"}, "kind"),
    (lambda d: {**d, "extra": 1}, "unknown keys"),
    (lambda d: {k: v for k, v in d.items() if k != "M"}, "lacks"),
    (lambda d: {**d, "M": 0}, "M must"),
    (lambda d: {**d, "mode": "quaternion"}, "mode must"),
])
def test_from_json_refuses(mutate, reason):
    d = json.loads(kinds.config_json("autoencoder", LinkConfig(M=16, n=7)))
    bad = mutate(d)
    with pytest.raises(ValueError, match=reason):
        parse_link_json(bad if isinstance(bad, str) else json.dumps(bad))


# --- Encoder -----------------------------------------------------------------------

def _encoder(**kw):
    cfg = LinkConfig(**{"M": 16, "n": 7, **kw})
    enc, _ = models.build(cfg, seed=3)
    return enc


@pytest.mark.parametrize("mode", ["complex", "real"])
@pytest.mark.parametrize("normalization", ["energy", "average"])
def test_encoder_shape_and_real_mode(mode, normalization):
    enc = _encoder(mode=mode, normalization=normalization)
    m = torch.tensor([0, 5, 5, 15, 3])
    x = enc(m)
    assert x.shape == (5, 14) and x.dtype == torch.float32
    if mode == "real":
        assert torch.count_nonzero(x[:, 7:]) == 0
        assert torch.count_nonzero(x[:, :7]) > 0
    else:
        assert torch.count_nonzero(x[:, 7:]) > 0
    # the same message gives the same codeword whatever the rest of the batch is
    torch.testing.assert_close(x[1], x[2], rtol=0, atol=0)
    torch.testing.assert_close(x, enc.codebook()[m], rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["complex", "real"])
@pytest.mark.parametrize("M, n", [(16, 7), (4, 1), (64, 10)])
def test_energy_normalisation_every_codeword(mode, M, n):
    enc = _encoder(M=M, n=n, mode=mode, normalization="energy")
    energy = enc(torch.arange(M)).double().pow(2).sum(dim=1)
    torch.testing.assert_close(energy, torch.full((M,), float(n), dtype=torch.float64), rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", ["complex", "real"])
def test_average_normalisation(mode):
    M, n = 16, 7
    enc = _encoder(M=M, n=n, mode=mode, normalization="average")
    energy = enc(torch.arange(M)).double().pow(2).sum(dim=1)
    assert energy.mean().item() == pytest.approx(n, rel=1e-5)
    # average, not per-codeword: an untrained encoder has unequal energies
    assert energy.max() / energy.min() > 1.05


def test_normalisation_holds_after_weights_change():
    enc = _encoder(normalization="energy")
    with torch.no_grad():
        for p in enc.parameters():
            p.mul_(7.3).add_(0.1)
    energy = enc(torch.arange(16)).pow(2).sum(dim=1)
    torch.testing.assert_close(energy, torch.full((16,), 7.0), rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", ["complex", "real"])
@pytest.mark.parametrize("normalization", ["energy", "average"])
def test_symbol_table(mode, normalization):
    enc = _encoder(mode=mode, normalization=normalization)
    table = enc.symbol_table()
    assert isinstance(table, np.ndarray)
    assert table.shape == (16, 7) and table.dtype == np.complex64
    x = enc(torch.arange(16)).detach().numpy()
    np.testing.assert_array_equal(table.real, x[:, :7])
    np.testing.assert_array_equal(table.imag, x[:, 7:])
    # Es = 1 per channel use on average over the codebook
    assert np.mean(np.abs(table) ** 2) == pytest.approx(1.0, rel=1e-5)
    if mode == "real":
        assert np.all(table.imag == 0)


def test_encoder_gradients_reach_every_parameter():
    enc = _encoder(encoder_hidden=[8, 8])
    enc(torch.arange(16)).pow(3).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


# --- Decoder -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["complex", "real"])
def test_decoder_shape(mode):
    cfg = LinkConfig(M=16, n=7, mode=mode, decoder_hidden=[32, 32])
    _, dec = models.build(cfg, seed=0)
    logits = dec(torch.randn(9, 14))
    assert logits.shape == (9, 16) and logits.dtype == torch.float32


@pytest.mark.parametrize("mode, ignores_imag", [("real", True), ("complex", False)])
def test_decoder_imaginary_half(mode, ignores_imag):
    cfg = LinkConfig(M=16, n=7, mode=mode)
    _, dec = models.build(cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 14, generator=g)
    y2 = y.clone()
    y2[:, 7:] = 100 * torch.randn(50, 7, generator=g)
    with torch.no_grad():
        same = torch.equal(dec(y), dec(y2))
        real_changed = not torch.equal(dec(y), dec(y + torch.cat([torch.ones(50, 7), torch.zeros(50, 7)], 1)))
    assert same is ignores_imag
    assert real_changed


def test_build_seeded():
    cfg = LinkConfig(M=16, n=7)
    a = models.build(cfg, seed=5)
    b = models.build(cfg, seed=5)
    c = models.build(cfg, seed=6)
    for x, y, z in zip(a, b, c):
        for k in x.state_dict():
            assert torch.equal(x.state_dict()[k], y.state_dict()[k])
        assert any(not torch.equal(x.state_dict()[k], z.state_dict()[k]) for k in x.state_dict())


def test_layers_follow_config():
    cfg = LinkConfig(M=8, n=3, encoder_hidden=[32, 16], decoder_hidden=[64],
                     encoder_activation="tanh", decoder_activation="relu")
    enc, dec = models.build(cfg, seed=0)
    lin = [m for m in enc.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(8, 32), (32, 16), (16, 6)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in enc.net) == 2
    lin = [m for m in dec.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(6, 64), (64, 8)]
    _, dec_real = models.build(LinkConfig(M=8, n=3, mode="real"), seed=0)
    assert dec_real.net[0].in_features == 3


# --- complex <-> real layout ----------------------------------------------------------

def test_complex_real_round_trip_torch():
    g = torch.Generator().manual_seed(1)
    z = torch.complex(torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g))
    r = models.complex_to_real(z)
    assert r.shape == (5, 14) and not r.is_complex()
    torch.testing.assert_close(r[:, :7], z.real, rtol=0, atol=0)
    torch.testing.assert_close(r[:, 7:], z.imag, rtol=0, atol=0)
    torch.testing.assert_close(models.real_to_complex(r), z, rtol=0, atol=0)
    x = torch.randn(4, 6, generator=g)
    torch.testing.assert_close(models.complex_to_real(models.real_to_complex(x)), x, rtol=0, atol=0)


def test_complex_to_real_numpy():
    z = np.array([[1 + 2j, 3 - 4j], [-5j, 6]], dtype=np.complex64)
    r = models.complex_to_real(z)
    assert isinstance(r, np.ndarray)
    np.testing.assert_array_equal(r, [[1, 3, 2, -4], [0, 6, -5, 0]])
    back = models.real_to_complex(torch.from_numpy(r)).numpy()
    np.testing.assert_array_equal(back, z)


def test_decide_is_argmax_with_ties_to_the_lowest_index():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0], [3.0, 3.0, 3.0, 3.0], [-5.0, -4.0, -6.0, -4.5]])
    assert models.decide(logits).tolist() == [1, 0, 1]
    big = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(models.decide(big), big.argmax(dim=1))


def test_received_tensor_is_the_decoders_layout():
    y = np.array([[1 + 2j, 3 - 4j]], dtype=np.complex128)
    t = models.received_tensor(y)
    assert t.dtype == torch.float32 and t.tolist() == [[1.0, 3.0, 2.0, -4.0]]


@pytest.mark.parametrize("mode, hidden", [("complex", (16,)), ("complex", (32, 32)), ("real", (16,))])
def test_interleaved_decoder_gives_the_decoders_logits(mode, hidden):
    """complex64 memory read as float32 through permuted first-layer columns = received_tensor + decoder."""
    cfg = LinkConfig(M=16, n=7, mode=mode, decoder_hidden=hidden)
    _, dec = models.build(cfg, seed=3)
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((500, 7)) + 1j * rng.standard_normal((500, 7))).astype(np.complex64)
    with torch.no_grad():
        expected = dec(models.received_tensor(y))
        got = models.interleaved_decoder(dec)(torch.from_numpy(y.view(np.float32)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_interleaved_decoder_declines_a_frontend():
    cfg = LinkConfig(M=16, n=7, receiver_frontend="transformer")
    assert models.interleaved_decoder(models.build(cfg, seed=0)[1]) is None
