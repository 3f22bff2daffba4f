"""gr_e2e train --method mpa-tandem | mpa-plain, and gr_e2e adapt-eval: the MPA precoder from the command line.

train --method mpa-tandem trains a link over N parallel subchannels whose
transmitter ends in the attention layer (core.mpa, tandem training: the
paper's Algorithm 1); --method mpa-plain trains the same link without the
layer (the frozen baseline when trained on the training family, the
retrained upper bound when trained on another). Both write a 'precoder'
checkpoint (core.precoder), loss.png and train.json.

adapt-eval scores them on subchannel families (core.adaptation): frozen,
MPA link without adaptation, MPA adaptation, gradient adaptation,
retrained links, classical precoding; BLER curves, the Eb/N0 at BLER 1e-2,
the share of the frozen-to-retrained gap each method closes, plots.

As in cli.py: arguments are checked here under the option's name, every
computation lives in core.
"""
import os
import time

from . import cli
from .core import validate

MPA_METHODS = ("mpa-tandem", "mpa-plain")
DEFAULT_BATCH = 500
DEFAULT_LR = 1e-2

EVAL_EXAMPLE = """examples:
  gr_e2e train --method mpa-tandem --M 16 --subchannels 8 --ebn0-db 8 --steps 4000 --out runs/mpa
  gr_e2e train --method mpa-plain --M 16 --subchannels 8 --ebn0-db 8 --steps 2000 --out runs/plain
  gr_e2e train --method mpa-plain --family deep_fade --ebn0-db 8 --steps 2000 --out runs/plain_deep
  gr_e2e adapt-eval --precoder runs/mpa/checkpoint.safetensors --plain runs/plain/checkpoint.safetensors \\
      --retrained deep_fade=runs/plain_deep/checkpoint.safetensors --families deep_fade --out runs/adapt
"""


def add_train_options(parser):
    """train's options for --method mpa-tandem and mpa-plain (cli.build_parser calls it)."""
    from .core import mpa, subchannels
    g = parser.add_argument_group(
        "MPA precoder (--method mpa-tandem or mpa-plain)",
        "A link of --M messages over --subchannels parallel subchannels with frequency-selective block "
        "fading (core.subchannels --family), genie channel state at both ends. mpa-tandem: the transmitter "
        "ends in the attention layer, trained in tandem (per round the layer is iterated for a batch of "
        "channel draws with the networks frozen, then --stage1-steps Adam steps with the layer fixed); "
        "mpa-plain: the same link without the layer. --restarts trains several and keeps the one with the "
        "fewest held-out block errors on --family. --steps counts Adam steps; --batch-size defaults to "
        "500, --lr to 1e-2 (cosine decay), --ebn0-db is one value. Writes a 'precoder' checkpoint")
    g.add_argument("--subchannels", type=cli._number, default=8, help="N: subchannels (channel uses) per message")
    g.add_argument("--features", type=cli._number, default=16, help="L: features per message before the layer")
    g.add_argument("--family", choices=subchannels.FAMILIES, default="train",
                   help="subchannel family to train on (train: short exponential delay profile)")
    g.add_argument("--stage1-steps", type=cli._number, default=5, help="Adam steps per tandem round")
    g.add_argument("--mpa-beta", type=cli._number, default=mpa.DEFAULT_BETA,
                   help="inverse temperature of the attention")
    g.add_argument("--mpa-steps", type=cli._number, default=mpa.DEFAULT_STEPS, help="MPA iteration steps")
    g.add_argument("--mpa-damping", type=cli._number, default=mpa.DEFAULT_DAMPING,
                   help="damping of each MPA step, in (0, 1]")


def train_precoder(args):
    """train --method mpa-tandem | mpa-plain: checkpoint.safetensors, loss.png, train.json in --out."""
    import torch
    from . import cli_channel
    from .core import kinds, plots, precoder
    if args.decoder_finetune_steps:
        raise cli.UsageError(f"--decoder-finetune-steps does not apply to --method {args.method}")
    if args.start or args.dataset:
        raise cli.UsageError(f"--start and --dataset do not apply to --method {args.method}")
    if args.mode != "complex":
        raise cli.UsageError(f"--mode {args.mode}: --method {args.method} trains complex-mode links")
    batch_size = DEFAULT_BATCH if isinstance(args.batch_size, cli_channel._ParserDefault) else args.batch_size
    for option, value in (("--steps", args.steps), ("--batch-size", batch_size), ("--threads", args.threads),
                          ("--subchannels", args.subchannels), ("--features", args.features),
                          ("--stage1-steps", args.stage1_steps), ("--M", args.M), ("--restarts", args.restarts)):
        validate.integer(option, value, 1)
    validate.integer("--seed", args.seed, 0)
    validate.real("--mpa-beta", args.mpa_beta, 0)
    validate.integer("--mpa-steps", args.mpa_steps, 0)
    validate.real("--mpa-damping", args.mpa_damping, 0, 1, low_open=True)
    lr = DEFAULT_LR if args.lr is None else validate.real("--lr", args.lr, 0, low_open=True)
    ebn0 = cli.parse_train_ebn0(args.ebn0_db)
    if isinstance(ebn0, tuple):
        raise cli.UsageError(f"--ebn0-db: --method {args.method} trains at one Eb/N0, got the range {args.ebn0_db!r}")
    cfg = precoder.PrecoderConfig(
        M=args.M, N=args.subchannels, architecture="mpa" if args.method == "mpa-tandem" else "plain",
        L=args.features,
        hidden=cli.parse_widths(args.encoder_hidden, "--encoder-hidden") if args.encoder_hidden else None,
        decoder_hidden=cli.parse_widths(args.decoder_hidden, "--decoder-hidden") if args.decoder_hidden else None,
        beta=args.mpa_beta, steps=args.mpa_steps, damping=args.mpa_damping, train_family=args.family, ebn0_db=ebn0)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    enc, dec, history, restarts = precoder.fit_precoder(
        cfg, steps=args.steps, stage1_steps=args.stage1_steps, batch_size=batch_size, lr=lr, seed=args.seed,
        restarts=args.restarts, progress_bar=not args.quiet)
    seconds = time.time() - t0
    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    precoder.save_precoder(ckpt, cfg, enc, dec, metadata={"seed": args.seed, "steps": args.steps,
                                                          "method": args.method})
    steps_per_round = args.steps // len(history) if args.steps >= args.stage1_steps else args.steps
    plots.plot_loss({"step": [steps_per_round * (r + 1) for r in range(len(history))], "loss": history},
                    os.path.join(args.out, "loss.png"),
                    title=f"{args.method}, M={cfg.M} N={cfg.N} on {cfg.train_family}")
    import json
    cli._write_json(os.path.join(args.out, "train.json"), {
        "checkpoint": ckpt, "config": json.loads(kinds.config_json("precoder", cfg)), "method": args.method,
        "train_seconds": round(seconds, 2), "rounds": len(history), "final_loss": history[-1], "restarts": restarts,
        "history": history})
    kept = next(r for r in restarts if r["chosen"])
    print(f"trained in {seconds:.1f} s ({args.method}, {len(history)} rounds, final loss {history[-1]:.4f}; "
          f"restart {restarts.index(kept) + 1} of {len(restarts)} kept, {kept['errors']}/{kept['blocks']} "
          f"validation block errors)")
    print(f"wrote {ckpt}, loss.png, train.json in {args.out}")
    return 0


# --- adapt-eval -------------------------------------------------------------------------------

def add_parser(subparsers):
    """Register `adapt-eval` on gr_e2e's subparsers."""
    import argparse
    from .core import subchannels
    e = subparsers.add_parser(
        "adapt-eval", help="BLER of MPA adaptation, gradient adaptation, classical precoding, frozen and "
                           "retrained links on subchannel families",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EVAL_EXAMPLE,
        description="Score a link trained with --method mpa-tandem against the same link without the layer "
                    "(--plain, frozen), links retrained per family (--retrained) and classical precoding, on "
                    "families of subchannel fading; every method meets the same channels, messages and noise. "
                    "Writes adaptation.json, bler.png and gap.png into --out.")
    e.add_argument("--precoder", required=True, help="'precoder' checkpoint of architecture mpa (mpa-tandem)")
    e.add_argument("--plain", default="", help="'precoder' checkpoint of architecture plain trained on the "
                                                "training family: the frozen baseline")
    e.add_argument("--retrained", action="append", default=[], metavar="FAMILY=PATH",
                   help="a plain link trained on FAMILY (repeatable): the upper bound on that family")
    e.add_argument("--families", default=",".join(f for f in subchannels.FAMILIES if f != "train"),
                   help=f"comma list from {', '.join(subchannels.FAMILIES)}")
    e.add_argument("--ebn0-db", default="0:16:2", help="Eb/N0 grid: START:STOP:STEP or a comma list")
    e.add_argument("--at-ebn0-db", type=cli._number, default=8.0,
                   help="the fixed Eb/N0 of the summary table (must be on the grid)")
    e.add_argument("--classical", default="selection,mmse",
                   help="comma list of classical precoders (core.classical_precoding), '' for none")
    e.add_argument("--no-gradient", action="store_true", help="skip gradient adaptation (the slow method)")
    e.add_argument("--channels", type=cli._number, default=400, help="channel realisations per point")
    e.add_argument("--block", type=cli._number, default=25, help="messages per channel realisation")
    e.add_argument("--seed", type=cli._number, default=0)
    e.add_argument("--threads", type=cli._number, default=1, help="torch CPU threads")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_adapt_eval)


def _load(path, option, architecture):
    from .core import checkpoint, precoder
    try:
        cfg, enc, dec = precoder.load_precoder(validate.path(option, path, allow_empty=False))
    except (checkpoint.CheckpointError, OSError) as e:
        raise cli.UsageError(f"{option}: {e}") from None
    if cfg.architecture != architecture:
        method = "mpa-tandem" if architecture == "mpa" else "mpa-plain"
        raise cli.UsageError(f"{option} {path} is a '{cfg.architecture}' precoder; {option} needs "
                             f"'{architecture}' (train --method {method})")
    return cfg, enc, dec


def _parse_retrained(items):
    from .core import subchannels
    out = {}
    for item in items:
        family, sep, path = item.partition("=")
        if not sep or family not in subchannels.FAMILIES or not path:
            raise cli.UsageError(f"--retrained must be FAMILY=PATH with FAMILY in {subchannels.FAMILIES}, "
                                 f"got {item!r}")
        out[family] = path
    return out


def cmd_adapt_eval(args):
    import torch
    from .core import adaptation, adaptation_plot, classical_precoding, subchannels
    for option in ("--channels", "--block", "--threads"):
        validate.integer(option, getattr(args, option[2:]), 1)
    validate.integer("--seed", args.seed, 0)
    torch.set_num_threads(args.threads)
    grid = cli.parse_grid(args.ebn0_db)
    if not any(abs(e - args.at_ebn0_db) < 1e-9 for e in grid):
        raise cli.UsageError(f"--at-ebn0-db {args.at_ebn0_db:g} is not on the --ebn0-db grid {grid}")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f not in subchannels.FAMILIES:
            raise cli.UsageError(f"--families: {f!r} is not one of {subchannels.FAMILIES}")
    schemes = [s.strip() for s in args.classical.split(",") if s.strip()]
    for s in schemes:
        if s not in classical_precoding.PRECODERS:
            raise cli.UsageError(f"--classical: {s!r} is not one of {classical_precoding.PRECODERS}")
    cfg, enc, dec = _load(args.precoder, "--precoder", "mpa")
    plain = _load(args.plain, "--plain", "plain") if args.plain else None
    retrained = {f: _load(p, f"--retrained {f}", "plain") for f, p in _parse_retrained(args.retrained).items()}
    for option, other in [("--plain", plain)] + [(f"--retrained {f}", r) for f, r in retrained.items()]:
        if other is not None and (other[0].M, other[0].N) != (cfg.M, cfg.N):
            raise cli.UsageError(f"{option} has M={other[0].M} N={other[0].N}; --precoder has M={cfg.M} N={cfg.N}")
    os.makedirs(args.out, exist_ok=True)
    curves, summaries = {}, {}
    for family in families:
        methods = {}
        if plain is not None:
            methods["frozen"] = adaptation.link_method(plain[1], plain[2])
        methods["alpha0"] = adaptation.link_method(enc, dec)
        methods["mpa"] = adaptation.link_method(enc, dec, "mpa")
        if not args.no_gradient:
            methods["gradient"] = adaptation.link_method(enc, dec, "gradient")
        for s in schemes:
            methods[f"classical:{s}"] = adaptation.classical_method(s, cfg.M)
        if family in retrained:
            methods["retrained"] = adaptation.link_method(*retrained[family][1:])
        elif family == cfg.train_family and plain is not None:
            methods["retrained"] = methods["frozen"]
        curves[family] = adaptation.bler_curves(methods, subchannels.SubchannelChannel(cfg.N, family), grid,
                                                channels=args.channels, block=args.block, seed=args.seed,
                                                progress_bar=not args.quiet)
        summaries[family] = adaptation.summary(curves[family], args.at_ebn0_db)
        _print_summary(family, summaries[family], args.at_ebn0_db)
    cli._write_json(os.path.join(args.out, "adaptation.json"),
                    {"precoder": args.precoder, "plain": args.plain, "retrained": _parse_retrained(args.retrained),
                     "at_ebn0_db": args.at_ebn0_db, "target_bler": adaptation.TARGET_BLER, "grid": grid,
                     "channels": args.channels, "block": args.block, "seed": args.seed,
                     "summary": summaries, "curves": curves})
    adaptation_plot.plot_families(curves, os.path.join(args.out, "bler.png"),
                                  title=f"M={cfg.M}, N={cfg.N}, trained on {cfg.train_family}")
    adaptation_plot.plot_gap_closed(summaries, os.path.join(args.out, "gap.png"))
    print(f"wrote adaptation.json, bler.png, gap.png in {args.out}")
    return 0


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _print_summary(family, rows, at):
    print(f"{family}: BLER at {at:g} dB, Eb/N0 (dB) at BLER {1e-2:g}, share of the frozen -> retrained gap closed")
    for name, r in rows.items():
        print(f"  {name:22s} {r['bler']:.4g}  {_fmt(r['ebn0_db_at_target'], '.2f'):>6s} dB  "
              f"gap {_fmt(r['gap_closed_db'], '+.2f'):>6s} (dB)  {_fmt(r['gap_closed_bler'], '+.2f'):>6s} (BLER)  "
              f"adapt {r['adapt_ms_per_channel']:.3f} ms/channel")
