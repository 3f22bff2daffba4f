"""The example loopback flowgraphs, compiled by grcc and run headless.

The BLER the headless flowgraph measures is compared with the core evaluator
(evaluation.evaluate_bler on LearnedLink) at the same Eb/N0. The flowgraph
runs K times with independent seeds (new messages, new noise) and the test
is Welch's t-test of the K run BLERs against the evaluator's estimate, whose
own binomial variance is added: a two-proportion test with the flowgraph's
variance measured rather than assumed (a flowgraph whose noise repeated, as
channel_model's fixed pool of 16384 samples does, would show it here).
Confidence 99.9%, two-sided.

Message counts are chosen with 7 * count a multiple of 4: GNU Radio's
add_cc drops the trailing samples of a finite stream that do not fill its
4-sample alignment (tests/test_noise_blocks.py), which would leave the last
message undecided.
"""
import os
import subprocess

import numpy as np
import pytest

from flowgraph_helpers import run_gui_offscreen
from gnuradio.e2e import grc_runner
from gnuradio.e2e.core import evaluation, learned, theory

pytestmark = pytest.mark.slow  # example flowgraphs compiled by grcc and run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EBN0_DB = 3.0  # the tiny link's BLER is about 3e-2 here
RUNS = 10


def compile_example(name, out_dir):
    subprocess.run(["grcc", "-o", str(out_dir), os.path.join(ROOT, "examples", name)],
                   check=True, capture_output=True, timeout=100)
    return os.path.join(str(out_dir), name.replace(".grc", ".py"))


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    return grc_runner.compile_and_load(os.path.join(ROOT, "examples", "awgn_loopback_headless.grc"),
                                       str(tmp_path_factory.mktemp("grcc")))


def run(top_block_cls, **kwargs):
    tb = top_block_cls(**kwargs)
    tb.run()
    return tb.e2e_block_error_counter_0


@pytest.mark.timeout(120)
def test_high_snr_is_error_free(headless, tiny_link):
    """Catches misaligned message boundaries (a lost sample makes BLER ~0.9)."""
    num = 20000
    counter = run(headless, checkpoint=tiny_link.path, ebn0_db=20.0, num_messages=num, seed=1)
    assert counter.blocks() == num  # no sample lost between the blocks
    assert counter.errors() == 0
    assert counter.bits() == 4 * counter.blocks()  # log2(16) bits per message counted


@pytest.mark.timeout(120)
def test_bler_agrees_with_core_evaluator(headless, tiny_link):
    num = 30000
    blers = []
    for i in range(RUNS):
        counter = run(headless, checkpoint=tiny_link.path, ebn0_db=EBN0_DB, num_messages=num, seed=10 * i)
        assert counter.blocks() == num
        blers.append(counter.bler())
    blers = np.array(blers)
    point = evaluation.evaluate_bler(learned.LearnedLink(tiny_link.encoder, tiny_link.decoder), [EBN0_DB],
                                     min_errors=10 ** 9, max_blocks=1_000_000, seed=123)[0]
    p_ref, n_ref = point["bler"], point["blocks"]
    assert 1e-2 < p_ref < 1e-1, "the tiny link is not in the BLER range this test is built for"
    test = theory.runs_vs_reference(blers, p_ref, n_ref)
    assert test["agree"], (f"flowgraph BLER {blers.mean():.5f} (runs {np.round(blers, 5)}) vs "
                           f"evaluator {p_ref:.5f} over {n_ref} blocks: t = {test['t']:.2f}")


@pytest.mark.timeout(180)
def test_gui_flowgraph_runs_offscreen(tmp_path, tiny_link):
    path = compile_example("awgn_loopback.grc", tmp_path)
    num = 3000
    result = run_gui_offscreen(path, dict(checkpoint=tiny_link.path, ebn0_db=4.0, num_messages=num, rate=1e6),
                               '{"blocks": tb.e2e_block_error_counter_0.blocks(), '
                               '"bler": tb.e2e_block_error_counter_0.bler()}')
    assert result["blocks"] == num
    assert result["bler"] < 0.1
