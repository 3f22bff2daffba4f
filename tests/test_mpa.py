"""The message-passing attention precoder (core.mpa): layer, attention, iteration, power, training."""
import pytest
import torch

from gnuradio.e2e.core import mpa, prng, subchannels

torch.set_num_threads(1)
M, N, L = 16, 8, 16
N0 = 0.3


def encoder(L=L, seed=0):
    torch.manual_seed(seed)
    return mpa.MpaEncoder(M, N, L)


def channel_gains(count, family="selective", seed=0):
    return subchannels.SubchannelChannel(N, family).draw_gains(count, prng.torch_generator(seed, prng.MPA))


def test_identity_coefficients_reproduce_the_plain_encoder():
    plain = mpa.PlainEncoder(M, N)
    layered = mpa.MpaEncoder(M, N, L=N)
    layered.net.load_state_dict(plain.net.state_dict())
    eye = torch.eye(N)
    with torch.no_grad():
        assert torch.allclose(layered.codebook(eye), plain.codebook(), atol=1e-6)
        m = torch.arange(M).repeat(3)
        assert torch.allclose(layered(m, eye), plain(m), atol=1e-6)
        assert torch.allclose(layered(m, eye.expand(m.numel(), N, N)), plain(m), atol=1e-6)


def test_attention_is_a_softmax_over_subchannels():
    enc = encoder()
    h = channel_gains(32)
    with torch.no_grad():
        f = enc.features()
        alpha = enc.alpha0.expand(32, L, N)
        new = mpa.attention(f, alpha, h, N0)
        # The documented score, recomputed, must give the same softmax.
        x = f @ alpha.to(f.dtype)
        score = torch.einsum("bmi,ml->bli", x.conj(), f).real
        score = score / (x.abs().norm(dim=1)[:, None, :] * f.abs().norm(dim=0)[None, :, None])
        gain = h.abs() ** 2 / (h.abs() ** 2 + N0)
        expected = torch.softmax(mpa.DEFAULT_BETA * gain[:, None, :] * score, dim=2)
    assert new.shape == (32, L, N)
    assert (new >= 0).all()
    assert torch.allclose(new.sum(dim=2), torch.ones(32, L), atol=1e-6)
    assert torch.allclose(new, expected, atol=1e-5)


def test_adaptation_keeps_es_one_per_channel_use():
    enc = encoder()
    h = channel_gains(50)
    result = enc.adapt(h, N0)
    assert torch.allclose(result.alpha.sum(dim=2), torch.ones(50, L), atol=1e-5)
    with torch.no_grad():
        energy = enc.codebook(result.alpha).abs().pow(2).sum(dim=2).mean(dim=1) / N    # per channel
        assert torch.allclose(energy, torch.ones(50), atol=1e-5)
        # A message's symbols come out the same alone as in the whole codebook.
        m = torch.arange(M).repeat(50)
        per_message = enc(m, result.alpha.repeat_interleave(M, dim=0)).reshape(50, M, N)
        assert torch.allclose(per_message, enc.codebook(result.alpha), atol=1e-5)


def test_iteration_is_deterministic_and_per_channel():
    enc = encoder()
    h = channel_gains(20)
    a = enc.adapt(h, N0)
    b = enc.adapt(h.clone(), N0)
    assert torch.equal(a.alpha, b.alpha) and a.steps == b.steps == mpa.DEFAULT_STEPS
    alone = enc.adapt(h[7:8], N0)
    assert torch.allclose(alone.alpha[0], a.alpha[7], atol=1e-6)


def test_iteration_converges_and_reports_how_far():
    enc = encoder()
    h = channel_gains(20)
    f = enc.features().detach()
    deltas = [mpa.iterate(f, h, N0, enc.alpha0, steps=s).delta.max().item() for s in (4, 16, 64)]
    assert deltas[0] > deltas[1] > deltas[2]
    early = mpa.iterate(f, h, N0, enc.alpha0, steps=500, tol=1e-3)
    assert early.steps < 500 and (early.delta <= 1e-3).all()


def test_features_move_off_a_dead_subchannel():
    torch.manual_seed(0)
    enc = mpa.MpaEncoder(M, N, L, steps=16)  # the attention's direction, past the defaults' 2 steps
    h = torch.ones(1, N, dtype=torch.complex64)
    h[0, 2] = 0
    alpha = enc.adapt(h, N0).alpha[0]
    flat = enc.adapt(torch.ones(1, N, dtype=torch.complex64), N0).alpha[0]
    assert alpha[:, 2].sum() < 0.5 * flat[:, 2].sum(), (alpha[:, 2].sum(), flat[:, 2].sum())


def test_tandem_training_learns_with_the_layer_fixed():
    enc, dec = encoder(), mpa.CsiDecoder(M, N)
    ch = subchannels.SubchannelChannel(N, "train")
    history = mpa.train(enc, dec, ch, 6.0, rounds=12, stage1_steps=5, batch_size=256, seed=1)
    assert history[0] > 2.0 and history[-1] < 0.6 * history[0], history
    errors, blocks, _ = mpa.block_errors(enc, dec, ch, 6.0, channels=100, block=10, adaptation="mpa")
    assert blocks == 1000 and errors < 0.5 * blocks * (1 - 1 / M)


def test_gradient_adaptation_leaves_networks_alone():
    enc, dec = encoder(), mpa.CsiDecoder(M, N)
    before = [p.clone() for p in list(enc.parameters()) + list(dec.parameters())]
    result = mpa.adapt_gradient(enc, dec, channel_gains(4), N0, steps=3)
    after = list(enc.parameters()) + list(dec.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.requires_grad for p in after)
    assert torch.allclose(result.alpha.sum(dim=2), torch.ones(4, L), atol=1e-5)
    assert result.steps == 3 and not torch.equal(result.alpha[0], enc.alpha0)


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="L"):
        mpa.MpaEncoder(M, N, 0)
    with pytest.raises(ValueError, match="damping"):
        mpa.MpaEncoder(M, N, L, damping=0)
    with pytest.raises(ValueError, match="adaptation"):
        mpa.block_errors(encoder(), mpa.CsiDecoder(M, N), subchannels.SubchannelChannel(N), 5.0,
                         channels=1, block=1, adaptation="magic")
