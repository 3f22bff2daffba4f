"""gr_e2e attack and gr_e2e train --method adversarial | gan-defense, run in process.

What they write is checked against core (the saved perturbation is the one
the same seed crafts, the defended receiver keeps the transmitter), and
every bad argument ends with a 'gr_e2e: error:' line naming the option.
"""
import json

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import adversary, attacks, checkpoint, perturbation, robustness

from cli_in_process import error_line, main


def test_attack_writes_the_perturbation_it_measures(tiny_link, tmp_path, capsys):
    out = tmp_path / "att"
    rc, stdout, err = main(["attack", "--checkpoint", tiny_link.path, "--messages", 200, "--passes", 1,
                            "--eval-ebn0-db", "8", "--min-errors", 20, "--max-blocks", 20000, "--quiet",
                            "--out", out], capsys)
    assert rc == 0, err
    assert "learned, white-box" in stdout and "learned, jamming" in stdout
    cfg, p = perturbation.load_perturbation(out / "perturbation.safetensors", expect={"M": 16, "n": 7})
    assert cfg.psr_db == -6.0 and not cfg.shift_invariant
    assert attacks.psr_db_of(torch.from_numpy(p)) == pytest.approx(-6.0, abs=1e-4)
    again = robustness.craft_universal(tiny_link.decoder, tiny_link.encoder, 8.5, -6.0, messages=200, passes=1)
    np.testing.assert_allclose(p, again.numpy(), rtol=1e-5, atol=1e-6)  # a pure function of the seed
    report = json.loads((out / "attack.json").read_text())
    assert set(report["curves"]) == {"learned, no attack", "learned, jamming", "learned, white-box"}
    assert (out / "attack.png").stat().st_size > 0


@pytest.mark.parametrize("method", ["adversarial", "gan-defense"])
def test_robust_training_keeps_the_transmitter(tiny_link, tmp_path, capsys, method):
    out = tmp_path / method
    rc, stdout, err = main(["train", "--method", method, "--start", tiny_link.path, "--ebn0-db", 8.5, "--steps", 5,
                            "--batch-size", 100, "--quiet", "--out", out], capsys)
    assert rc == 0, err
    cfg, enc, dec = checkpoint.load_link(out / "checkpoint.safetensors")
    assert cfg == tiny_link.config
    np.testing.assert_array_equal(enc.symbol_table(), tiny_link.encoder.symbol_table())
    assert any(not torch.equal(a, b) for a, b in zip(dec.state_dict().values(),
                                                     tiny_link.decoder.state_dict().values()))
    assert (out / "adversary.safetensors").exists() == (method == "gan-defense")
    if method == "gan-defense":
        gcfg, _ = adversary.load_adversary(out / "adversary.safetensors")
        assert (gcfg.n, gcfg.psr_db) == (7, -6.0)


@pytest.mark.parametrize("args, words", [
    (["attack", "--checkpoint", "{ckpt}", "--psr-db", "40"], ["--psr-db", "40"]),
    (["attack", "--checkpoint", "{ckpt}", "--messages", "0"], ["--messages"]),
    (["attack", "--checkpoint", "{ckpt}", "--ebn0-db", "nan"], ["--ebn0-db"]),
    (["attack", "--checkpoint", "{tmp}/none.safetensors"], ["none.safetensors", "no such file"]),
    (["attack", "--checkpoint", "{ckpt}", "--substitute", "{perturbation}"], ["p.safetensors", "perturbation checkpoint"]),
    (["train", "--method", "gan-defense"], ["--start"]),
    (["train", "--method", "model-aware", "--start", "{ckpt}"], ["--start"]),
    (["train", "--method", "adversarial", "--start", "{ckpt}", "--restarts", "2"], ["--restarts"]),
    (["train", "--method", "gan-defense", "--start", "{ckpt}", "--gamma", "-1"], ["--gamma"]),
    (["train", "--method", "gan-defense", "--start", "{ckpt}", "--psr-db", "nan"], ["--psr-db"]),
])
def test_bad_arguments_name_the_option(tiny_link, tmp_path, capsys, args, words):
    p_file = tmp_path / "p.safetensors"
    perturbation.save_perturbation(p_file, perturbation.PerturbationConfig(M=16, n=7),
                                   attacks.scale_to_psr(torch.ones(7, dtype=torch.complex64), -6.0))
    sub = {"{ckpt}": tiny_link.path, "{tmp}": str(tmp_path), "{perturbation}": str(p_file)}
    args = [sub.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    extra = ["--out", tmp_path / "out", "--quiet"]
    if args[0] == "train":
        extra += ["--steps", 1, "--batch-size", 10]
    rc, _, err = main(args + extra, capsys)
    assert rc not in (0, None)
    line = error_line(err)
    for w in words:
        assert w in line, line
