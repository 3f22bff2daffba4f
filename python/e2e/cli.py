"""gr_e2e: command-line tools for gr-e2e (init, info, train, eval, merge, export-table, attack, capture, adapt-eval).

Every computation lives in core/; this file parses arguments, checks them
with core.validate under the option's name, calls core and writes files.
Bad arguments end with 'gr_e2e: error: ...' naming the option.
"""
import argparse
import json
import math
import os
import sys
import time

from .core import validate

EXAMPLES = """examples:
  # a fresh, untrained link: where every live-training example starts
  gr_e2e init --M 16 --n 7 --out runs/start.safetensors
  # what a checkpoint holds
  gr_e2e info runs/start.safetensors
  # the classic (7,4) autoencoder: 16 messages on 7 real channel uses
  gr_e2e train --M 16 --n 7 --mode real --ebn0-db 3:8 --out runs/real
  # BLER from 0 to 8 dB against Hamming (7,4) and uncoded BPSK
  gr_e2e eval --checkpoint runs/real/checkpoint.safetensors --ebn0-db 0:8:1
  # a link from the two checkpoints live training writes (model_free_tx, model_free_rx)
  gr_e2e merge --transmitter runs/tx.safetensors --receiver runs/rx.safetensors --out runs/link.safetensors
  # the symbol table for GNU Radio's chunks_to_symbols (fast C++ transmitter)
  gr_e2e export-table --checkpoint runs/real/checkpoint.safetensors
  # a universal adversarial perturbation at PSR -6 dB against the link's own decoder, BLER under it
  gr_e2e attack --checkpoint runs/real/checkpoint.safetensors --psr-db -6 --out runs/attack
  # the same link's receiver made robust by the GAN-based defense (transmitter kept)
  gr_e2e train --method gan-defense --start runs/real/checkpoint.safetensors --ebn0-db 8.5 --out runs/gan
  # 10000 (x, y) pairs of the power-amplifier channel at 8 dB: a dataset a channel model is fitted to
  gr_e2e capture --channel pa --ebn0-db 8 --count 10000 --out runs/pa_pairs.safetensors
  # RA-GAN: a link trained through a learned channel model of the PA channel, never differentiating the channel
  gr_e2e train --method ra-gan --channel pa --ebn0-db 8 --out runs/ragan
  # 5 seeds of the (7,4) autoencoder from 0 to 8 dB on a local Dask cluster (--address: a remote one)
  gr_e2e sweep examples/sweep_74.toml --out runs/sweep_74
  # decision regions of an n = 1 link: neural decoder against ML (Voronoi), masses at 0, 4, 8 dB
  # a link over 8 fading subchannels with the MPA attention precoder, then how it adapts to unseen fading
  gr_e2e train --method mpa-tandem --M 16 --subchannels 8 --ebn0-db 8 --out runs/mpa
  gr_e2e adapt-eval --precoder runs/mpa/checkpoint.safetensors --families selective,deep_fade --out runs/adapt
  gr_e2e plot regions --checkpoint runs/regions16/checkpoint.safetensors --out regions.png --ebn0-db 0,4,8
"""


class UsageError(ValueError):
    pass


def _number(text):
    """Option text -> int when integral ('2e7' too), else float; argparse names the option on failure."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if math.isfinite(value) and value == int(value):
        return int(value)
    return value


def parse_widths(text, option):
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise UsageError(f"{option} must be comma-separated layer widths like 64,64, got {text!r}") from None
    return validate.widths(option, widths)


def parse_train_ebn0(text):
    """'7' -> 7.0; '3:8' -> (3.0, 8.0), a uniform range per example."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"--ebn0-db must be a number or a range LO:HI in dB, got {text!r}") from None
    if len(values) == 1 and math.isfinite(values[0]):
        return values[0]
    if len(values) == 2 and all(map(math.isfinite, values)) and values[0] < values[1]:
        return tuple(values)
    raise UsageError(f"--ebn0-db must be a number or a range LO:HI with LO < HI, got {text!r}")


def parse_grid(text):
    """'0:8:1' -> [0, 1, ..., 8] (inclusive); '0,2,5' -> [0, 2, 5]."""
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if not (step > 0 and stop >= start and math.isfinite(stop - start)):
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 6) for i in range(count)]
        grid = [float(p) for p in text.split(",")]
        if not all(map(math.isfinite, grid)):
            raise ValueError
        return grid
    except ValueError:
        raise UsageError(f"--ebn0-db must be START:STOP:STEP or a comma list of dB values, got {text!r}") from None


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# --- train ----------------------------------------------------------------------

def link_config(args):
    """The LinkConfig of train's and init's link options."""
    from .core import config
    for option in ("--M", "--n"):
        validate.integer(option, getattr(args, option[2:]), 1)
    return config.LinkConfig(M=args.M, n=args.n, mode=args.mode, normalization=args.normalization,
                             encoder_hidden=parse_widths(args.encoder_hidden, "--encoder-hidden")
                             if args.encoder_hidden else None,
                             decoder_hidden=parse_widths(args.decoder_hidden, "--decoder-hidden")
                             if args.decoder_hidden else None,
                             receiver_frontend=args.receiver_frontend)


def add_link_options(parser):
    """train's and init's options that shape the networks."""
    parser.add_argument("--M", type=_number, default=16, help="number of messages (k = log2 M bits)")
    parser.add_argument("--n", type=_number, default=7, help="channel uses per message")
    parser.add_argument("--mode", choices=["complex", "real"], default="complex",
                        help="real: n real channel uses (imaginary parts zero), to compare with BPSK codes")
    parser.add_argument("--normalization", choices=["energy", "average"], default="energy",
                        help="energy: every message has energy n; average: mean energy over messages is n")
    parser.add_argument("--encoder-hidden", default="", help="encoder hidden widths, e.g. 16 (default: M)")
    parser.add_argument("--decoder-hidden", default="", help="decoder hidden widths, e.g. 64,64 (default: M)")
    parser.add_argument("--receiver-frontend", choices=["none", "transformer"], default="none",
                        help="transformer: the receiver estimates the block's channel gain and divides it "
                             "out before the decoder (radio transformer network, for --channel rayleigh)")


# --- init / info ------------------------------------------------------------------

INIT_KINDS = {"link": ("autoencoder", ("encoder", "decoder")), "transmitter": ("transmitter", ("encoder",)),
              "receiver": ("receiver", ("decoder",))}


def cmd_init(args):
    from .core import checkpoint, models
    validate.integer("--seed", args.seed, 0)
    cfg = link_config(args)
    kind, networks = INIT_KINDS[args.kind]
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise UsageError(f"--out {args.out}: folder {folder} does not exist")
    if os.path.exists(args.out) and not args.force:
        raise UsageError(f"--out {args.out} exists; --force overwrites it")
    enc, dec = models.build(cfg, seed=args.seed)
    built = {"encoder": enc, "decoder": dec}
    checkpoint.save(args.out, kind, cfg, {name: built[name] for name in networks},
                    metadata={"seed": args.seed, "method": "init (untrained)"})
    print(f"wrote {args.out}: untrained {args.kind} (M={cfg.M}, n={cfg.n}, {cfg.mode} mode, seed {args.seed})")
    return 0


def cmd_info(args):
    from .core import checkpoint
    try:
        c = checkpoint.load(args.checkpoint)
    except checkpoint.CheckpointError:
        from . import cli_channel
        if cli_channel.print_dataset_info(args.checkpoint, args.json):  # a channel dataset, not a checkpoint
            return 0
        raise
    cfg = c.config.to_dict()
    print(f"{c.source}: {c.kind} checkpoint, {os.path.getsize(args.checkpoint)} bytes")
    print("config: " + ", ".join(f"{k}={v}" for k, v in sorted(cfg.items())))
    # state_dict, not parameters(): a perturbation file stores its values as a buffer.
    counts = {name: sum(v.numel() for v in module.state_dict().values()) for name, module in c.networks.items()}
    for name in sorted(counts):
        print(f"{name}: {type(c.networks[name]).__name__}, {counts[name]} parameters")
    meta = {k: v for k, v in c.metadata.items() if k != checkpoint.CONFIG_KEY}
    for k in sorted(meta):
        print(f"metadata {k}: {meta[k]}")
    if args.json:
        print(json.dumps({"kind": c.kind, "config": cfg, "metadata": meta, "parameters": counts}, sort_keys=True))
    return 0


# --- train ------------------------------------------------------------------------

def cmd_train(args):
    import torch
    from . import cli_attack, cli_channel, cli_mpa
    if args.method in cli_channel.GAN_METHODS:
        return cli_channel.train_gan(args)
    if args.method in cli_mpa.MPA_METHODS:
        return cli_mpa.train_precoder(args)
    from .core import channels, checkpoint, kinds, plots, training
    for option in ("--steps", "--batch-size", "--restarts", "--threads"):
        validate.integer(option, getattr(args, option[2:].replace("-", "_")), 1)
    for option in ("--seed", "--decoder-finetune-steps"):
        validate.integer(option, getattr(args, option[2:].replace("-", "_")), 0)
    torch.set_num_threads(args.threads)
    cfg = link_config(args)
    ebn0 = parse_train_ebn0(args.ebn0_db)
    channel = channels.by_name(args.channel)
    if cfg.mode == "real" and not channel.preserves_real:
        raise UsageError(f"--channel {args.channel} needs --mode complex (it rotates signal into the "
                         "imaginary part)")
    if args.start and args.method not in cli_attack.ROBUST_METHODS:
        raise UsageError(f"--start applies to --method {' or '.join(cli_attack.ROBUST_METHODS)}, not {args.method}")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    generator = None
    if args.method in cli_attack.ROBUST_METHODS:
        cfg, enc, dec, report = cli_attack.train_robust(args, cfg, channel, ebn0)
        generator = report.pop("generator")
    elif args.method == "model-free":
        enc, dec, report = train_model_free(args, cfg, channel, ebn0)
    else:
        enc, dec, report = training.fit_link(
            cfg, channel, ebn0, steps=args.steps, batch_size=args.batch_size,
            lr=training.DEFAULT_LR if args.lr is None else args.lr,
            lr_schedule=args.lr_schedule or training.DEFAULT_SCHEDULE, seed=args.seed, restarts=args.restarts,
            decoder_finetune_steps=args.decoder_finetune_steps, progress_bar=not args.quiet)
    seconds = time.time() - t0
    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    checkpoint.save_link(ckpt, cfg, enc, dec, metadata={"ebn0_db": json.dumps(ebn0), "seed": args.seed,
                                                        "steps": args.steps, "method": args.method,
                                                        "channel": args.channel})
    if generator is not None:
        from .core import adversary
        adversary.save_adversary(os.path.join(args.out, "adversary.safetensors"), generator.config, generator,
                                 metadata={"seed": args.seed, "method": args.method, "start": args.start})
    chosen = report["runs"][report["chosen"]]
    plots.plot_loss(chosen["history"], os.path.join(args.out, "loss.png"),
                    title=f"training loss, M={cfg.M} n={cfg.n} {cfg.mode}")
    plots.plot_constellation(enc.symbol_table(), cfg.mode, os.path.join(args.out, "constellation.png"),
                             title=f"learned constellation, M={cfg.M} n={cfg.n} {cfg.mode}")
    summary = {"checkpoint": ckpt, "config": json.loads(kinds.config_json("autoencoder", cfg)), "ebn0_db": ebn0,
               "channel": args.channel, "method": args.method, "train_seconds": round(seconds, 2),
               "chosen_restart": report["chosen"],
               "restarts": [{k: v for k, v in r.items() if k != "history"} for r in report["runs"]],
               "history": chosen["history"]}
    if "recipe" in report:
        summary["recipe"] = report["recipe"]
    _write_json(os.path.join(args.out, "train.json"), summary)
    print(f"trained in {seconds:.1f} s ({args.method}; restart {report['chosen'] + 1} of "
          f"{len(report['runs'])} kept, {chosen['validation_errors']}/{chosen['validation_blocks']} "
          f"validation block errors)")
    extra = ", adversary.safetensors" if generator is not None else ""
    print(f"wrote {ckpt}, loss.png, constellation.png, train.json{extra} in {args.out}")
    return 0


def train_model_free(args, cfg, channel, ebn0):
    """--method model-free: the offline alternating trainer (the reference for live training)."""
    import dataclasses
    from .core import model_free, models, training
    if args.restarts != 1 or args.decoder_finetune_steps:
        raise UsageError("--restarts and --decoder-finetune-steps apply to --method model-aware only")
    defaults = model_free.ModelFreeParams()
    params = model_free.ModelFreeParams(
        batch_size=args.batch_size, seed=args.seed, rx_batches=args.rx_batches, tx_batches=args.tx_batches,
        sigma2=args.sigma2, lr=defaults.lr if args.lr is None else args.lr,
        baseline=args.baseline, lr_schedule=args.lr_schedule or defaults.lr_schedule)
    enc, dec = models.build(cfg, seed=args.seed)
    feedback = model_free.FeedbackLink(snr_db=args.feedback_snr_db, bits=args.feedback_bits,
                                       loss_prob=args.feedback_loss_prob, seed=args.seed)
    hist = model_free.train_model_free(enc, dec, channel, ebn0, params, batches=args.steps, feedback=feedback,
                                       progress_bar=not args.quiet)
    errors = training.validation_errors(enc, dec, channel, ebn0, seed=args.seed)
    rx = [(b, loss) for b, loss, p in zip(hist["batch"], hist["loss"], hist["phase"]) if p == model_free.RECEIVER]
    history = {"step": [b for b, _ in rx], "loss": [loss for _, loss in rx]}
    run = {"restart": 0, "seed": args.seed, "validation_errors": errors, "validation_blocks": 100_000,
           "final_loss": history["loss"][-1] if rx else None, "lost_feedback": hist["lost_feedback"],
           "history": history}
    return enc, dec, {"chosen": 0, "runs": [run], "recipe": dataclasses.asdict(params)}


# --- eval -----------------------------------------------------------------------

def cmd_eval(args):
    import torch
    from .core import channels, kinds, plots, report
    validate.integer("--min-errors", args.min_errors, 1)
    validate.integer("--max-blocks", args.max_blocks, 1)
    validate.integer("--seed", args.seed, 0)
    validate.integer("--threads", args.threads, 1)
    torch.set_num_threads(args.threads)
    grid = parse_grid(args.ebn0_db)
    names = None
    if args.baselines != "auto":
        names = [b for b in args.baselines.split(",") if b]
        unknown = sorted(set(names) - set(report.BASELINES))
        if unknown:
            raise UsageError(f"--baselines: unknown {unknown}; choose from {', '.join(report.BASELINES)}")
    if names and args.channel != "awgn":
        raise UsageError(f"--baselines: the classical baselines assume AWGN; with --channel {args.channel} only "
                         "the learned link is evaluated")
    channel = channels.by_name(args.channel)
    try:
        cfg, enc, curves, gaps = report.evaluate_checkpoint(
            args.checkpoint, grid, channel=channel, baselines=names, min_errors=args.min_errors,
            max_blocks=args.max_blocks, seed=args.seed, progress_bar=not args.quiet)
    except ValueError as e:
        if str(e).startswith("baselines"):
            raise UsageError(f"--{e}") from None
        if str(e).startswith("mode must be"):
            raise UsageError(f"--channel {args.channel}: {e}") from None
        raise
    print(report.format_table(curves))
    if not args.out:
        return 0
    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, "bler.json")
    _write_json(out_json, {"checkpoint": args.checkpoint, "config": json.loads(kinds.config_json("autoencoder", cfg)),
                           "channel": args.channel, "min_errors": args.min_errors, "max_blocks": args.max_blocks,
                           "curves": curves, "gaps_db": gaps})
    channel_title = {"awgn": "AWGN", "rayleigh": "Rayleigh block fading", "phase": "random phase + AWGN",
                     "pa": "Saleh PA + phase offset + AWGN"}
    plots.plot_bler(curves, os.path.join(args.out, "bler.png"),
                    title=f"M={cfg.M}, n={cfg.n}, {cfg.mode} mode, {channel_title[args.channel]}",
                    baselines=[k for k in curves if not k.startswith("learned")])
    print(f"wrote {out_json} and bler.png in {args.out}")
    return 0


# --- merge ------------------------------------------------------------------------

def cmd_merge(args):
    from .core import checkpoint
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise UsageError(f"--out {args.out}: folder {folder} does not exist")
    out, tx, rx = checkpoint.merge_files(args.transmitter, args.receiver, args.out)
    print(f"wrote {out}: the encoder of {args.transmitter} ({tx.kind}) with the decoder of "
          f"{args.receiver} ({rx.kind})")
    return 0


# --- export-table -----------------------------------------------------------------

def cmd_export_table(args):
    import numpy as np
    from .core import checkpoint
    cfg, enc = checkpoint.load_network(args.checkpoint, "encoder")
    table = enc.symbol_table()  # complex64 [M, n]
    flat = [complex(v) for v in table.reshape(-1)]
    if args.out:
        np.save(args.out, table.reshape(-1)) if args.out.endswith(".npy") else \
            _write_json(args.out, {"M": cfg.M, "n": cfg.n, "D": cfg.n,
                                   "symbol_table": [[v.real, v.imag] for v in flat]})
        print(f"wrote {args.out}: chunks_to_symbols_bc(symbol_table, D={cfg.n}) with {cfg.M * cfg.n} points")
    else:
        print(f"# chunks_to_symbols_bc(symbol_table, {cfg.n}): message m -> symbols m*{cfg.n} .. m*{cfg.n}+{cfg.n - 1}")
        print("[" + ", ".join(f"complex({v.real:.7g}, {v.imag:.7g})" for v in flat) + "]")
    return 0


def build_parser():
    from . import cli_attack, cli_channel, cli_mpa
    from .core import channels, model_free, report, training
    mf_defaults = model_free.ModelFreeParams()
    p = argparse.ArgumentParser(
        prog="gr_e2e", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train and evaluate end-to-end learned links (autoencoders) for GNU Radio. "
                    "Eb/N0 follows DESIGN.md: Es = 1 per channel use, N0 = 1/(R Eb/N0), R = log2(M)/n.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    i = sub.add_parser("init", help="write a fresh, untrained link (or transmitter / receiver) checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_link_options(i)
    i.add_argument("--kind", choices=sorted(INIT_KINDS), default="link",
                   help="link: encoder and decoder (nn_encoder, nn_decoder, both training blocks); "
                        "transmitter: the encoder only; receiver: the decoder only")
    i.add_argument("--seed", type=_number, default=0, help="seed of the initial weights")
    i.add_argument("--out", required=True, help="checkpoint file to write (.safetensors)")
    i.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    i.set_defaults(func=cmd_init)

    f = sub.add_parser("info", help="what a checkpoint holds: kind, config, networks, metadata (or a channel "
                                    "dataset: metadata, rows)")
    f.add_argument("checkpoint", help=".safetensors checkpoint of any kind, or a channel dataset")
    f.add_argument("--json", action="store_true", help="also print it all as one JSON line")
    f.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train an encoder/decoder pair, write a checkpoint and plots",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--method", default="model-aware",
                   choices=["model-aware", "model-free", *cli_attack.ROBUST_METHODS, *cli_channel.GAN_METHODS,
                            *cli_mpa.MPA_METHODS],
                   help="model-aware: backpropagate through the differentiable channel; model-free: "
                        "receiver by its true gradient, transmitter by policy gradient from fed-back "
                        "losses (Aoudia & Hoydis), never differentiating the channel; --steps counts batches; "
                        "adversarial / gan-defense: retrain the receiver of --start against adversarial "
                        "perturbations (a fixed FGM set / a generator adversary with consensus "
                        "optimisation), its transmitter frozen; the link options come from --start; "
                        "ra-gan / gan: through a learned channel model (residual generator with L2 / plain "
                        "generator), over --channel never differentiated, or fitted to a --dataset; "
                        "mpa-tandem / mpa-plain: a link over --subchannels fading subchannels with the "
                        "MPA attention precoder (tandem training) / without it")
    add_link_options(t)
    t.add_argument("--ebn0-db", default="7", help="training Eb/N0 in dB, or LO:HI drawn per example")
    t.add_argument("--channel", choices=channels.NAMES, default="awgn",
                   help="training channel; rayleigh: block fading, one h ~ CN(0,1) per message; phase: a "
                        "random carrier phase per message, then AWGN; pa: a Saleh power amplifier (3 dB input "
                        "back-off), a fixed pi/8 phase offset, then AWGN (all three complex mode)")
    t.add_argument("--steps", type=_number, default=3000, help="gradient steps (model-free: batches)")
    t.add_argument("--batch-size", type=_number, default=mf_defaults.batch_size, help="messages per step")
    t.add_argument("--lr", type=_number, default=None,
                   help=f"Adam learning rate at the start (default: {training.DEFAULT_LR:g} model-aware, "
                        f"{mf_defaults.lr:g} model-free)")
    t.add_argument("--lr-schedule", choices=training.SCHEDULES, default=None,
                   help=f"default: {training.DEFAULT_SCHEDULE} model-aware, {mf_defaults.lr_schedule} model-free")
    t.add_argument("--restarts", type=_number, default=1,
                   help="train this many initialisations, keep the best on held-out messages")
    t.add_argument("--decoder-finetune-steps", type=_number, default=0,
                   help="receiver-only steps on the frozen constellation afterwards")
    mf = t.add_argument_group("model-free training (--method model-free; defaults are the paper's)")
    mf.add_argument("--sigma2", type=_number, default=mf_defaults.sigma2,
                    help="variance per channel use of the transmitter's exploration noise, in (0, 1)")
    mf.add_argument("--rx-batches", type=_number, default=mf_defaults.rx_batches,
                    help="receiver batches per cycle (R)")
    mf.add_argument("--tx-batches", type=_number, default=mf_defaults.tx_batches,
                    help="transmitter batches per cycle (T)")
    mf.add_argument("--baseline", choices=model_free.BASELINES, default=mf_defaults.baseline,
                    help="mean: subtract the batch's mean loss (variance reduction); none: the paper's estimator")
    mf.add_argument("--feedback-snr-db", type=_number, default=None,
                    help="noise on the fed-back losses at SNRfb = E[l^2]/sigma_e^2 (default: noiseless)")
    mf.add_argument("--feedback-bits", type=_number, default=0,
                    help="quantise fed-back losses to this many bits (0: no quantisation)")
    mf.add_argument("--feedback-loss-prob", type=_number, default=0.0,
                    help="probability a feedback message is lost")
    cli_attack.add_train_options(t)
    cli_channel.add_train_options(t)
    cli_mpa.add_train_options(t)
    t.add_argument("--seed", type=_number, default=0, help="seed of every random stream")
    t.add_argument("--threads", type=_number, default=1, help="torch CPU threads")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="Monte-Carlo BLER of a checkpoint against classical baselines",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--checkpoint", required=True, help="link .safetensors checkpoint (gr_e2e train or merge)")
    e.add_argument("--ebn0-db", default="0:8:1", help="Eb/N0 grid: START:STOP:STEP or a comma list")
    e.add_argument("--min-errors", type=_number, default=100, help="stop a point after this many block errors")
    e.add_argument("--max-blocks", type=_number, default=1_000_000, help="... or after this many blocks")
    e.add_argument("--baselines", default="auto",
                   help=f"comma list from {', '.join(report.BASELINES)}; auto picks by M, n and mode "
                        "(none off AWGN)")
    e.add_argument("--channel", choices=channels.NAMES, default="awgn",
                   help="rayleigh: block fading (one h ~ CN(0,1) per message, not told to the receiver); "
                        "phase: a random phase per message, then AWGN; pa: Saleh power amplifier, fixed phase "
                        "offset, AWGN. Off AWGN the classical baselines "
                        "are not run; on rayleigh the learned constellation is also scored with ML "
                        "detection without channel knowledge")
    e.add_argument("--seed", type=_number, default=0)
    e.add_argument("--threads", type=_number, default=1, help="torch CPU threads")
    e.add_argument("--out", default="", help="also write bler.json and bler.png into this folder")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("merge", help="a link checkpoint from a transmitter's encoder and a receiver's decoder")
    m.add_argument("--transmitter", required=True,
                   help="checkpoint holding the encoder (model_free_tx's checkpoint_out, or a link)")
    m.add_argument("--receiver", required=True,
                   help="checkpoint holding the decoder (model_free_rx's checkpoint_out, or a link)")
    m.add_argument("--out", required=True, help="link checkpoint to write")
    m.set_defaults(func=cmd_merge)

    x = sub.add_parser("export-table", help="print or save the encoder's symbol table for chunks_to_symbols")
    x.add_argument("--checkpoint", required=True, help="checkpoint holding an encoder")
    x.add_argument("--out", default="", help="file to write (.json or .npy); default: print")
    x.set_defaults(func=cmd_export_table)
    from . import cli_plot
    cli_plot.add_parser(sub)
    from . import cli_sweep
    cli_sweep.add_parser(sub)
    cli_attack.add_parser(sub)
    cli_channel.add_parser(sub)
    cli_mpa.add_parser(sub)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # UsageError, CheckpointError and core validation errors
        print(f"gr_e2e: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output path that cannot be written (--out names a file, no folder, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"gr_e2e: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gr_e2e: interrupted", file=sys.stderr)
        return 130
