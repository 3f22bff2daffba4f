"""The adversarial-attack examples: the stock Hamming (7,4) chain, and the flowgraphs compiled by grcc and run.

The headless example is run as GRC's Run button runs it (the generated
script next to a copy of examples/, started from another folder) on files
the tests make: tiny_link as the regular link (and as the "defended"
receiver, so the two decoders must score exactly alike) and a universal
perturbation crafted on it. What it measures is checked against theory
(Hamming hard decision, exact) and against the offline attack
(attacks.Perturbed on the same link), with 99.9% confidence intervals.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from gnuradio import blocks, digital, e2e, gr

from flowgraph_helpers import compile_examples, run_gui_offscreen
from gnuradio.e2e.core import attacks, baselines, channels, prng, snr, theory
from gnuradio.e2e.core.models import complex_to_real, decide
from gnuradio.e2e.core.perturbation import PerturbationConfig, save_perturbation

CONFIDENCE = 0.999


def test_the_stock_hamming_chain_decides_as_baselines_hard_decoder():
    """chunks_to_symbols -> + noise -> complex_to_real -> slicer -> pack_k_bits(7) -> map_bb, at 2 dB."""
    count = 20000
    msgs = np.random.default_rng(0).integers(0, 16, count)
    link = baselines.hamming74_link("hard")
    np.testing.assert_array_equal(np.array(e2e.hamming74_symbol_table()).reshape(16, 7), link.codebook)
    n0 = snr.n0_from_ebn0_db(2.0, 16, 7)
    noise = channels.complex_noise((count, 7), n0, prng.torch_generator(1, prng.NOISE)).numpy()
    tb = gr.top_block()
    add = blocks.add_cc()
    sink = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(msgs.tolist()), digital.chunks_to_symbols_bc(e2e.hamming74_symbol_table(), 7),
               (add, 0))
    tb.connect(blocks.vector_source_c(noise.reshape(-1).tolist()), (add, 1))
    tb.connect(add, blocks.complex_to_real(), digital.binary_slicer_fb(), blocks.pack_k_bits_bb(7),
               digital.map_bb(e2e.hamming74_decoding_table()), sink)
    tb.run()
    decided = np.array(sink.data())
    expected = link.receive(link.transmit(msgs) + noise, n0)
    np.testing.assert_array_equal(decided, expected)
    assert 0.05 < np.mean(decided != msgs) < 0.3  # errors happen: the check is not vacuous


# --- the example flowgraphs (compiled by grcc, run) -------------------------------------

EBN0_DB, PSR_DB = 8.0, -6.0


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, tiny_link):
    """A folder laid out as the gr-e2e checkout: examples/ with the generated scripts, runs/adversarial/ empty."""
    return compile_examples(tmp_path_factory.mktemp("checkout"),
                            ("adversarial_attack_headless.grc", "adversarial_attack.grc"))


def write_attack_files(root, tiny_link):
    """runs/adversarial/{regular,defended,universal}.safetensors; returns the perturbation (complex64 [7])."""
    folder = root / "runs" / "adversarial"
    folder.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path(tiny_link.path).read_bytes()
    (folder / "regular.safetensors").write_bytes(data)
    (folder / "defended.safetensors").write_bytes(data)
    labels = torch.from_numpy(prng.numpy_rng(7, prng.ATTACK).integers(0, 16, 2000))
    y = attacks.received_signals(tiny_link.encoder, labels, EBN0_DB, prng.torch_generator(7, prng.ATTACK, 1))
    p = attacks.universal_perturbation(tiny_link.decoder, y, labels, PSR_DB,
                                       generator=prng.torch_generator(7, prng.ATTACK, 2))
    save_perturbation(folder / "universal.safetensors",
                      PerturbationConfig(M=16, n=7, psr_db=PSR_DB, crafted_on="regular.safetensors"), p)
    return p


def run_headless(root, cwd, *args):
    script = root / "examples" / "adversarial_attack_headless.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def result(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])


def offline_bler(link, p, count, seed):
    """Errors of tiny_link under Perturbed(AWGN(), p) at EBN0_DB, offline: (errors, count); p complex [7]."""
    msgs = torch.from_numpy(np.random.default_rng(seed).integers(0, 16, count))
    x = torch.from_numpy(link.encoder.symbol_table()[msgs.numpy()])
    n0 = snr.n0_from_ebn0_db(EBN0_DB, 16, 7)
    with torch.no_grad():
        y = attacks.Perturbed(channels.AWGN(), p)(x, n0, prng.torch_generator(seed, prng.EVAL))
        return int((decide(link.decoder(complex_to_real(y))) != msgs).sum()), count


def disjoint(a, b):
    """Wilson intervals of (errors, trials) a and b do not meet."""
    (lo_a, hi_a), (lo_b, hi_b) = theory.wilson_interval(*a, CONFIDENCE), theory.wilson_interval(*b, CONFIDENCE)
    return hi_a < lo_b or hi_b < lo_a


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_headless_example_measures_the_attack(checkout, tiny_link, tmp_path):
    """From another folder, as GRC's Run button: defaults found next to the script; what it prints is right."""
    num = 40000  # 7 * num is a multiple of 4: the Add blocks keep every sample
    before = run_headless(checkout, tmp_path, "-N", "1000")
    assert before.returncode != 0
    expected = checkout / "runs" / "adversarial" / "regular.safetensors"
    assert f"{expected}: no such file. `make bench-adversarial`" in before.stderr, before.stderr[-2000:]
    p = write_attack_files(checkout, tiny_link)

    runs = {a: result(run_headless(checkout, tmp_path, "-a", a, "-N", str(num), "-e", str(EBN0_DB), "-s", "3"))
            for a in ("universal", "jamming")}
    for r in runs.values():
        assert r["messages"] == num
        assert r["regular"] == r["defended"]  # the same decoder on the same stream
    errors = {a: (round(r["regular"] * num), num) for a, r in runs.items()}
    # The universal perturbation beats jamming of the same power on the link it was crafted on ...
    assert runs["universal"]["regular"] > runs["jamming"]["regular"] and disjoint(errors["universal"],
                                                                                   errors["jamming"]), runs
    # ... and the flowgraph measures what the offline attack does: their 99.9% intervals meet.
    offline = offline_bler(tiny_link, p, 100000, seed=11)
    assert not disjoint(errors["universal"], offline), (errors["universal"], offline)

    # Hamming (7,4), no attack, at 5 dB: the exact hard-decision BLER lies in the run's interval.
    off = result(run_headless(checkout, tmp_path, "-a", "off", "-N", str(num), "-e", "5", "-s", "4"))
    lo, hi = theory.wilson_interval(round(off["hamming74_hard"] * num), num, CONFIDENCE)
    assert lo <= theory.hamming74_hard_bler(5.0) <= hi, (off, theory.hamming74_hard_bler(5.0))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_gui_example_runs_and_its_controls_reach_the_attackers(checkout, tiny_link):
    write_attack_files(checkout, tiny_link)
    script = checkout / "examples" / "adversarial_attack.py"
    counted = run_gui_offscreen(script, {"num_messages": 8000, "rate": 1e6},
                                "[getattr(tb, 'e2e_block_error_counter_%d' % i).blocks() for i in range(3)]",
                                until="tb.e2e_block_error_counter_2.blocks() == 8000")
    assert counted == [8000, 8000, 8000]
    # The chooser and the ranges are GRC callbacks of both attackers.
    code = script.read_text()
    for call in ("self.e2e_adversarial_source_0.set_mode(self.attack)",
                 "self.e2e_adversarial_source_1.set_mode(self.hamming_attack)",
                 "self.e2e_adversarial_source_0.set_psr_db(self.psr_db)",
                 "self.e2e_adversarial_source_1.set_psr_db(self.psr_db)",
                 "self.e2e_adversarial_source_0.set_symbol_offset(self.symbol_offset)"):
        assert call in code, call
