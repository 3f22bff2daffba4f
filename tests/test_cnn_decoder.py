"""The CNN decoder option (LinkConfig.decoder_architecture = 'cnn').

Config field, JSON (a plain MLP link's JSON is what it was), the network's
layers and layout, training lowers its loss, checkpoint round trip, and the
nn_decoder block running it (the interleaved fast path does not apply).
"""
import json

import numpy as np
import pytest
import torch
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.core import channels, checkpoint, config, kinds, models, snr, training
from gnuradio.e2e.core.config import LinkConfig

M, N = 16, 7
CNN = LinkConfig(M=M, n=N, decoder_architecture="cnn", decoder_hidden=(8, 8))


def test_field_default_and_errors():
    assert LinkConfig(M=M, n=N).decoder_architecture == "mlp"
    assert "decoder_architecture" in config.ROLE_FIELDS["decoder"]
    for bad in ("rnn", None, "CNN"):
        with pytest.raises(ValueError, match=rf"^decoder_architecture must be one of \('mlp', 'cnn'\), got {bad!r}"):
            LinkConfig(M=M, n=N, decoder_architecture=bad)


def test_json():
    plain = json.loads(kinds.config_json("autoencoder", LinkConfig(M=M, n=N)))
    assert "decoder_architecture" not in plain  # a plain link's JSON is unchanged
    text = kinds.config_json("autoencoder", CNN)
    assert json.loads(text)["decoder_architecture"] == "cnn"
    assert kinds.parse_config_json(text)[1] == CNN
    d = dict(plain, decoder_architecture="mlp")  # written out with its default, it still loads
    assert kinds.parse_config_json(json.dumps(d))[1] == LinkConfig(M=M, n=N)


def test_merge_takes_the_architecture_from_the_receiver():
    assert config.merge_configs(LinkConfig(M=M, n=N), CNN).decoder_architecture == "cnn"
    assert config.merge_configs(CNN, LinkConfig(M=M, n=N)).decoder_architecture == "mlp"


def test_mlp_decoder_is_the_plain_one():
    a = models.build(LinkConfig(M=M, n=N), seed=4)[1]
    b = models.build(LinkConfig(M=M, n=N, decoder_architecture="mlp"), seed=4)[1]
    assert [type(m) for m in a.net] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("mode, channels_in", [("complex", 2), ("real", 1)])
def test_cnn_layers_and_layout(mode, channels_in):
    cfg = LinkConfig(M=M, n=N, mode=mode, decoder_architecture="cnn", decoder_hidden=(6, 5))
    dec = models.build(cfg, seed=0)[1]
    conv = [m for m in dec.net if isinstance(m, torch.nn.Conv1d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in conv] == \
        [(channels_in, 6, models.CNN_KERNEL), (6, 5, models.CNN_KERNEL)]
    assert (dec.net[-1].in_features, dec.net[-1].out_features) == (5 * N, M)
    y = torch.randn(9, 2 * N)
    logits = dec(y)
    assert logits.shape == (9, M) and logits.dtype == torch.float32
    # Convolution over symbols: channel 0 holds the real parts, channel 1 the imaginary parts.
    assert torch.equal(dec.net[0](y[:, :channels_in * N])[:, 0], y[:, :N])
    if mode == "complex":
        assert torch.equal(dec.net[0](y)[:, 1], y[:, N:])
    else:  # the imaginary half is never read
        y2 = y.clone()
        y2[:, N:] = 5.0
        assert torch.equal(dec(y2), logits)
    assert models.interleaved_decoder(dec) is None


def held_out_loss(enc, dec):
    """Cross-entropy on 4000 fixed messages at 6 dB (noise of its own seed)."""
    m = torch.from_numpy(np.random.default_rng(9).integers(0, M, 4000))
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        y = channels.through(channels.AWGN(), enc(m), snr.n0_from_ebn0_db(6.0, M, N), gen)
        return float(torch.nn.functional.cross_entropy(dec(y), m))


@pytest.fixture(scope="module")
def cnn_link(tmp_path_factory):
    """A CNN-decoder link trained 300 steps, its file, and its held-out loss before and after."""
    enc, dec = models.build(CNN, seed=2)
    before = held_out_loss(enc, dec)
    training.train_model_aware(enc, dec, channels.AWGN(), 6.0, steps=300, batch_size=200, lr=1e-2, seed=2)
    path = tmp_path_factory.mktemp("cnn") / "cnn.safetensors"
    checkpoint.save_link(path, CNN, enc, dec)
    return enc, dec, str(path), (before, held_out_loss(enc, dec))


def test_cnn_decoder_trains(cnn_link):
    before, after = cnn_link[3]
    # From about chance (ln 16 = 2.77) to a fraction of it.
    assert before > 2.0 and after < 0.1 * before


def test_round_trip(cnn_link):
    enc, dec, path, _ = cnn_link
    cfg, enc2, dec2 = checkpoint.load_link(path, expect={"M": M, "n": N})
    assert cfg == CNN
    y = torch.randn(50, 2 * N)
    torch.testing.assert_close(dec2(y), dec(y), rtol=0, atol=0)
    cfg_rx, dec_rx = checkpoint.load_network(path, "decoder")
    assert cfg_rx.decoder_architecture == "cnn"


@pytest.mark.timeout(60)
def test_runs_in_nn_decoder(cnn_link):
    enc, dec, path, _ = cnn_link
    msgs = np.random.default_rng(5).integers(0, M, 3000)
    x = torch.from_numpy(enc.symbol_table()[msgs])
    y = channels.AWGN()(x, snr.n0_from_ebn0_db(4.0, M, N), torch.Generator().manual_seed(5)).numpy()
    tb = gr.top_block()
    src = blocks.vector_source_c(y.reshape(-1).tolist())
    block = e2e.nn_decoder(path, M, N)
    snk = blocks.vector_sink_b()
    tb.connect(src, block, snk)
    tb.run()
    assert block.network._decoder[1] is False  # the plain path: no interleaved fast path for a CNN
    decided = np.array(snk.data(), dtype=np.int64)
    with torch.inference_mode():
        logits = dec(models.received_tensor(y))
    top2 = torch.topk(logits, 2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]).numpy() > 1e-4
    assert len(decided) == len(msgs) and clear.mean() > 0.99
    np.testing.assert_array_equal(decided[clear], models.decide(logits).numpy()[clear])
    assert 0 < np.mean(decided != msgs) < 0.2  # noisy enough to test decisions, and a working decoder
