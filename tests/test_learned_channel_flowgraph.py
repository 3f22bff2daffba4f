"""The learned-channel examples, compiled by grcc and run as GRC's Run button runs them, on files the tests make.

tiny_link is the link; the channel model is an untrained residual
generator whose residual branch is scaled up, so that it visibly disturbs
the link (a trained one is what `make bench-learned-channel` writes; the
example only has to play whichever it is given). Each BLER the headless
example prints is checked against the same channel offline (99.9% Wilson
intervals meet).
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowgraph_helpers import compile_examples, run_gui_offscreen
from gnuradio.e2e.core import channel_gan, channels, prng, snr, theory
from gnuradio.e2e.core.models import complex_to_real, decide

CONFIDENCE = 0.999
EBN0_DB = 5.0


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A folder laid out as the gr-e2e checkout: examples/ with the generated scripts, runs/ empty."""
    return compile_examples(tmp_path_factory.mktemp("checkout"),
                            ("learned_channel_headless.grc", "learned_channel.grc"))


def write_files(root, tiny_link):
    """runs/learned_channel/{link,channel_model}.safetensors; returns the channel model's generator."""
    folder = root / "runs" / "learned_channel"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link.safetensors").write_bytes(pathlib.Path(tiny_link.path).read_bytes())
    cfg = channel_gan.ChannelModelConfig(n=7, M=16, ebn0_db=EBN0_DB)
    generator, discriminator = channel_gan.build_channel_model(cfg, seed=4)
    with torch.no_grad():  # the residual branch starts at 1% of x; at 150 times that, BLER ~ 0.1 on tiny_link
        generator.net[-1].weight.mul_(150.0)
    channel_gan.save_channel_model(folder / "channel_model.safetensors", cfg, generator, discriminator)
    return generator.eval()


def run_headless(root, cwd, *args):
    script = root / "examples" / "learned_channel_headless.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def result(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])


def offline_errors(link, channel, n0, count, seed=11):
    """(errors, count) of the link over `channel` offline: what the flowgraph's path must measure."""
    msgs = np.random.default_rng(seed).integers(0, 16, count)
    x = torch.from_numpy(link.encoder.symbol_table()[msgs])
    with torch.no_grad():
        y = channel(x, n0, prng.torch_generator(seed, prng.EVAL))
        return int(np.sum(decide(link.decoder(complex_to_real(y))).numpy() != msgs)), count


def meet(a, b):
    """The Wilson intervals of (errors, trials) a and b meet."""
    (lo_a, hi_a), (lo_b, hi_b) = theory.wilson_interval(*a, CONFIDENCE), theory.wilson_interval(*b, CONFIDENCE)
    return lo_a <= hi_b and lo_b <= hi_a


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_headless_example_measures_both_channels(checkout, tiny_link, tmp_path):
    """From another folder, as GRC's Run button: defaults found next to the script; both BLERs are right."""
    before = run_headless(checkout, tmp_path, "-N", "1000")
    assert before.returncode != 0
    expected = checkout / "runs" / "learned_channel" / "link.safetensors"
    assert f"{expected}: no such file. `make bench-learned-channel`" in before.stderr, before.stderr[-2000:]
    generator = write_files(checkout, tiny_link)

    num = 20000
    r = result(run_headless(checkout, tmp_path, "-N", str(num), "-e", str(EBN0_DB), "-s", "3"))
    assert (r["messages"], r["channel"], r["ebn0_db"], r["model_ebn0_db"]) == (num, "pa", EBN0_DB, EBN0_DB)
    measured = {k: (round(r[k] * num), num) for k in ("simulated", "learned")}
    n0 = snr.n0_from_ebn0_db(EBN0_DB, 16, 7)
    pa = offline_errors(tiny_link, channels.by_name("pa"), n0, 100000)
    learned = offline_errors(tiny_link, channel_gan.LearnedChannel(generator), n0, 100000)
    assert meet(measured["simulated"], pa), (measured, pa)
    assert meet(measured["learned"], learned), (measured, learned)
    assert not meet(pa, learned)  # the two paths measure different channels: the check can tell them apart
    # Another simulated channel by name: AWGN at 5 dB, against the same link offline.
    awgn = result(run_headless(checkout, tmp_path, "-N", str(num), "--channel", "awgn", "-e", str(EBN0_DB)))
    assert meet((round(awgn["simulated"] * num), num), offline_errors(tiny_link, channels.AWGN(), n0, 100000))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_gui_example_runs_both_paths(checkout, tiny_link):
    write_files(checkout, tiny_link)
    script = checkout / "examples" / "learned_channel.py"
    counted = run_gui_offscreen(script, {"num_messages": 6000, "rate": 1e6},
                                "[tb.e2e_block_error_counter_0.blocks(), tb.e2e_block_error_counter_1.blocks()]",
                                until="tb.e2e_block_error_counter_1.blocks() == 6000")
    assert counted == [6000, 6000]
    # Eb/N0 of the simulated channel is a GRC callback.
    assert "self.e2e_simulated_channel_0.set_ebn0_db(self.ebn0_db)" in script.read_text()
