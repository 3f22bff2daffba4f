"""gr_e2e plot: figures that measure something of a checkpoint (plot regions).

As in cli.py: arguments are parsed and checked here under the option's
name, every computation lives in core (core.regions, core.regions_plot,
core.qam_reference), and bad arguments end with 'gr_e2e: error: ...'.
"""
import os

from . import cli
from .core import validate

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def _train_ebn0(text):
    """--train-ebn0-db: '10' -> 10.0, '4:12' -> (4.0, 12.0) drawn per example."""
    try:
        values = [float(p) for p in text.split(":")]
        if len(values) == 1:
            return validate.db("--train-ebn0-db", values[0])
        if len(values) == 2 and values[0] < values[1]:
            return validate.db_or_range("--train-ebn0-db", tuple(values))
    except ValueError:
        pass
    raise cli.UsageError(f"--train-ebn0-db must be a number or a range LO:HI in dB with LO < HI, got {text!r}")


QAM_OPTIONS = ("train_ebn0_db", "train_steps", "decoder_hidden", "save_checkpoint")


def _qam16_link(args):
    """--constellation qam16: train the receiver on fixed 16-QAM now (seconds), save it if asked."""
    from .core import checkpoint, qam_reference, regions
    train_ebn0 = _train_ebn0(args.train_ebn0_db or str(qam_reference.DEFAULT_TRAIN_EBN0_DB))
    steps = validate.integer("--train-steps", qam_reference.DEFAULT_STEPS if args.train_steps is None
                             else args.train_steps, 1)
    hidden = cli.parse_widths(args.decoder_hidden, "--decoder-hidden") if args.decoder_hidden else None
    if args.save_checkpoint:
        folder = os.path.dirname(os.path.abspath(args.save_checkpoint))
        if not os.path.isdir(folder):
            raise cli.UsageError(f"--save-checkpoint {args.save_checkpoint}: folder {folder} does not exist")
    cfg, enc, dec, meta = qam_reference.train_qam16_link(train_ebn0, steps=steps, decoder_hidden=hidden,
                                                         seed=args.seed, progress_bar=not args.quiet)
    name = "16-QAM, neural receiver"
    if args.save_checkpoint:
        checkpoint.save_link(args.save_checkpoint, cfg, enc, dec, metadata=meta)
        name = args.save_checkpoint
        print(f"wrote {args.save_checkpoint}: fixed 16-QAM transmitter, receiver trained {steps} steps")
    return regions.link_from_networks(cfg, enc, dec, meta, name)


def cmd_regions(args):
    import torch
    from .core import regions, regions_plot
    validate.integer("--grid", args.grid, 8, 4000)
    validate.integer("--samples", args.samples, 1)
    validate.integer("--seed", args.seed, 0)
    validate.integer("--threads", args.threads, 1)
    validate.real("--window-sigmas", args.window_sigmas, 0, low_open=True)
    if args.window is not None:
        validate.real("--window", args.window, 0, low_open=True)
    if not args.out.lower().endswith(FIGURE_SUFFIXES):
        raise cli.UsageError(f"--out must name a .png, .svg or .pdf file, got {args.out!r}")
    ebn0 = cli.parse_grid(args.ebn0_db)
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        given = [o for o in QAM_OPTIONS if getattr(args, o)]
        if given:
            raise cli.UsageError(f"--{given[0].replace('_', '-')} applies to --constellation qam16 only; "
                                 "a checkpoint's receiver is already trained")
        link = regions.link_from_checkpoint(args.checkpoint)
    else:
        link = _qam16_link(args)
    half = args.window if args.window is not None else regions.default_half_width(link, ebn0, args.window_sigmas)
    grid = regions.make_grid(half, args.grid)
    maps = regions.decision_maps(link, grid)
    rows = regions.measure(link, ebn0, grid, samples=args.samples, seed=args.seed, maps=maps)
    print(f"{link.name}: M={link.M}, n=1 complex; receiver trained at {regions.describe_training(link.train_ebn0_db)}"
          + (f" on {link.train_channel}" if link.train_channel else ""))
    if link.train_channel not in (None, "awgn"):
        print(f"note: the ML reference (Voronoi) and every mass below are for AWGN, not {link.train_channel}")
    print(f"window ±{half:.4g} ({args.grid}x{args.grid} cells, {(maps[0] != maps[1]).mean():.2%} of its area "
          f"decided differently); Monte Carlo: {args.samples} samples per Eb/N0, seed {args.seed}")
    print(regions.format_table(rows))
    regions_plot.plot_regions(link, grid, *maps, rows, args.out)
    print(f"wrote {args.out}")
    return 0


def add_parser(subparsers):
    """Register `plot` (with its figures as sub-commands) on gr_e2e's subparsers."""
    from .core import qam_reference, regions
    p = subparsers.add_parser("plot", help="figures that measure a checkpoint: decision regions (plot regions)")
    figures = p.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    r = figures.add_parser(
        "regions", help="decision regions of an n = 1 complex link: neural decoder against ML (Voronoi)",
        description="Draw the neural decoder's decisions and the ML (nearest point) decisions over a window "
                    "wider than the training data, and measure P(NN decision != ML decision) and both "
                    "symbol error rates on AWGN at each Eb/N0 (Monte Carlo with 95% Wilson intervals; "
                    "also by integrating the Gaussian over the grid cells).")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="link checkpoint with n = 1 complex channel use (gr_e2e train --n 1)")
    source.add_argument("--constellation", choices=["qam16"],
                        help="qam16: fixed Gray 16-QAM transmitter, train only a receiver now (seconds)")
    r.add_argument("--out", required=True, help="figure to write (.png, .svg or .pdf)")
    r.add_argument("--ebn0-db", default="0,4,8",
                   help="Eb/N0 values of the masses: START:STOP:STEP or a comma list (default: %(default)s)")
    r.add_argument("--window", type=cli._number, default=None,
                   help="half-width of the square window around 0 (default: the constellation's extent plus "
                        "--window-sigmas noise stds at the lowest Eb/N0 shown or trained)")
    r.add_argument("--window-sigmas", type=cli._number, default=regions.DEFAULT_SIGMAS,
                   help="noise standard deviations (per real dimension) beyond the constellation "
                        "(default: %(default)s)")
    r.add_argument("--grid", type=cli._number, default=regions.DEFAULT_CELLS,
                   help="cells per axis (default: %(default)s)")
    r.add_argument("--samples", type=cli._number, default=regions.DEFAULT_SAMPLES,
                   help="Monte-Carlo samples per Eb/N0 (default: %(default)s)")
    r.add_argument("--seed", type=cli._number, default=0,
                   help="seed of the Monte-Carlo draws and of qam16 training (default: %(default)s)")
    r.add_argument("--threads", type=cli._number, default=1, help="torch CPU threads (default: %(default)s)")
    q = r.add_argument_group("16-QAM reference (--constellation qam16)")
    q.add_argument("--train-ebn0-db", default=None,
                   help=f"receiver training Eb/N0 in dB, or LO:HI per example (default: "
                        f"{qam_reference.DEFAULT_TRAIN_EBN0_DB:g})")
    q.add_argument("--train-steps", type=cli._number, default=None,
                   help=f"receiver training steps of 1000 messages (default: {qam_reference.DEFAULT_STEPS})")
    q.add_argument("--decoder-hidden", default="",
                   help="receiver hidden widths, e.g. 64,64 (default: 16, the paper's M)")
    q.add_argument("--save-checkpoint", default="",
                   help="also write the 16-QAM link (fixed transmitter, trained receiver) to this file")
    r.add_argument("--quiet", action="store_true", help="no progress bar while a qam16 receiver trains")
    r.set_defaults(func=cmd_regions)
    return p
