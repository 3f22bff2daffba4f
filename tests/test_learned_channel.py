"""learned_channel: the generator offline for the same seed, whatever the buffers; files refused by name."""
import math

import numpy as np
import pytest
import torch
from gnuradio import blocks, e2e, gr

from gnuradio.e2e.core import channel_gan, checkpoint
from gnuradio.e2e.learned_channel import CHUNK_MESSAGES, noise_generator, require_learned_channel_files

M, N = 16, 7


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained residual channel model (n = 7) with weights of its own; returns (path, generator)."""
    cfg = channel_gan.ChannelModelConfig(n=N, ebn0_db=6.0, M=M)
    generator, discriminator = channel_gan.build_channel_model(cfg, seed=4)
    with torch.no_grad():  # a residual branch that does something visible (it starts near zero)
        generator.net[-1].weight.mul_(30.0)
    path = tmp_path_factory.mktemp("channel") / "channel_model.safetensors"
    channel_gan.save_channel_model(path, cfg, generator, discriminator)
    return str(path), generator.eval()


def run(block, x, max_items=None):
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(np.asarray(x, np.complex64).tolist()), block, sink)
    tb.run(max_items) if max_items else tb.run()
    return np.array(sink.data(), dtype=np.complex64)


def symbols(count, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(count * N) + 1j * rng.standard_normal(count * N)) / math.sqrt(2)).astype(np.complex64)


def offline(generator, x, seed):
    """LearnedChannel(generator) on each chunk of CHUNK_MESSAGES messages with noise_generator(seed, chunk).

    The last chunk is padded with zero messages, as the block draws the noise
    of a whole chunk: complex64 [count, n].
    """
    rows = x.reshape(-1, N)
    channel = channel_gan.LearnedChannel(generator)
    out = []
    with torch.no_grad():
        for c in range(-(-len(rows) // CHUNK_MESSAGES)):
            part = rows[c * CHUNK_MESSAGES:(c + 1) * CHUNK_MESSAGES]
            chunk = np.zeros((CHUNK_MESSAGES, N), np.complex64)
            chunk[:len(part)] = part
            out.append(channel(torch.from_numpy(chunk), 0.0, noise_generator(seed, c)).numpy()[:len(part)])
    return np.concatenate(out)


@pytest.mark.timeout(60)
def test_the_block_is_the_learned_channel_offline_for_the_same_seed(model_file):
    path, generator = model_file
    count, seed = 2 * CHUNK_MESSAGES + 77, 3
    x = symbols(count)
    whole = run(e2e.learned_channel(path, M, N, seed=seed), x)
    assert len(whole) == len(x)
    expected = offline(generator, x, seed)
    np.testing.assert_allclose(whole.reshape(count, N), expected, rtol=0, atol=1e-5)
    # Buffers of 3 messages (a chunk spans hundreds of work() calls): the same stream.
    cut = run(e2e.learned_channel(path, M, N, seed=seed), x, max_items=3 * N + 2)
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-5)
    # The noise matters (a seed changes y) and the model does something (y is not x).
    other = run(e2e.learned_channel(path, M, N, seed=seed + 1), x[:100 * N])
    assert np.mean(np.abs(other - whole[:100 * N]) ** 2) > 1e-3
    assert np.mean(np.abs(whole - x) ** 2) > 1e-3


def test_the_model_in_use_is_the_files(model_file):
    path, _ = model_file
    block = e2e.learned_channel(path, M, N)
    assert block.model_ebn0_db() == 6.0 and block.config.generator == "residual"


def test_files_of_another_kind_or_n_are_refused_naming_the_file(tmp_path, tiny_link, model_file):
    with pytest.raises(checkpoint.CheckpointError,
                       match=f"^{tiny_link.path}: is a autoencoder checkpoint; expected channel_model"):
        e2e.learned_channel(tiny_link.path, M, N)
    cfg = channel_gan.ChannelModelConfig(n=4)
    other = tmp_path / "n4.safetensors"
    channel_gan.save_channel_model(other, cfg, *channel_gan.build_channel_model(cfg, seed=0))
    with pytest.raises(checkpoint.CheckpointError, match=f"^{other}: has n=4 but n=7 was expected"):
        e2e.learned_channel(str(other), M, N)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(open(model_file[0], "rb").read()[:500])
    with pytest.raises(checkpoint.CheckpointError, match=f"^{damaged}: "):
        e2e.learned_channel(str(damaged), M, N)


def test_a_missing_file_names_the_command_that_writes_it(tmp_path):
    missing = tmp_path / "channel_model.safetensors"
    with pytest.raises(checkpoint.CheckpointError) as e:
        e2e.learned_channel(str(missing), M, N)
    assert str(e.value).startswith(f"{missing}: no such file. ") and "`make bench-learned-channel`" in str(e.value)
    require_learned_channel_files(__file__)
    with pytest.raises(checkpoint.CheckpointError, match=f"^{missing}: no such file. `make bench-learned-channel`"):
        require_learned_channel_files(__file__, str(missing))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(M=1), r"^M must be an integer in \[2, 256\], got 1"),
    (dict(n=0), r"^n must be an integer"),
    (dict(seed=-2), r"^seed must be an integer"),
    (dict(checkpoint=""), r"^checkpoint must"),
])
def test_bad_parameters_are_refused_naming_them(model_file, kwargs, pattern):
    args = dict(checkpoint=model_file[0], M=M, n=N, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        e2e.learned_channel(**args)


def test_grc_template_and_ports():
    from gnuradio.grc.core.platform import Platform
    platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    fg = platform.make_flow_graph()
    block = fg.new_block("e2e_learned_channel")
    block.params["checkpoint"].set_value("'channel_model.safetensors'")
    fg.rewrite()
    assert block.templates.render("make") == "e2e.learned_channel('channel_model.safetensors', 16, 7, seed=0)"
    assert [(p.key, p.domain, p.dtype) for p in block.sinks] == [("0", "stream", "complex")]
    assert [(p.key, p.domain, p.dtype) for p in block.sources] == [("0", "stream", "complex")]
