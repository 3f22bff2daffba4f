"""gr_e2e: command-line tools for gr-e2e (train, eval, export-table).

Every computation lives in core/; this file parses arguments, calls core and
writes files. Bad arguments end with 'gr_e2e: error: ...' naming the option.
"""
import argparse
import json
import math
import os
import sys
import time

EXAMPLES = """examples:
  # the classic (7,4) autoencoder: 16 messages on 7 real channel uses
  gr_e2e train --M 16 --n 7 --mode real --ebn0-db 3:8 --out runs/real
  # BLER from 0 to 8 dB against Hamming (7,4) and uncoded BPSK
  gr_e2e eval --checkpoint runs/real/checkpoint.safetensors --ebn0-db 0:8:1 --out runs/real
  # the symbol table for GNU Radio's chunks_to_symbols (fast C++ transmitter)
  gr_e2e export-table --checkpoint runs/real/checkpoint.safetensors
"""

BASELINES = ("hamming-soft", "hamming-hard", "uncoded-bpsk", "uncoded-qpsk", "uncoded-16qam")


class UsageError(ValueError):
    pass


def parse_widths(text, option):
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise UsageError(f"{option} must be comma-separated layer widths like 64,64, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise UsageError(f"{option} must list positive layer widths, got {text!r}")
    return widths


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
            if step <= 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 6) for i in range(count)]
        grid = [float(p) for p in text.split(",")]
        if not all(map(math.isfinite, grid)):
            raise ValueError
        return grid
    except ValueError:
        raise UsageError(f"--ebn0-db must be START:STOP:STEP or a comma list of dB values, got {text!r}") from None


def _positive_int(text):
    try:
        v = int(float(text))
    except (ValueError, OverflowError):  # OverflowError: 'inf'
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1 or v != float(text):
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def _nonnegative_int(text):
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return v


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# --- train ----------------------------------------------------------------------

def cmd_train(args):
    import torch
    from .core import channels, checkpoint, config, plots, training
    torch.set_num_threads(args.threads)
    cfg = config.LinkConfig(M=args.M, n=args.n, mode=args.mode, normalization=args.normalization,
                            encoder_hidden=parse_widths(args.encoder_hidden, "--encoder-hidden")
                            if args.encoder_hidden else None,
                            decoder_hidden=parse_widths(args.decoder_hidden, "--decoder-hidden")
                            if args.decoder_hidden else None,
                            receiver_frontend=args.receiver_frontend)
    ebn0 = parse_train_ebn0(args.ebn0_db)
    if args.channel == "rayleigh" and cfg.mode != "complex":
        raise UsageError("--channel rayleigh needs --mode complex (fading rotates into the imaginary part)")
    os.makedirs(args.out, exist_ok=True)
    channel_class = channels.RayleighBlockFading if args.channel == "rayleigh" else channels.AWGN

    def make_channel(gen):
        return channel_class(ebn0, cfg.M, cfg.n, cfg.mode, generator=gen)

    t0 = time.time()
    if args.method == "model-free":
        enc, dec, report = train_model_free(args, cfg, make_channel)
    else:
        enc, dec, report = training.fit_link(
            cfg, make_channel, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
            lr_schedule=args.lr_schedule, seed=args.seed, restarts=args.restarts,
            decoder_finetune_steps=args.decoder_finetune_steps, progress=not args.quiet)
    seconds = time.time() - t0
    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    checkpoint.save(ckpt, cfg, enc, dec, metadata={"ebn0_db": json.dumps(ebn0), "seed": args.seed,
                                                   "steps": args.steps, "method": args.method,
                                                   "channel": args.channel})
    chosen = report["runs"][report["chosen"]]
    plots.plot_loss(chosen["history"], os.path.join(args.out, "loss.png"),
                    title=f"training loss, M={cfg.M} n={cfg.n} {cfg.mode}")
    plots.plot_constellation(enc.symbol_table(), cfg.mode, os.path.join(args.out, "constellation.png"),
                             title=f"learned constellation, M={cfg.M} n={cfg.n} {cfg.mode}")
    summary = {"checkpoint": ckpt, "config": json.loads(cfg.to_json()), "ebn0_db": ebn0, "channel": args.channel,
               "train_seconds": round(seconds, 2), "chosen_restart": report["chosen"],
               "restarts": [{k: v for k, v in r.items() if k != "history"} for r in report["runs"]],
               "history": chosen["history"]}
    _write_json(os.path.join(args.out, "train.json"), summary)
    print(f"trained in {seconds:.1f} s ({args.method}; restart {report['chosen'] + 1} of "
          f"{len(report['runs'])} kept, {chosen['validation_errors']}/{chosen['validation_blocks']} "
          f"validation block errors)")
    print(f"wrote {ckpt}, loss.png, constellation.png, train.json in {args.out}")
    return 0


def train_model_free(args, cfg, make_channel):
    """--method model-free: the offline alternating trainer (the reference for live training)."""
    from .core import model_free, models, prng, training
    if args.restarts != 1 or args.decoder_finetune_steps:
        raise UsageError("--restarts and --decoder-finetune-steps apply to --method model-aware only")
    enc, dec = models.build(cfg, seed=args.seed)
    feedback = model_free.FeedbackLink(snr_db=args.feedback_snr_db, bits=args.feedback_bits or None,
                                       loss_prob=args.feedback_loss, seed=args.seed)
    hist = model_free.train_model_free(
        enc, dec, make_channel(prng.torch_generator(args.seed, prng.NOISE, 0)), batches=args.steps,
        batch_size=args.batch_size, rx_batches=args.rx_batches, tx_batches=args.tx_batches,
        sigma2=args.sigma2, lr_rx=args.lr, lr_tx=args.lr, lr_schedule=args.lr_schedule,
        baseline=args.baseline, feedback=feedback,
        seed=args.seed, progress=not args.quiet)
    errors = training.validation_errors(enc, dec, make_channel(prng.torch_generator(args.seed, prng.EVAL, 0)),
                                        seed=args.seed)
    rx = [(b, l) for b, l, p in zip(hist["batch"], hist["loss"], hist["phase"]) if p == "receiver"]
    history = {"step": [b for b, _ in rx], "loss": [l for _, l in rx]}
    run = {"restart": 0, "seed": args.seed, "validation_errors": errors, "validation_blocks": 100_000,
           "final_loss": history["loss"][-1] if rx else None, "lost_feedback": hist["lost_feedback"],
           "history": history}
    return enc, dec, {"chosen": 0, "runs": [run]}


# --- eval -----------------------------------------------------------------------

def baseline_links(names, cfg):
    from .core import baselines
    k = math.log2(cfg.M)
    links = []
    for name in names:
        if name.startswith("hamming"):
            links.append(baselines.hamming74_link(name.split("-")[1]))
            continue
        modulation = name.split("-")[1]
        per_symbol = {"bpsk": 1, "qpsk": 2, "16qam": 4}[modulation]
        if k != int(k) or int(k) % per_symbol:
            raise UsageError(f"--baselines {name}: {int(2 ** k) if k == int(k) else cfg.M} messages "
                             f"do not fill whole {modulation} symbols")
        links.append(baselines.uncoded_link(int(k), modulation))
    return links


def default_baselines(cfg):
    names = ["hamming-soft", "hamming-hard"] if cfg.M == 16 else []
    k = math.log2(cfg.M)
    if k == int(k):
        names.append("uncoded-bpsk" if cfg.mode == "real" or int(k) % 2 else "uncoded-qpsk")
    return names


def evaluate_checkpoint(ckpt, grid, *, baselines=None, min_errors=100, max_blocks=1_000_000,
                        seed=0, progress=True, channel="awgn"):
    """BLER curves of a checkpoint (neural decoder and ML on its codebook) and baselines.

    channel 'rayleigh' (Rayleigh block fading): the neural decoder and ML
    without channel knowledge on its codebook only; the classical baselines
    assume AWGN and are refused.
    """
    from .core import checkpoint, evaluation
    from .core.learned import LearnedLink
    cfg, enc, dec = checkpoint.load(ckpt)
    if channel == "rayleigh":
        if cfg.mode != "complex":
            raise UsageError(f"--channel rayleigh needs a complex-mode checkpoint, {ckpt} is {cfg.mode!r}")
        if baselines:
            raise UsageError("--baselines: the classical baselines assume AWGN; with --channel rayleigh "
                             "only the learned link is evaluated")
        baselines, ml_detector = [], "ml-rbf"
    else:
        ml_detector = "ml"
    names = default_baselines(cfg) if baselines is None else baselines
    links = [LearnedLink(enc, dec, "nn", name="learned, neural decoder"),
             LearnedLink(enc, None, ml_detector, name="learned, ML detection")] + baseline_links(names, cfg)
    curves = {}
    for link in links:
        curves[link.name] = evaluation.evaluate_bler(link, grid, min_errors=min_errors, max_blocks=max_blocks,
                                                     seed=seed, progress=progress, channel=channel)
    nn, ml = curves["learned, neural decoder"], curves["learned, ML detection"]
    gaps = {"neural decoder vs ML on its constellation": evaluation.db_gap(nn, ml)}
    for link in links[2:]:
        gaps[f"neural decoder vs {link.name}"] = evaluation.db_gap(nn, curves[link.name])
    return cfg, enc, curves, gaps


def cmd_eval(args):
    import torch
    from .core import plots
    torch.set_num_threads(args.threads)
    grid = parse_grid(args.ebn0_db)
    names = None
    if args.baselines != "auto":
        names = [b for b in args.baselines.split(",") if b]
        unknown = sorted(set(names) - set(BASELINES))
        if unknown:
            raise UsageError(f"--baselines: unknown {unknown}; choose from {', '.join(BASELINES)}")
    cfg, enc, curves, gaps = evaluate_checkpoint(args.checkpoint, grid, baselines=names,
                                                 min_errors=args.min_errors, max_blocks=args.max_blocks,
                                                 seed=args.seed, progress=not args.quiet, channel=args.channel)
    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, "bler.json")
    _write_json(out_json, {"checkpoint": args.checkpoint, "config": json.loads(cfg.to_json()),
                           "channel": args.channel,
                           "min_errors": args.min_errors, "max_blocks": args.max_blocks,
                           "curves": curves, "gaps_db": gaps})
    plots.plot_bler(curves, os.path.join(args.out, "bler.png"),
                    title=f"M={cfg.M}, n={cfg.n}, {cfg.mode} mode, "
                          f"{'Rayleigh block fading' if args.channel == 'rayleigh' else 'AWGN'}",
                    baselines=[k for k in curves if not k.startswith("learned")])
    print_table(curves)
    print(f"wrote {out_json} and bler.png in {args.out}")
    return 0


def print_table(curves):
    names = list(curves)
    grid = [p["ebn0_db"] for p in curves[names[0]]]
    width = max(len(n) for n in names)
    print("Eb/N0 (dB)".ljust(width) + "".join(f"{e:>10g}" for e in grid))
    for name in names:
        print(name.ljust(width) + "".join(f"{p['bler']:>10.3g}" for p in curves[name]))


# --- export-table -----------------------------------------------------------------

def cmd_export_table(args):
    import numpy as np
    from .core import checkpoint
    cfg, enc, _ = checkpoint.load(args.checkpoint, need=("encoder",))
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
    p = argparse.ArgumentParser(
        prog="gr_e2e", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train and evaluate end-to-end learned links (autoencoders) for GNU Radio. "
                    "Eb/N0 follows DESIGN.md: Es = 1 per channel use, N0 = 1/(R Eb/N0), R = log2(M)/n.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train an encoder/decoder pair, write a checkpoint and plots",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--method", choices=["model-aware", "model-free"], default="model-aware",
                   help="model-aware: backpropagate through the differentiable channel; model-free: "
                        "receiver by its true gradient, transmitter by policy gradient from fed-back "
                        "losses (Aoudia & Hoydis), never differentiating the channel; --steps counts batches")
    t.add_argument("--M", type=_positive_int, default=16, help="number of messages (k = log2 M bits)")
    t.add_argument("--n", type=_positive_int, default=7, help="channel uses per message")
    t.add_argument("--mode", choices=["complex", "real"], default="complex",
                   help="real: n real channel uses (imaginary parts zero), to compare with BPSK codes")
    t.add_argument("--normalization", choices=["energy", "average"], default="energy",
                   help="energy: every message has energy n; average: mean energy over messages is n")
    t.add_argument("--encoder-hidden", default="", help="encoder hidden widths, e.g. 16 (default: M)")
    t.add_argument("--decoder-hidden", default="", help="decoder hidden widths, e.g. 64,64 (default: M)")
    t.add_argument("--ebn0-db", default="7", help="training Eb/N0 in dB, or LO:HI drawn per example")
    t.add_argument("--channel", choices=["awgn", "rayleigh"], default="awgn",
                   help="training channel; rayleigh: block fading, one h ~ CN(0,1) per message "
                        "(complex mode)")
    t.add_argument("--receiver-frontend", choices=["none", "transformer"], default="none",
                   help="transformer: the receiver estimates the block's channel gain and divides it "
                        "out before the decoder (radio transformer network, for --channel rayleigh)")
    t.add_argument("--steps", type=_positive_int, default=3000, help="gradient steps")
    t.add_argument("--batch-size", type=_positive_int, default=1000, help="messages per step")
    t.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate at the start")
    t.add_argument("--lr-schedule", choices=["cosine", "constant", "step"], default="cosine")
    t.add_argument("--restarts", type=_positive_int, default=1,
                   help="train this many initialisations, keep the best on held-out messages")
    t.add_argument("--decoder-finetune-steps", type=_nonnegative_int, default=0,
                   help="receiver-only steps on the frozen constellation afterwards")
    mf = t.add_argument_group("model-free training (--method model-free)")
    mf.add_argument("--sigma2", type=float, default=0.05,
                    help="variance per channel use of the transmitter's exploration noise, in (0, 1)")
    mf.add_argument("--rx-batches", type=_nonnegative_int, default=10, help="receiver batches per cycle (R)")
    mf.add_argument("--tx-batches", type=_nonnegative_int, default=10, help="transmitter batches per cycle (T)")
    mf.add_argument("--baseline", choices=["none", "mean"], default="none",
                    help="mean: subtract the batch's mean loss (variance reduction); none: the paper's estimator")
    mf.add_argument("--feedback-snr-db", type=float, default=None,
                    help="noise on the fed-back losses at SNRfb = E[l^2]/sigma_e^2 (default: noiseless)")
    mf.add_argument("--feedback-bits", type=_nonnegative_int, default=0,
                    help="quantise fed-back losses to this many bits (0: no quantisation)")
    mf.add_argument("--feedback-loss", type=float, default=0.0, help="probability a feedback message is lost")
    t.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of every random stream")
    t.add_argument("--threads", type=_positive_int, default=1,
                   help="torch CPU threads")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="Monte-Carlo BLER of a checkpoint against classical baselines",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--checkpoint", required=True, help=".safetensors checkpoint from gr_e2e train")
    e.add_argument("--ebn0-db", default="0:8:1", help="Eb/N0 grid: START:STOP:STEP or a comma list")
    e.add_argument("--min-errors", type=_positive_int, default=100, help="stop a point after this many block errors")
    e.add_argument("--max-blocks", type=_positive_int, default=1_000_000,
                   help="... or after this many blocks")
    e.add_argument("--baselines", default="auto",
                   help=f"comma list from {', '.join(BASELINES)}; auto picks by M, n and mode")
    e.add_argument("--channel", choices=["awgn", "rayleigh"], default="awgn",
                   help="rayleigh: block fading (one h ~ CN(0,1) per message, not told to the receiver); "
                        "only the learned link is evaluated, by its neural decoder and by ML without "
                        "channel knowledge on its constellation, no classical baselines")
    e.add_argument("--seed", type=_nonnegative_int, default=0)
    e.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads")
    e.add_argument("--out", required=True, help="output folder for bler.json and bler.png")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("export-table", help="print or save the encoder's symbol table for chunks_to_symbols")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", default="", help="file to write (.json or .npy); default: print")
    x.set_defaults(func=cmd_export_table)
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
