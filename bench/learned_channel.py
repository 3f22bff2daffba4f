#!/usr/bin/env python3
"""Learning a link over a channel without its model: RA-GAN against known-channel and model-free training.

The setting of the residual-aided GAN (RA-GAN) paper: M=16, n=7 complex,
trained at Eb/N0 = 3 dB, batch 320, Adam, L2 weight penalty lambda = 0.01.
Every link is scored on one Eb/N0 grid (0..8 dB) with the same evaluation
seed; each curve gives the Eb/N0 where it reaches BLER 1e-3 and its gap to
known-channel training there.

What runs (one command, `make bench-learned-channel`):
  AWGN  (a) known channel: model-aware training through the true AWGN;
        (b) model-free (policy-gradient transmitter, recipe of
            bench/model_free.py);
        (c) plain GAN: plain generator y = G(x, z), no L2;
        (d) RA-GAN: residual generator y = x + G_R(x, z), L2 on all four
            networks, pair discriminator D(x, y);
        (e) residual only (L2 off) and (f) L2 only (plain generator);
        (g) RA-GAN with the output-only discriminator D(y), the paper's
            literal form;
        (h) RA-GAN with this project's recipe (below), for comparison.
        (c)-(g) follow Algorithm 1 of the paper (channel_gan_training.
        paper_recipe: Xavier initialisation, one D, G, R and T step per batch;
        the paper fixes no learning rate: G and D at a constant 1e-3, T and R
        at the project's 5e-3 with cosine decay).
  PA    ('pa': Saleh power amplifier, fixed phase offset, AWGN) known
        channel (model-aware through the true, differentiable PA chain);
        RA-GAN with the paper's recipe; RA-GAN with this project's recipe
        (channel_gan_training.tracking_recipe: probes and more D steps, so
        the generator learns the amplifier around the moving constellation,
        not only at it); and the mismatch baseline: the AWGN-trained link of
        (a) used on 'pa'.
Bars: RA-GAN within 0.5 dB of known-channel training at BLER 1e-3 on AWGN;
on PA, RA-GAN (project recipe) within 1 dB of the known channel and better
than the mismatch baseline. Training time of every method is measured in
the same run.

Writes bench/out/learned_channel.json and the figures
bench/out/learned_channel_{awgn,pa,losses,scatter_awgn,scatter_pa}.png, and
the files the learned-channel example flowgraphs read, in
runs/learned_channel/: link.safetensors (the RA-GAN link trained on 'pa')
and channel_model.safetensors (its generator and discriminator).
--scale multiplies every training length (the tests run it tiny).
"""
import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch

from gnuradio.e2e.core import (channel_dataset, channel_gan, channel_gan_training, channels, checkpoint, config,
                               evaluation, fidelity, model_free, models, plots, prng, snr, training)
from gnuradio.e2e.core.learned import LearnedLink

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M, N = 16, 7
TRAIN_EBN0_DB = 3.0
GRID = [float(e) for e in range(9)]
TARGET_BLER = 1e-3
LINK = config.LinkConfig(M=M, n=N, mode="complex")
GAN_STEPS = 5000  # 160 epochs of the paper's N_train = 10000 samples at batch 320
PAPER = channel_gan_training.paper_recipe()
TRACKING = channel_gan_training.tracking_recipe()
# Algorithm 1 as train_gan_link runs it ('l2' and the generator vary per method). The paper fixes no
# learning rate: T and R take the project's (TRACKING), G and D the paper recipe's constant one.
ALGORITHM_1 = dict(batch_size=PAPER["batch_size"], lr=PAPER["lr"], l2=PAPER["l2"], xavier=PAPER["xavier"],
                   link_lr=TRACKING["link_lr"], link_lr_schedule=TRACKING["link_lr_schedule"])
# Known-channel training: the repo's model-aware recipe at the paper's batch size.
KNOWN = dict(steps=GAN_STEPS, batch_size=PAPER["batch_size"], lr=training.DEFAULT_LR,
             lr_schedule=training.DEFAULT_SCHEDULE)
MODEL_FREE_BATCHES = 10000
# (generator, discriminator, l2) of the AWGN methods (c)-(g), all Algorithm 1.
AWGN_GANS = {
    "plain GAN": ("plain", "pair", 0.0),
    "RA-GAN": ("residual", "pair", PAPER["l2"]),
    "residual only (no L2)": ("residual", "pair", 0.0),
    "L2 only (plain generator)": ("plain", "pair", PAPER["l2"]),
    "RA-GAN, output-only D": ("residual", "output", PAPER["l2"]),
}
SCATTER_MESSAGES = [0, 1, 2, 3]
SCATTER_POSITIONS = [0, 1, 2]
SCATTER_DRAWS = 200
FIDELITY_ROWS = 4000
PROGRESS = [True]


def log(text):
    if PROGRESS[0]:
        print(text, file=sys.stderr, flush=True)


def scaled(steps, scale):
    return max(20, int(steps * scale))


def model_free_recipe():
    """ModelFreeParams of bench/model_free.py (MODEL_FREE), so the two benchmarks cannot drift apart."""
    spec = importlib.util.spec_from_file_location("bench_model_free", os.path.join(ROOT, "bench", "model_free.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MODEL_FREE


def train_known(channel, scale, seed):
    enc, dec = models.build(LINK, seed=seed)
    t0 = time.time()
    hist = training.train_model_aware(enc, dec, channel, TRAIN_EBN0_DB, seed=seed, progress_bar=PROGRESS[0],
                                      desc="known channel", **dict(KNOWN, steps=scaled(KNOWN["steps"], scale)))
    return enc, dec, time.time() - t0, hist


def train_model_free(scale, seed, channel=None):
    enc, dec = models.build(LINK, seed=seed)
    params = dataclasses.replace(model_free_recipe(), seed=seed)
    t0 = time.time()
    model_free.train_model_free(enc, dec, channel or channels.AWGN(), TRAIN_EBN0_DB, params,
                                batches=max(40, int(MODEL_FREE_BATCHES * scale)), progress_bar=PROGRESS[0])
    return enc, dec, time.time() - t0, params


def train_gan(channel, generator, discriminator, scale, seed, recipe):
    """(encoder, decoder, G, D, seconds, history, channel model config) of one train_gan_link run."""
    enc, dec = models.build(LINK, seed=seed)
    cfg = channel_gan.ChannelModelConfig(n=N, M=M, generator=generator, discriminator=discriminator,
                                         ebn0_db=TRAIN_EBN0_DB)
    G, D = channel_gan.build_channel_model(cfg, seed=seed)
    t0 = time.time()
    hist = channel_gan_training.train_gan_link(enc, dec, G, D, channel, TRAIN_EBN0_DB, steps=scaled(GAN_STEPS, scale),
                                               seed=seed, progress_bar=PROGRESS[0], **recipe)
    return enc, dec, G, D, time.time() - t0, hist, cfg


def ebn0_at(curve, target=TARGET_BLER):
    """Eb/N0 (dB) where a BLER curve crosses `target` (log-linear between grid points), or None."""
    return evaluation.db_gap([(0.0, target)], curve)[0]["reference_ebn0_db"]


def bler_at(curve, ebn0_db):
    return next(p for p in curve if p["ebn0_db"] == ebn0_db)


def table(curves, reference):
    """Per method: BLER at 3 and 6 dB, Eb/N0 at TARGET_BLER and its gap to `reference` (None: not reached)."""
    ref = ebn0_at(curves[reference])
    rows = {}
    for name, curve in curves.items():
        e = ebn0_at(curve)
        rows[name] = {"bler_3db": bler_at(curve, 3.0)["bler"], "bler_3db_ci95": bler_at(curve, 3.0)["bler_ci95"],
                      "bler_6db": bler_at(curve, 6.0)["bler"], "bler_6db_ci95": bler_at(curve, 6.0)["bler_ci95"],
                      "ebn0_db_at_target": e, "gap_db": None if e is None or ref is None else e - ref}
    return rows


def within(rows, name, reference, limit):
    e, r = rows[name]["ebn0_db_at_target"], rows[reference]["ebn0_db_at_target"]
    gap = None if e is None or r is None else e - r
    return {"ebn0_db": e, "reference_ebn0_db": r, "gap_db": gap, "limit_db": limit,
            "pass": gap is not None and gap <= limit}


def better(curves, rows, name, other):
    """name beats other: lower BLER at the training point (95% intervals disjoint) and needs less Eb/N0
    for TARGET_BLER (a curve that never reaches it on the grid needs more than any that does; when
    neither reaches it, lower BLER with disjoint intervals at the grid's last point)."""
    a, b = bler_at(curves[name], TRAIN_EBN0_DB), bler_at(curves[other], TRAIN_EBN0_DB)
    ea, eb = rows[name]["ebn0_db_at_target"], rows[other]["ebn0_db_at_target"]
    if ea is None and eb is None:
        la, lb = bler_at(curves[name], GRID[-1]), bler_at(curves[other], GRID[-1])
        less_ebn0 = la["bler_ci95"][1] < lb["bler_ci95"][0]
    else:
        less_ebn0 = ea is not None and (eb is None or ea < eb)
    return {"bler_at_train": a["bler"], "other_bler_at_train": b["bler"], "ebn0_db": ea, "other_ebn0_db": eb,
            "pass": a["bler_ci95"][1] < b["bler_ci95"][0] and less_ebn0}


def bars(awgn_rows, pa_rows, pa_curves):
    out = [dict(bar="AWGN: RA-GAN (Algorithm 1) within 0.5 dB of known-channel training at BLER 1e-3",
                **within(awgn_rows, "RA-GAN", "known channel", 0.5),
                project_recipe=within(awgn_rows, "RA-GAN, project recipe", "known channel", 0.5))]
    out.append(dict(bar="PA: RA-GAN (project recipe) within 1 dB of known-channel training at BLER 1e-3",
                    **within(pa_rows, "RA-GAN, project recipe", "known channel", 1.0),
                    paper_recipe=within(pa_rows, "RA-GAN, paper recipe", "known channel", 1.0)))
    out.append(dict(bar="PA: RA-GAN (project recipe) better than the AWGN-trained link (mismatch)",
                    **better(pa_curves, pa_rows, "RA-GAN, project recipe", "mismatch (trained on AWGN)"),
                    paper_recipe=better(pa_curves, pa_rows, "RA-GAN, paper recipe", "mismatch (trained on AWGN)")))
    return out


def generated_and_real(channel, G, enc, seed):
    """(x, y_real, y_fake) complex [D, S, n] of SCATTER_DRAWS draws of each SCATTER_MESSAGES message."""
    m = torch.tensor(SCATTER_MESSAGES).repeat_interleave(SCATTER_DRAWS)
    with torch.no_grad():
        x = models.real_to_complex(enc(m))
        n0 = snr.n0_from_ebn0_db(TRAIN_EBN0_DB, M, N)
        y_real = channel(x, n0, prng.torch_generator(seed, prng.EVAL, 100))
        y_fake = channel_gan.LearnedChannel(G)(x, None, prng.torch_generator(seed, prng.EVAL, 101))
    shape = (len(SCATTER_MESSAGES), SCATTER_DRAWS, N)
    return x.reshape(shape).numpy(), y_real.reshape(shape).numpy(), y_fake.reshape(shape).numpy()


def plot_scatter(channel, G, enc, seed, path, title):
    x, y_real, y_fake = generated_and_real(channel, G, enc, seed)
    fig = plots._new_figure((3.2 * len(SCATTER_MESSAGES), 3.6))
    axes = fig.subplots(1, len(SCATTER_MESSAGES), sharex=True, sharey=True)
    for ax, k in zip(axes, range(len(SCATTER_MESSAGES))):
        for c, pos in enumerate(SCATTER_POSITIONS):
            color = f"C{c}"
            ax.scatter(y_real[k, :, pos].real, y_real[k, :, pos].imag, s=4, color=color, alpha=0.35,
                       label=f"real, symbol {pos}")
            ax.scatter(y_fake[k, :, pos].real, y_fake[k, :, pos].imag, s=10, color=color, marker="x",
                       linewidths=0.6, alpha=0.5, label=f"generated, symbol {pos}")
            ax.scatter([x[k, 0, pos].real], [x[k, 0, pos].imag], s=70, color=color, marker="*",
                       edgecolors="k", linewidths=0.8, zorder=5)
            # The conditional means, which the noise hides: where the channel and the model put the symbol.
            for y, marker in ((y_real, "o"), (y_fake, "X")):
                mean = y[k, :, pos].mean()
                ax.scatter([mean.real], [mean.imag], s=60, color=color, marker=marker, edgecolors="k",
                           linewidths=0.8, zorder=6)
        ax.set_title(f"message {SCATTER_MESSAGES[k]}")
        ax.set_xlabel("in-phase")
        ax.grid(True, alpha=0.3)
        ax.set_aspect("equal", adjustable="box")
    axes[0].set_ylabel("quadrature")
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{title}\n(stars: sent; large o and X: mean of real and of generated)")
    return plots._save(fig, path)


def plot_losses(histories, path):
    """Fig. 4 of the paper: transmitter and receiver loss against epochs, plain GAN against RA-GAN."""
    fig = plots._new_figure((10, 4))
    axes = fig.subplots(1, 2)
    per_epoch = ALGORITHM_1["batch_size"] / PAPER["n_train"]
    for ax, key, label in zip(axes, ("transmitter_loss", "receiver_loss"), ("transmitter", "receiver")):
        for name, h in histories.items():
            ax.plot(np.asarray(h["step"]) * per_epoch, h[key], label=name, lw=1.0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch (10000 samples)")
        ax.set_ylabel(f"{label} loss (cross-entropy)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"AWGN, Eb/N0 = {TRAIN_EBN0_DB:g} dB: training losses")
    return plots._save(fig, path)


def fidelity_of(channel, G, enc, seed):
    """fidelity_report of the learned channel on held-out pairs: the link's codewords and i.i.d. CN(0, 1) inputs."""
    out = {}
    learned = channel_gan.LearnedChannel(G)
    for name, encoder in (("codewords", enc), ("iid_inputs", None)):
        held = channel_dataset.simulate_dataset(channel, N, TRAIN_EBN0_DB, FIDELITY_ROWS, M=M, encoder=encoder,
                                                seed=seed + 1000)
        with torch.no_grad():
            fake = learned(held.x, None, prng.torch_generator(seed, prng.EVAL, 102))
        out[name] = fidelity.fidelity_report(held.x, held.y, fake, held.messages, seed=seed)
    return out


def run(args):
    seed, scale = args.seed, args.scale
    t_all = time.time()
    seconds, histories = {"awgn": {}, "pa": {}}, {}
    awgn, pa = channels.AWGN(), channels.by_name("pa")
    links = {"awgn": {}, "pa": {}}

    log("AWGN: known channel, model-free")
    enc, dec, secs, hist = train_known(awgn, scale, seed)
    links["awgn"]["known channel"], seconds["awgn"]["known channel"] = (enc, dec), secs
    enc, dec, secs, mf_params = train_model_free(scale, seed)
    links["awgn"]["model-free"], seconds["awgn"]["model-free"] = (enc, dec), secs
    gans = {}
    for name, (generator, discriminator, l2) in AWGN_GANS.items():
        log(f"AWGN: {name}")
        enc, dec, G, D, secs, hist, _ = train_gan(awgn, generator, discriminator, scale, seed,
                                                  dict(ALGORITHM_1, l2=l2))
        links["awgn"][name], seconds["awgn"][name], histories[f"AWGN, {name}"] = (enc, dec), secs, hist
        gans[name] = G
    log("AWGN: RA-GAN, project recipe")
    enc, dec, _, _, secs, hist, _ = train_gan(awgn, "residual", "pair", scale, seed, TRACKING)
    links["awgn"]["RA-GAN, project recipe"], seconds["awgn"]["RA-GAN, project recipe"] = (enc, dec), secs
    histories["AWGN, RA-GAN, project recipe"] = hist

    log("PA: known channel, RA-GAN (paper recipe, project recipe)")
    enc, dec, secs, _ = train_known(pa, scale, seed)
    links["pa"]["known channel"], seconds["pa"]["known channel"] = (enc, dec), secs
    enc, dec, G_paper, _, secs, hist, _ = train_gan(pa, "residual", "pair", scale, seed, ALGORITHM_1)
    links["pa"]["RA-GAN, paper recipe"], seconds["pa"]["RA-GAN, paper recipe"] = (enc, dec), secs
    histories["PA, RA-GAN, paper recipe"] = hist
    enc_pa, dec_pa, G_pa, D_pa, secs, hist, cfg_pa = train_gan(pa, "residual", "pair", scale, seed, TRACKING)
    links["pa"]["RA-GAN, project recipe"], seconds["pa"]["RA-GAN, project recipe"] = (enc_pa, dec_pa), secs
    histories["PA, RA-GAN, project recipe"] = hist
    log("PA: model-free, plain GAN (project recipe)")
    enc, dec, secs, _ = train_model_free(scale, seed, pa)
    links["pa"]["model-free"], seconds["pa"]["model-free"] = (enc, dec), secs
    enc, dec, _, _, secs, hist, _ = train_gan(pa, "plain", "pair", scale, seed, dict(TRACKING, l2=0.0, gan_l2=0.0))
    links["pa"]["plain GAN, project recipe"], seconds["pa"]["plain GAN, project recipe"] = (enc, dec), secs
    histories["PA, plain GAN, project recipe"] = hist
    links["pa"]["mismatch (trained on AWGN)"] = links["awgn"]["known channel"]

    log("evaluating")
    t0 = time.time()
    ev = dict(min_errors=args.min_errors, max_blocks=args.max_blocks, seed=seed, progress_bar=PROGRESS[0])
    curves = {ch_name: {name: evaluation.evaluate_bler(LearnedLink(e, d, name=name), GRID, channel=ch, **ev)
                        for name, (e, d) in links[ch_name].items()}
              for ch_name, ch in (("awgn", awgn), ("pa", pa))}
    seconds["evaluation"] = time.time() - t0
    rows = {ch_name: table(curves[ch_name], "known channel") for ch_name in curves}
    checks = bars(rows["awgn"], rows["pa"], curves["pa"])

    log("fidelity, figures, files")
    fid = {"pa": fidelity_of(pa, G_pa, enc_pa, seed),
           "pa, paper recipe": fidelity_of(pa, G_paper, links["pa"]["RA-GAN, paper recipe"][0], seed),
           "awgn": fidelity_of(awgn, gans["RA-GAN"], links["awgn"]["RA-GAN"][0], seed)}
    os.makedirs(args.out, exist_ok=True)
    figures = {
        "awgn": plots.plot_bler(curves["awgn"], os.path.join(args.out, "learned_channel_awgn.png"),
                                title=f"AWGN, M={M}, n={N}, trained at {TRAIN_EBN0_DB:g} dB",
                                baselines=["known channel"]),
        "pa": plots.plot_bler(curves["pa"], os.path.join(args.out, "learned_channel_pa.png"),
                              title=f"Saleh PA + phase + AWGN ('pa'), M={M}, n={N}, trained at {TRAIN_EBN0_DB:g} dB",
                              baselines=["known channel", "mismatch (trained on AWGN)"]),
        "losses": plot_losses({k: histories[f"AWGN, {k}"] for k in ("plain GAN", "RA-GAN")},
                              os.path.join(args.out, "learned_channel_losses.png")),
        "scatter_awgn": plot_scatter(awgn, gans["RA-GAN"], links["awgn"]["RA-GAN"][0], seed,
                                     os.path.join(args.out, "learned_channel_scatter_awgn.png"),
                                     "AWGN: real vs RA-GAN-generated received symbols"),
        "scatter_pa": plot_scatter(pa, G_pa, enc_pa, seed, os.path.join(args.out, "learned_channel_scatter_pa.png"),
                                   "PA: real vs RA-GAN-generated received symbols"),
    }
    os.makedirs(args.runs, exist_ok=True)
    meta = {"ebn0_db": TRAIN_EBN0_DB, "channel": "pa", "method": "ra-gan", "written_by": "bench/learned_channel.py"}
    checkpoint.save_link(os.path.join(args.runs, "link.safetensors"), LINK, enc_pa, dec_pa, metadata=meta)
    channel_gan.save_channel_model(os.path.join(args.runs, "channel_model.safetensors"), cfg_pa, G_pa, D_pa,
                                   metadata=dict(meta, steps=scaled(GAN_STEPS, scale)))
    return {
        "setting": {"M": M, "n": N, "mode": "complex", "train_ebn0_db": TRAIN_EBN0_DB, "grid": GRID,
                    "target_bler": TARGET_BLER, "scale": scale, "seed": seed, "min_errors": args.min_errors,
                    "max_blocks": args.max_blocks, "link": LINK.to_dict(),
                    "recipes": {"gan_steps": scaled(GAN_STEPS, scale), "algorithm_1": ALGORITHM_1,
                                "tracking (PA, RA-GAN)": TRACKING, "awgn_gans": AWGN_GANS,
                                "known": dict(KNOWN, steps=scaled(KNOWN["steps"], scale)),
                                "model_free": dict(dataclasses.asdict(mf_params),
                                                   batches=max(40, int(MODEL_FREE_BATCHES * scale)))}},
        "bars": checks, "table": rows,
        "seconds": {k: ({m: round(s, 1) for m, s in v.items()} if isinstance(v, dict) else round(v, 1))
                    for k, v in seconds.items()},
        "total_seconds": round(time.time() - t_all, 1),
        "fidelity": fid, "figures": figures, "curves": curves, "histories": histories,
        "files": {"link": os.path.join(args.runs, "link.safetensors"),
                  "channel_model": os.path.join(args.runs, "channel_model.safetensors")},
    }


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every training length")
    p.add_argument("--min-errors", type=int, default=200)
    p.add_argument("--max-blocks", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "learned_channel"),
                   help="folder for the link and channel model the example flowgraphs read")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-stage lines")
    args = p.parse_args(argv)
    PROGRESS[0] = not args.quiet
    torch.set_num_threads(1)
    report = run(args)
    path = os.path.join(args.out, "learned_channel.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    for ch_name, rows in report["table"].items():
        print(f"{ch_name}: BLER at 3 dB, at 6 dB; Eb/N0 at BLER {TARGET_BLER:g}; gap to known channel; training s")
        for name, r in rows.items():
            secs = report["seconds"][ch_name].get(name)
            print(f"  {name:32s} {r['bler_3db']:9.3g} {r['bler_6db']:9.3g} {_fmt(r['ebn0_db_at_target'], '6.2f')} dB "
                  f"{_fmt(r['gap_db'], '+6.2f')} dB {_fmt(secs, '7.1f')}")
    for bar in report["bars"]:
        print(f"[{'pass' if bar['pass'] else 'FAIL'}] {bar['bar']}")
        print("    " + ", ".join(f"{k}={_fmt(v, '.3g') if isinstance(v, float) or v is None else v}"
                                 for k, v in bar.items() if k not in ("bar", "pass", "paper_recipe", "project_recipe")))
        for other in ("paper_recipe", "project_recipe"):
            if other in bar:
                print(f"    {other.replace('_', ' ')}: gap_db={_fmt(bar[other].get('gap_db'), '.3g')}, "
                      f"pass={bar[other]['pass']}")
    print(f"wrote {path} and the figures in {args.out}; files in {args.runs} ({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
