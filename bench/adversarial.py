#!/usr/bin/env python3
"""Adversarial attacks on learned receivers, and robust training against them.

The setting of Sadeghi & Larsson and of the GAN-based defense: M=16, n=7,
complex mode, trained at Eb/N0 = 8.5 dB on AWGN; every attack at PSR = -6 dB
(perturbation energy per message a quarter of the signal's).

What runs (one command, `make bench-adversarial`):
  1. the regular link: encoder and MLP decoder trained together; a CNN decoder
     trained on the same (frozen) transmitter;
  2. robust receivers from each regular decoder, transmitter frozen:
     adversarial training on a fixed set of FGM perturbations, and the
     GAN-based defense (a generator adversary, consensus optimisation);
  3. the attacks, each at PSR -6 dB: Gaussian jamming; the white-box universal
     perturbation crafted on the attacked decoder itself; the black-box one,
     crafted on a substitute decoder the attacker trained on the observed
     transmitter (another architecture and seed), applied to every target;
     Hamming (7,4) with hard decisions under jamming and under the universal
     perturbation crafted on its own (soft, differentiable) decoder;
  4. BLER of every receiver under every attack on one Eb/N0 grid and the same
     noise, the quality bars, and one figure per paper figure:
       fig3   the regular autoencoder and Hamming (7,4) hard: no attack,
              jamming, white-box universal
       fig5a  white-box universal on regular / adversarial / GAN-defended,
              MLP receivers (clean curves dashed); fig5b the same, CNN
       fig6a  black-box (substitute) on the three MLP receivers; fig6b, CNN

Writes bench/out/adversarial.json and bench/out/adversarial_fig*.png, and
the files the adversarial example flowgraphs read, in runs/adversarial/:
regular.safetensors (the link), defended.safetensors (the regular
transmitter with the GAN-defended MLP decoder), universal.safetensors (the
white-box perturbation on the regular link), blackbox.safetensors (the
substitute's perturbation), universal_hamming.safetensors and
adversary.safetensors (the GAN defense's generator, a generative attack).
--scale multiplies every training length (the tests run it tiny).
"""
import argparse
import copy
import dataclasses
import json
import os
import sys
import time

import torch

from gnuradio.e2e.core import (adversary, attacks, baselines, checkpoint, config, defense, evaluation, models,
                               perturbation, plots, prng, robustness, training)
from gnuradio.e2e.core.channels import AWGN
from gnuradio.e2e.core.learned import LearnedLink

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M, N = 16, 7
TRAIN_EBN0_DB = 8.5
PSR_DB = -6.0
GRID = [0.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0, 12.0]
BAR_POINTS = [8.0, 9.0, 10.0]  # where the attack bars are read
LINK = config.LinkConfig(M=M, n=N, mode="complex", decoder_hidden=(64, 64))
CNN_HIDDEN = (32, 32)
SUBSTITUTE_HIDDEN = (32,)  # the attacker's own receiver: another width, another seed
REGULAR = dict(steps=5000, batch_size=1000, lr=1e-2, lr_schedule="cosine", restarts=2)
DECODER_ONLY = dict(steps=5000, batch_size=1000, lr=1e-2, lr_schedule="cosine")
DEFENSE = dict(steps=3000, batch_size=1000, lr=1e-3)
SELECTION = [2, 5]  # robust receivers: runs per defense, candidates per run (fit_robust_receiver)
PROGRESS = [True]


def log(text):
    print(text, file=sys.stderr, flush=True)


def steps(recipe, scale):
    return max(20, int(recipe["steps"] * scale))


def train_regular(scale, seed):
    r = dict(REGULAR, steps=steps(REGULAR, scale))
    enc, dec, report = training.fit_link(LINK, AWGN(), TRAIN_EBN0_DB, seed=seed, progress_bar=PROGRESS[0], **r)
    return enc, dec, report["runs"][report["chosen"]]["history"]


def train_decoder(enc, cfg, scale, seed):
    """A fresh decoder of `cfg` trained on the frozen transmitter `enc`."""
    _, dec = models.build(cfg, seed=seed)
    r = dict(DECODER_ONLY, steps=steps(DECODER_ONLY, scale))
    training.train_model_aware(enc, dec, AWGN(), TRAIN_EBN0_DB, train=("decoder",), seed=seed,
                               progress_bar=PROGRESS[0], desc=f"decoder {cfg.decoder_architecture}", **r)
    return dec


def defend(enc, dec, scale, seed, architecture):
    """(adversarially trained decoder, GAN-defended decoder, generator, reports), each chosen by
    defense.fit_robust_receiver from RESTARTS runs on held-out data; dec itself is not modified."""
    r = dict(DEFENSE, steps=steps(DEFENSE, scale))
    common = dict(restarts=SELECTION[0], snapshots=SELECTION[1], seed=seed, progress_bar=PROGRESS[0], **r)
    t0 = time.time()
    adv, _, rep_adv = defense.fit_robust_receiver("adversarial", enc, dec, AWGN(), TRAIN_EBN0_DB, PSR_DB, **common)
    t_adv = time.time() - t0
    t0 = time.time()
    gcfg = adversary.AdversaryConfig(M=M, n=N, mode="complex", architecture=architecture, psr_db=PSR_DB)
    gan, gen, rep_gan = defense.fit_robust_receiver("gan-defense", enc, dec, AWGN(), TRAIN_EBN0_DB, PSR_DB,
                                                    adversary_config=gcfg, **common)
    t_gan = time.time() - t0
    return adv, gan, gen, {"adversarial": rep_adv, "gan": rep_gan,
                           "seconds": {"adversarial": round(t_adv, 1), "gan": round(t_gan, 1)}}


def craft(decoder, codebook, mode="complex", shift_invariant=False, seed=0, messages=2000):
    return robustness.craft_universal(decoder, codebook, TRAIN_EBN0_DB, PSR_DB, mode=mode, messages=messages,
                                      shift_invariant=shift_invariant, seed=seed, progress_bar=False)


def ratio(a, b):
    return None if b == 0 else a / b


def bars(curves, clean_gap):
    """The quality bars, each with its measured values and pass/fail."""
    out = []
    at = robustness.bler_at
    # 1. the universal perturbation against jamming, on the regular MLP autoencoder
    rows = []
    for e in BAR_POINTS:
        u, j = at(curves["regular MLP, white-box"], e), at(curves["regular MLP, jamming"], e)
        rows.append({"ebn0_db": e, "white_box": u["bler"], "jamming": j["bler"], "ratio": ratio(u["bler"], j["bler"]),
                     "intervals_disjoint": u["bler_ci95"][0] > j["bler_ci95"][1]})
    out.append({"bar": "white-box universal >= 5x equal-power jamming at 8-10 dB (regular MLP autoencoder)",
                "rows": rows, "pass": all(r["ratio"] is None or r["ratio"] >= 5 for r in rows)
                and all(r["jamming"] > 0 or r["white_box"] > 0 for r in rows)})
    # 2. under the attack the autoencoder is worse than Hamming hard under the same attack. "The same
    # attack" read literally: the same signal (the autoencoder's universal perturbation, of which a BPSK
    # receiver reads the real parts). Beside it, for the record, Hamming under the strongest equal-power
    # attacks aimed at it (real-part jamming, a universal perturbation crafted on its own decoder).
    rows = []
    for e in BAR_POINTS:
        h = {k: at(curves[f"Hamming (7,4) hard, {k}"], e)["bler"]
             for k in ("autoencoder's perturbation", "complex jamming", "white-box", "jamming")}
        rows.append({"ebn0_db": e, "autoencoder_white_box": at(curves["regular MLP, white-box"], e)["bler"],
                     "hamming_same_perturbation": h["autoencoder's perturbation"],
                     "hamming_complex_jamming": h["complex jamming"],
                     "hamming_own_white_box": h["white-box"], "hamming_real_jamming": h["jamming"]})
    out.append({"bar": "under the white-box attack the autoencoder is worse than Hamming (7,4) hard under the same "
                       "attack signal, 8-10 dB", "rows": rows,
                "pass": all(r["autoencoder_white_box"] > r["hamming_same_perturbation"] for r in rows),
                "against_attacks_aimed_at_hamming": all(
                    r["autoencoder_white_box"] > max(r["hamming_own_white_box"], r["hamming_real_jamming"])
                    for r in rows)})
    # 3. without attack the autoencoder beats Hamming hard
    rows = [{"ebn0_db": p["ebn0_db"], "autoencoder": p["bler"], "hamming_hard": h["bler"]}
            for p, h in zip(curves["regular MLP, no attack"], curves["Hamming (7,4) hard, no attack"])]
    out.append({"bar": "without attack the autoencoder beats Hamming (7,4) hard at every Eb/N0 with errors",
                "rows": rows, "pass": all(r["autoencoder"] < r["hamming_hard"] for r in rows if r["hamming_hard"] > 0)})
    for arch in ("MLP", "CNN"):
        # 4. GAN under white-box within 2x of adversarial training
        rows = []
        for e in BAR_POINTS:
            g, a = at(curves[f"GAN-defended {arch}, white-box"], e), at(curves[f"adversarial {arch}, white-box"], e)
            rows.append({"ebn0_db": e, "gan": g["bler"], "adversarial": a["bler"], "ratio": ratio(g["bler"], a["bler"])})
        out.append({"bar": f"{arch}: GAN-defended within 2x of adversarially trained under the white-box attack, "
                           "8-10 dB", "rows": rows,
                    "pass": all(r["gan"] <= 2 * r["adversarial"] for r in rows)})
        # 5. GAN better than adversarial under the black-box attack
        rows = []
        for e in BAR_POINTS:
            g, a = at(curves[f"GAN-defended {arch}, black-box"], e), at(curves[f"adversarial {arch}, black-box"], e)
            rows.append({"ebn0_db": e, "gan": g["bler"], "adversarial": a["bler"],
                         "gan_ci95": g["bler_ci95"], "adversarial_ci95": a["bler_ci95"]})
        out.append({"bar": f"{arch}: GAN-defended better than adversarially trained under the black-box attack, "
                           "8-10 dB", "rows": rows, "pass": all(r["gan"] < r["adversarial"] for r in rows)})
        # 6. GAN clean within 0.3 dB of the regular receiver
        gap = clean_gap[arch]
        out.append({"bar": f"{arch}: GAN-defended without attack within 0.3 dB of the regular receiver (4-10 dB)",
                    "worst_gap_db": gap, "pass": gap is not None and gap <= 0.3})
    return out


FIGURES = {
    "fig3": ("regular autoencoder (MLP) and Hamming (7,4) hard, PSR -6 dB",
             ["regular MLP, no attack", "regular MLP, jamming", "regular MLP, white-box",
              "Hamming (7,4) hard, no attack", "Hamming (7,4) hard, autoencoder's perturbation",
              "Hamming (7,4) hard, complex jamming", "Hamming (7,4) hard, white-box",
              "Hamming (7,4) hard, jamming"]),
    "fig5a": ("white-box universal attack, MLP receivers, PSR -6 dB",
              [f"{d} MLP, {a}" for a in ("white-box", "no attack") for d in ("regular", "adversarial", "GAN-defended")]),
    "fig5b": ("white-box universal attack, CNN receivers, PSR -6 dB",
              [f"{d} CNN, {a}" for a in ("white-box", "no attack") for d in ("regular", "adversarial", "GAN-defended")]),
    "fig6a": ("black-box (substitute) universal attack, MLP receivers, PSR -6 dB",
              [f"{d} MLP, {a}" for a in ("black-box", "no attack") for d in ("regular", "adversarial", "GAN-defended")]),
    "fig6b": ("black-box (substitute) universal attack, CNN receivers, PSR -6 dB",
              [f"{d} CNN, {a}" for a in ("black-box", "no attack") for d in ("regular", "adversarial", "GAN-defended")]),
}


def plot_figures(curves, out):
    paths = {}
    for fig, (title, names) in FIGURES.items():
        path = os.path.join(out, f"adversarial_{fig}.png")
        plots.plot_bler({k: curves[k] for k in names}, path, title=title,
                        baselines=[k for k in names if k.endswith("no attack")])
        paths[fig] = path
    return paths


def save_for_examples(runs, enc, dec, gan_dec, gen, perturbations):
    os.makedirs(runs, exist_ok=True)
    meta = {"ebn0_db": TRAIN_EBN0_DB, "method": "model-aware", "written_by": "bench/adversarial.py"}
    checkpoint.save_link(os.path.join(runs, "regular.safetensors"), LINK, enc, dec, metadata=meta)
    checkpoint.save_link(os.path.join(runs, "defended.safetensors"), LINK, enc, gan_dec,
                         metadata=dict(meta, method="gan-defense", psr_db=PSR_DB))
    adversary.save_adversary(os.path.join(runs, "adversary.safetensors"), gen.config, gen, metadata=meta)
    for name, (p, mode, method, crafted_on, shift_invariant) in perturbations.items():
        cfg = perturbation.PerturbationConfig(M=M, n=N, mode=mode, psr_db=PSR_DB, method=method,
                                              shift_invariant=shift_invariant, crafted_on=crafted_on,
                                              ebn0_db=TRAIN_EBN0_DB)
        perturbation.save_perturbation(os.path.join(runs, f"{name}.safetensors"), cfg, p)


def run(args):
    seed = args.seed
    t_all = time.time()
    timings = {}
    t0 = time.time()
    enc, dec_mlp, h_regular = train_regular(args.scale, seed)
    timings["regular link"] = time.time() - t0
    t0 = time.time()
    dec_cnn = train_decoder(enc, dataclasses.replace(LINK, decoder_architecture="cnn", decoder_hidden=CNN_HIDDEN),
                            args.scale, prng.derived_seed(seed, prng.INIT, 100))
    timings["regular CNN decoder"] = time.time() - t0
    t0 = time.time()
    substitute = train_decoder(enc, dataclasses.replace(LINK, decoder_hidden=SUBSTITUTE_HIDDEN), args.scale,
                               prng.derived_seed(seed, prng.INIT, 200))
    timings["substitute decoder"] = time.time() - t0
    receivers, histories = {}, {}
    for arch, dec in (("MLP", dec_mlp), ("CNN", dec_cnn)):
        log(f"robust training, {arch} receivers")
        adv, gan, gen, hist = defend(enc, dec, args.scale, seed, arch.lower())
        receivers.update({f"regular {arch}": dec, f"adversarial {arch}": adv, f"GAN-defended {arch}": gan})
        histories[arch] = hist
        timings[f"adversarial training {arch}"] = hist["seconds"]["adversarial"]
        timings[f"GAN defense {arch}"] = hist["seconds"]["gan"]
        if arch == "MLP":
            gan_mlp, gen_mlp = gan, gen

    log("crafting the attacks")
    t0 = time.time()
    hamming = baselines.hamming74_link("hard")
    blackbox = craft(substitute, enc, seed=seed, messages=args.attack_messages)
    white = {name: craft(d, enc, seed=seed, messages=args.attack_messages) for name, d in receivers.items()}
    hamming_p = craft(attacks.hamming_soft_decoder(), hamming.codebook, mode="real", seed=seed,
                      messages=args.attack_messages)
    timings["crafting (8 universal perturbations)"] = time.time() - t0

    log("evaluating")
    t0 = time.time()
    ev = dict(min_errors=args.min_errors, max_blocks=args.max_blocks, seed=seed, progress_bar=PROGRESS[0])
    curves = {}
    for name, d in receivers.items():
        link = {name: LearnedLink(enc, d, name=name)}
        chans = robustness.attack_channels(PSR_DB, {"white-box": white[name], "black-box": blackbox}, seed=seed)
        curves.update(robustness.evaluate_attacks(link, chans, GRID, **ev))
    chans = robustness.attack_channels(PSR_DB, {"white-box": hamming_p}, mode="real", seed=seed)
    # The very signals that attack the autoencoder, as they reach a BPSK receiver (real parts only):
    # the autoencoder's universal perturbation and complex Gaussian jamming of the same PSR.
    chans["autoencoder's perturbation"] = attacks.Perturbed(AWGN(), robustness.RealPart(white["regular MLP"]))
    chans["complex jamming"] = attacks.Perturbed(AWGN(), robustness.RealPart(
        attacks.Jamming(PSR_DB, "complex", prng.torch_generator(seed, prng.JAMMING, 1))))
    curves.update(robustness.evaluate_attacks({"Hamming (7,4) hard": hamming}, chans, GRID, **ev))
    timings["evaluation"] = time.time() - t0

    clean_gap = {arch: evaluation.max_gap_db(curves[f"GAN-defended {arch}, no attack"],
                                             curves[f"regular {arch}, no attack"], (4.0, 10.0))
                 for arch in ("MLP", "CNN")}
    checks = bars(curves, clean_gap)
    os.makedirs(args.out, exist_ok=True)
    figures = plot_figures(curves, args.out)
    chosen = histories["MLP"]["gan"]["runs"][histories["MLP"]["gan"]["chosen"]["run"]]["history"]
    plots.plot_loss({"step": chosen["step"], "loss": chosen["decoder_loss"]},
                    os.path.join(args.out, "adversarial_gan_loss.png"), title="GAN defense, MLP: decoder loss")
    save_for_examples(args.runs, enc, dec_mlp, gan_mlp, gen_mlp, {
        "universal": (white["regular MLP"], "complex", "universal", "regular.safetensors", False),
        "blackbox": (blackbox, "complex", "universal", "substitute decoder", False),
        "universal_hamming": (hamming_p, "real", "universal", "Hamming (7,4) soft decoder", False)})
    report = {
        "setting": {"M": M, "n": N, "mode": "complex", "train_ebn0_db": TRAIN_EBN0_DB, "psr_db": PSR_DB,
                    "grid": GRID, "scale": args.scale, "seed": seed, "min_errors": args.min_errors,
                    "max_blocks": args.max_blocks, "attack_messages": args.attack_messages,
                    "recipes": {"regular": REGULAR, "decoder_only": DECODER_ONLY, "defense": DEFENSE,
                                "gan_gamma": defense.DEFAULT_GAMMA, "defense_schedule": defense.DEFAULT_SCHEDULE,
                                "restarts": SELECTION[0], "snapshots": SELECTION[1], "cnn_hidden": CNN_HIDDEN,
                                "substitute_hidden": SUBSTITUTE_HIDDEN}},
        "bars": checks, "clean_gap_db": clean_gap,
        "seconds": {k: round(v, 1) for k, v in timings.items()}, "total_seconds": round(time.time() - t_all, 1),
        "figures": figures, "curves": curves,
        "histories": {"regular": h_regular, **{f"{arch} {k}": v for arch, h in histories.items()
                                                for k, v in h.items() if k != "seconds"}},
    }
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every training length")
    p.add_argument("--min-errors", type=int, default=200)
    p.add_argument("--max-blocks", type=int, default=1_000_000)
    p.add_argument("--attack-messages", type=int, default=2000, help="examples each universal perturbation is crafted on")
    p.add_argument("--restarts", type=int, default=SELECTION[0], help="runs per defense (each kept on held-out data)")
    p.add_argument("--snapshots", type=int, default=SELECTION[1], help="candidate decoders per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "adversarial"),
                   help="folder for the checkpoints and perturbations the example flowgraphs read")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-stage lines")
    args = p.parse_args(argv)
    PROGRESS[0] = not args.quiet
    SELECTION[:] = [args.restarts, args.snapshots]
    torch.set_num_threads(1)
    report = run(args)
    path = os.path.join(args.out, "adversarial.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    for bar in report["bars"]:
        print(f"[{'pass' if bar['pass'] else 'FAIL'}] {bar['bar']}")
        for row in bar.get("rows", []):
            print("    " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                                     if not k.endswith("ci95")))
        if "worst_gap_db" in bar:
            print(f"    worst gap {bar['worst_gap_db']}")
    print(f"wrote {path} and the figures in {args.out}; checkpoints in {args.runs} "
          f"({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
