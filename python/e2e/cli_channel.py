"""gr_e2e capture, and gr_e2e train --method ra-gan | gan: the learned channel from the command line.

capture writes a channel dataset (core.channel_dataset) from a simulated
channel. train --method ra-gan | gan trains a link through a learned channel
model (core.channel_gan, core.channel_gan_training):

- on a simulated channel (--channel): Algorithm 1 of the residual-aided GAN
  paper. Per batch the discriminator D, the generator G, the receiver R and
  the transmitter T each take one Adam step; R learns on what the real
  channel delivered, T through G, so the real channel is never
  differentiated (it could be a radio);
- on a recorded dataset (--dataset): G is first fitted to 80% of the pairs,
  then T and R are both trained through the frozen G (model-aware training
  with the learned channel in place of a channel formula): with a dataset
  there is no real channel to give R real received symbols. The other 20%
  of the pairs measure how faithful G is.

As in cli.py: arguments are parsed and checked here under the option's
name, every computation lives in core, and bad arguments end with
'gr_e2e: error: ...'.
"""
import json
import os
import time

from . import cli
from .core import validate

CAPTURE_EXAMPLE = """examples:
  # 10000 pairs of the PA channel at 8 dB, i.i.d. CN(0, 1) inputs (they cover the input space)
  gr_e2e capture --channel pa --ebn0-db 8 --count 10000 --out runs/pa_pairs.safetensors
  # the same channel fed with what a trained link sends
  gr_e2e capture --channel pa --ebn0-db 8 --count 10000 --checkpoint runs/link/checkpoint.safetensors \\
      --out runs/pa_link_pairs.safetensors
"""

GAN_METHODS = ("ra-gan", "gan")
# What each method means: (generator, L2 weight lambda on all four networks).
METHOD_DEFAULTS = {"ra-gan": ("residual", 0.01), "gan": ("plain", 0.0)}
# Share of a --dataset's rows held out to measure the fitted channel model.
HOLDOUT = 0.2
# Messages per batch of ra-gan and gan: core.channel_gan_training.DEFAULT_BATCH, the paper's
# (a number here, so building the parser needs no torch).
DEFAULT_BATCH = 320


class _ParserDefault(int):
    """train's --batch-size default, told apart from the same number given on the command line.

    ra-gan and gan train with batches of 320 (the paper's) unless --batch-size is given.
    """


# --- capture ---------------------------------------------------------------------------

def cmd_capture(args):
    import torch
    from .core import channel_dataset, channels, checkpoint
    validate.integer("--count", args.count, 1)
    validate.integer("--seed", args.seed, 0)
    ebn0 = validate.db("--ebn0-db", args.ebn0_db)
    torch.set_num_threads(validate.integer("--threads", args.threads, 1))
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise cli.UsageError(f"--out {args.out}: folder {folder} does not exist")
    if os.path.exists(args.out) and not args.force:
        raise cli.UsageError(f"--out {args.out} exists; --force overwrites it")
    channel = channels.by_name(args.channel)
    encoder = None
    if args.checkpoint:
        cfg, encoder = checkpoint.load_network(args.checkpoint, "encoder")
        for option, given, held in (("--M", args.M, cfg.M), ("--n", args.n, cfg.n)):
            if given is not None and given != held:
                raise cli.UsageError(f"{option} {given}: --checkpoint {args.checkpoint} holds a link with "
                                     f"{option[2:]}={held}")
        if cfg.mode == "real" and not channel.preserves_real:
            raise cli.UsageError(f"--channel {args.channel}: --checkpoint {args.checkpoint} is a real-mode link "
                                 "and this channel rotates signal into the imaginary part")
        M, n = cfg.M, cfg.n
        batch_size = 1000 if args.batch_size is None else validate.integer("--batch-size", args.batch_size, 1)
        encoder.eval()
    else:
        if args.batch_size is not None:
            raise cli.UsageError("--batch-size applies with --checkpoint (the link's training batches)")
        M = validate.integer("--M", 16 if args.M is None else args.M, 2)
        n = validate.integer("--n", 7 if args.n is None else args.n, 1)
        batch_size = None
    dataset = channel_dataset.simulate_dataset(channel, n, ebn0, args.count, M=M, encoder=encoder, seed=args.seed,
                                               batch_size=batch_size, source=f"simulation: {args.channel}")
    channel_dataset.save_dataset(args.out, dataset)
    inputs = (f"the transmitted symbols of {args.checkpoint} on its training batches (seed {args.seed}, "
              f"{batch_size} messages per batch)" if encoder is not None else "i.i.d. CN(0, 1) symbols")
    print(f"wrote {args.out}: {len(dataset)} rows of n={n} pairs (M={M}), {dataset.source} at Eb/N0 {ebn0:g} dB; "
          f"x: {inputs}")
    return 0


def add_parser(subparsers):
    """Register `capture` on gr_e2e's subparsers."""
    import argparse
    from .core import channels
    c = subparsers.add_parser(
        "capture", help="write a channel dataset: (x, y) pairs of a simulated channel",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CAPTURE_EXAMPLE,
        description="Simulate a channel and write the observed pairs (sent x, received y) as a channel dataset "
                    "(.safetensors with metadata), what `gr_e2e train --method ra-gan --dataset` fits a "
                    "channel model to. Recording a running flowgraph (a radio) is the channel_capture "
                    "block's job; it writes the same format.")
    c.add_argument("--channel", choices=channels.NAMES, required=True, help="the simulated channel")
    c.add_argument("--ebn0-db", type=cli._number, required=True,
                   help="Eb/N0 in dB of the channel's noise (N0 = 1/(R Eb/N0), R = log2(M)/n)")
    c.add_argument("--count", type=cli._number, required=True, help="rows (messages) to write")
    c.add_argument("--checkpoint", default="",
                   help="a link (or transmitter): x is what it sends on its training batches; "
                        "default: i.i.d. CN(0, 1) symbols")
    c.add_argument("--M", type=cli._number, default=None,
                   help="messages of the link, which fixes the rate (default: the checkpoint's, or 16)")
    c.add_argument("--n", type=cli._number, default=None,
                   help="complex channel uses per row (default: the checkpoint's, or 7)")
    c.add_argument("--batch-size", type=cli._number, default=None,
                   help="with --checkpoint: messages per training batch (default 1000)")
    c.add_argument("--seed", type=cli._number, default=0, help="seed of the inputs and of the channel's draws")
    c.add_argument("--threads", type=cli._number, default=1, help="torch CPU threads")
    c.add_argument("--out", required=True, help="dataset file to write (.safetensors)")
    c.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    c.set_defaults(func=cmd_capture)


# --- info of a dataset --------------------------------------------------------------------

def print_dataset_info(path, as_json=False):
    """Print a channel dataset's metadata and row count; False (nothing printed) if path is not a dataset."""
    from .core import channel_dataset, checkpoint
    try:
        if channel_dataset.METADATA_KEY not in checkpoint.read_metadata(path):
            return False
    except checkpoint.CheckpointError:
        return False
    ds = channel_dataset.load_dataset(path)
    meta = ds.metadata()
    extra = [name for name in ("messages", "batch_index") if getattr(ds, name) is not None]
    print(f"{path}: channel dataset, {os.path.getsize(path)} bytes")
    print(f"rows: {len(ds)} pairs (x, y) of n={ds.n} complex symbols" + (f"; also {', '.join(extra)}" if extra else ""))
    for k in sorted(meta):
        print(f"metadata {k}: {meta[k]}")
    if as_json:
        print(json.dumps({"kind": "channel_dataset", "rows": len(ds), "metadata": meta}, sort_keys=True))
    return True


# --- train --method ra-gan | gan ------------------------------------------------------------

def _method_settings(args):
    """(generator kind, l2) of --method, with --generator and --l2 overriding it."""
    generator, l2 = METHOD_DEFAULTS[args.method]
    if args.generator:
        generator = args.generator
    if args.l2 is not None:
        l2 = validate.real("--l2", args.l2, 0)
    return generator, float(l2)


def _check_train_args(args):
    """Refuse what these methods cannot do, naming the option; returns (batch_size, ebn0_db)."""
    m = args.method
    if args.mode != "complex":
        raise cli.UsageError(f"--mode {args.mode}: --method {m} trains complex-mode links only (the channel "
                             "models learn complex symbols)")
    if args.restarts != 1 or args.decoder_finetune_steps:
        raise cli.UsageError("--restarts and --decoder-finetune-steps apply to --method model-aware only")
    if args.start:
        raise cli.UsageError(f"--start applies to --method adversarial or gan-defense, not {m}")
    if args.lr_schedule and not args.dataset:
        raise cli.UsageError(f"--lr-schedule applies to --method {m} with --dataset only (Algorithm 1 keeps "
                             "the learning rate constant)")
    if args.dataset and args.pretrain_steps:
        raise cli.UsageError("--pretrain-steps applies without --dataset; with --dataset the channel model is "
                             "fitted for --fit-steps before the link trains")
    if args.fit_steps is not None and not args.dataset:
        raise cli.UsageError("--fit-steps applies with --dataset only")
    batch_size = DEFAULT_BATCH if isinstance(args.batch_size, _ParserDefault) else args.batch_size
    for option, value in (("--steps", args.steps), ("--batch-size", batch_size), ("--threads", args.threads),
                          ("--fidelity-rows", args.fidelity_rows)):
        validate.integer(option, value, 1)
    for option, value in (("--seed", args.seed), ("--pretrain-steps", args.pretrain_steps)):
        validate.integer(option, value, 0)
    if args.fit_steps is not None:
        validate.integer("--fit-steps", args.fit_steps, 1)
    if args.lr is not None:
        validate.real("--lr", args.lr, 0, low_open=True)
    ebn0 = cli.parse_train_ebn0(args.ebn0_db)
    if isinstance(ebn0, tuple):
        raise cli.UsageError(f"--ebn0-db: --method {m} trains at one Eb/N0, got the range {args.ebn0_db!r}")
    return int(batch_size), validate.db("--ebn0-db", ebn0)


def _load_training_dataset(path, cfg):
    from .core import channel_dataset
    ds = channel_dataset.load_dataset(path)
    if ds.n != cfg.n:
        raise cli.UsageError(f"--dataset {path} holds pairs of n={ds.n} channel uses, the link has --n {cfg.n}")
    if ds.mode != "complex":
        raise cli.UsageError(f"--dataset {path} was recorded from a {ds.mode}-mode link; the channel model "
                             "learns complex symbols")
    if len(ds) < 2:
        raise cli.UsageError(f"--dataset {path} holds {len(ds)} row; at least 2 are needed (fit and held out)")
    return ds


def _fidelity(generator, x, y_real, messages, seed):
    """fidelity_report of the generator's y against y_real for the same x, and the generated y."""
    from .core import channel_gan, fidelity, prng
    import torch
    with torch.no_grad():
        y_fake = channel_gan.LearnedChannel(generator)(x, generator=prng.torch_generator(seed, prng.EVAL,
                                                                                         prng.CHANNEL_GAN))
    return fidelity.fidelity_report(x, y_real, y_fake, messages, seed=seed), y_fake


def train_gan(args):
    """train --method ra-gan | gan: writes the link, the channel model, plots, train.json (module docstring)."""
    import torch
    from .core import (channel_dataset, channel_gan, channel_gan_training as cgt, channels, checkpoint,
                       kinds, models, plots, training)
    batch_size, ebn0 = _check_train_args(args)
    generator_kind, l2 = _method_settings(args)
    torch.set_num_threads(args.threads)
    cfg = cli.link_config(args)
    dataset = _load_training_dataset(args.dataset, cfg) if args.dataset else None
    channel = None if dataset is not None else channels.by_name(args.channel)
    os.makedirs(args.out, exist_ok=True)
    enc, dec = models.build(cfg, seed=args.seed)
    ccfg = channel_gan.ChannelModelConfig(
        n=cfg.n, mode="complex", generator=generator_kind, discriminator=args.discriminator, M=cfg.M,
        ebn0_db=dataset.ebn0_db if dataset is not None else ebn0)
    gen, disc = channel_gan.build_channel_model(ccfg, seed=args.seed)
    progress_bar = not args.quiet
    t0 = time.time()
    recipe = {"generator": generator_kind, "discriminator": args.discriminator, "l2": l2,
              "batch_size": batch_size, "xavier": bool(args.xavier)}
    if dataset is None:
        lr = cgt.DEFAULT_LR if args.lr is None else args.lr
        history = cgt.train_gan_link(enc, dec, gen, disc, channel, ebn0, steps=args.steps, batch_size=batch_size,
                                     lr=lr, l2=l2, seed=args.seed, pretrain_steps=args.pretrain_steps,
                                     xavier=args.xavier, progress_bar=progress_bar)
        fit_history = None
        recipe.update(lr=lr, pretrain_steps=args.pretrain_steps)
        source, link_ebn0 = args.channel, ebn0
        with torch.no_grad():
            errors = training.validation_errors(enc, dec, channel, ebn0, seed=args.seed)
        validated_on = f"the real channel ({args.channel})"
        # A fresh held-out set: the trained transmitter's symbols over the real channel (stream CAPTURE).
        held = channel_dataset.simulate_dataset(channel, cfg.n, ebn0, args.fidelity_rows, encoder=enc,
                                                seed=args.seed, batch_size=batch_size)
        compared = "the trained transmitter's symbols over the real channel (fresh draws)"
    else:
        fit_lr = cgt.DEFAULT_LR if args.lr is None else args.lr
        link_lr = training.DEFAULT_LR if args.lr is None else args.lr
        fit_steps = args.steps if args.fit_steps is None else args.fit_steps
        train_rows, held = channel_dataset.split(dataset, HOLDOUT, seed=args.seed)
        fit_history = cgt.fit_channel(gen, disc, train_rows, steps=fit_steps, batch_size=batch_size, lr=fit_lr,
                                      l2=l2, lr_schedule=args.lr_schedule or "cosine", seed=args.seed,
                                      progress_bar=progress_bar)
        # The fitted model is the channel from here on: frozen, T and R train through it.
        for p in gen.parameters():
            p.requires_grad_(False)
        learned = channel_gan.LearnedChannel(gen)
        if args.xavier:
            cgt.xavier_init(enc), cgt.xavier_init(dec)
        history = training.train_model_aware(
            enc, dec, learned, ebn0, steps=args.steps, batch_size=batch_size, lr=link_lr,
            lr_schedule=args.lr_schedule or training.DEFAULT_SCHEDULE, seed=args.seed, progress_bar=progress_bar,
            desc="link through the channel model")
        enc.eval(), dec.eval()
        recipe.update(lr=link_lr, channel_model_lr=fit_lr, fit_steps=fit_steps, holdout=HOLDOUT,
                      dataset=args.dataset, dataset_rows=len(dataset), fitted_rows=len(train_rows),
                      lr_schedule=args.lr_schedule or training.DEFAULT_SCHEDULE,
                      channel_model_lr_schedule=args.lr_schedule or "cosine")
        # The learned channel ignores N0 (its noise is what it learned): the Eb/N0 is the dataset's.
        source, link_ebn0 = f"dataset {args.dataset} ({dataset.source})", dataset.ebn0_db
        with torch.no_grad():
            errors = training.validation_errors(enc, dec, learned, ebn0, seed=args.seed)
        # Optimistic: the transmitter learned to exploit this very model (e.g. directions in which its
        # generated noise is weaker than the channel's); only a real channel gives an honest figure.
        validated_on = "the learned channel model (a dataset has no real channel; optimistic)"
        compared = f"{len(held)} held-out rows of the dataset"
    seconds = time.time() - t0
    with torch.no_grad():
        report, y_fake = _fidelity(gen, held.x, held.y, held.messages, args.seed)

    ckpt = os.path.join(args.out, "checkpoint.safetensors")
    checkpoint.save_link(ckpt, cfg, enc, dec, metadata={"ebn0_db": json.dumps(link_ebn0), "seed": args.seed,
                                                        "steps": args.steps, "method": args.method,
                                                        "channel": source})
    model_path = os.path.join(args.out, "channel_model.safetensors")
    channel_gan.save_channel_model(model_path, ccfg, gen, disc,
                                   metadata={"method": args.method, "seed": args.seed, "l2": l2,
                                             "trained_on": source, "steps": recipe.get("fit_steps", args.steps)})
    title = f"{args.method}, M={cfg.M} n={cfg.n}"
    plot_losses(history, fit_history, os.path.join(args.out, "loss.png"), title=f"training losses, {title}")
    plots.plot_constellation(enc.symbol_table(), cfg.mode, os.path.join(args.out, "constellation.png"),
                             title=f"learned constellation, {title}")
    plot_fidelity(held.x, held.y, y_fake, report, os.path.join(args.out, "fidelity.png"),
                  title=f"channel model against {'held-out pairs' if dataset is not None else 'the channel'}")
    fid_path = os.path.join(args.out, "fidelity.json")
    cli._write_json(fid_path, dict(report, compared=compared, channel_model=model_path))
    final = history["transmitter_loss" if dataset is None else "loss"][-1]
    run = {"restart": 0, "seed": args.seed, "validation_errors": errors, "validation_blocks": 100_000,
           "validated_on": validated_on, "final_loss": final}
    summary = {"checkpoint": ckpt, "channel_model": model_path,
               "config": json.loads(kinds.config_json("autoencoder", cfg)),
               "channel_model_config": json.loads(kinds.config_json("channel_model", ccfg)),
               "ebn0_db": link_ebn0, "channel": source, "method": args.method, "train_seconds": round(seconds, 2),
               "chosen_restart": 0, "restarts": [run], "history": history, "recipe": recipe,
               "fidelity": {k: v for k, v in report.items() if not k.endswith("_per_dim")}}
    if fit_history is not None:
        summary["channel_model_history"] = fit_history
    cli._write_json(os.path.join(args.out, "train.json"), summary)
    print(f"trained in {seconds:.1f} s ({args.method}, {generator_kind} generator, l2 {l2:g}; "
          f"{errors}/100000 validation block errors on {validated_on})")
    print(f"channel model against {compared}: noise variance per real dimension {report['noise_variance_real']:.4g} "
          f"real, {report['noise_variance_fake']:.4g} generated; MMD p-value {report['mmd_p_value']:.3g}")
    print(f"wrote {ckpt}, channel_model.safetensors, loss.png, constellation.png, fidelity.json, fidelity.png, "
          f"train.json in {args.out}")
    return 0


def add_train_options(parser):
    """train's options for --method ra-gan and gan (cli.build_parser calls it after --batch-size exists)."""
    from .core import channel_gan
    parser.set_defaults(batch_size=_ParserDefault(parser.get_default("batch_size")))
    g = parser.add_argument_group(
        "learned channel (--method ra-gan or gan)",
        "ra-gan: residual generator y = x + G(x, z) and an L2 weight penalty (lambda 0.01) on all four "
        "networks; gan: a plain generator y = G(x, z), no penalty. On --channel (simulated, never "
        "differentiated) the receiver learns on the real received symbols and the transmitter through the "
        "generator (Algorithm 1); --batch-size defaults to 320, --lr to 1e-3, --ebn0-db is one value. "
        "With --dataset the channel model is fitted to 80% of the recorded pairs first, then transmitter "
        "and receiver both train through the frozen model (there is no real channel; the L2 penalty applies "
        "to the channel model only; the Eb/N0 is the dataset's, --ebn0-db is not used); the other 20% "
        "measure the model (fidelity.json, fidelity.png)")
    g.add_argument("--dataset", default="",
                   help="a channel dataset (gr_e2e capture, or the channel_capture block) to fit the channel "
                        "model to, instead of training over --channel")
    g.add_argument("--generator", choices=channel_gan.GENERATORS, default=None,
                   help="override the method's generator (ra-gan: residual, gan: plain)")
    g.add_argument("--discriminator", choices=channel_gan.DISCRIMINATORS, default="pair",
                   help="pair: D sees (x, y), so it judges p(y | x); output: D sees y only (the paper's form)")
    g.add_argument("--l2", type=cli._number, default=None,
                   help="override the method's L2 weight lambda (ra-gan: 0.01, gan: 0)")
    g.add_argument("--pretrain-steps", type=cli._number, default=0,
                   help="D and G steps on the initial transmitter over the real channel before the joint loop")
    g.add_argument("--fit-steps", type=cli._number, default=None,
                   help="with --dataset: channel model steps before the link trains (default: --steps)")
    g.add_argument("--xavier", action="store_true",
                   help="initialise transmitter and receiver Xavier-uniform (the paper's initialisation)")
    g.add_argument("--fidelity-rows", type=cli._number, default=5000,
                   help="without --dataset: rows of the fresh held-out set the channel model is compared on")


# --- figures ---------------------------------------------------------------------------------

LOSS_LABELS = {"d_loss": "discriminator", "g_loss": "generator", "receiver_loss": "receiver (real channel)",
               "transmitter_loss": "transmitter (through G)", "loss": "link (through the channel model)"}


def plot_losses(history, fit_history, path, title=None):
    """Losses over steps: the four networks of Algorithm 1, or the channel model fit then the link.

    history:     {'step', 'd_loss', 'g_loss', 'receiver_loss', 'transmitter_loss'} (train_gan_link)
                 or {'step', 'loss', ...} (train_model_aware)
    fit_history: None, or fit_channel's {'step', 'd_loss', 'g_loss'}, drawn in a first panel
    """
    from .core import plots
    panels = [("channel model fit", fit_history)] if fit_history is not None else []
    panels.append(("link" if fit_history is not None else "per network", history))
    fig = plots._new_figure((6.4 * len(panels), 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, h) in zip(axes, panels):
        for i, key in enumerate(k for k in LOSS_LABELS if k in h):
            ax.plot(h["step"], h[key], color=f"C{i}", lw=1.2, label=LOSS_LABELS[key])
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
    if title:
        fig.suptitle(title)
    return plots._save(fig, path)


def plot_fidelity(x, y_real, y_fake, report, path, title=None, points=2000):
    """Generated against real received symbols: scatter of the symbols, residual variance per dimension.

    x, y_real, y_fake: complex [N, n] tensors (the same x for both y); report: fidelity_report's dict.
    The real variance carries its 99% chi-square interval (fidelity.variance_interval).
    """
    import numpy as np
    from .core import fidelity, plots
    fig = plots._new_figure((12.8, 4.8))
    ax_iq, ax_var = fig.subplots(1, 2)
    for y, name, color in ((y_real, "real", "C0"), (y_fake, "generated", "C1")):
        flat = y.detach().numpy().reshape(-1)[:points]
        ax_iq.plot(flat.real, flat.imag, ".", ms=2, alpha=0.4, color=color, label=name)
    ax_iq.set_xlabel("in-phase")
    ax_iq.set_ylabel("quadrature")
    ax_iq.set_aspect("equal", adjustable="datalim")
    ax_iq.grid(True, alpha=0.3)
    ax_iq.legend(loc="upper right", markerscale=4)
    ax_iq.set_title(f"received symbols (first {points} of {y_real.numel()})")
    real = np.asarray(report["noise_variance_real_per_dim"])
    fake = np.asarray(report["noise_variance_fake_per_dim"])
    dims = np.arange(len(real))
    dof = max(1, report["rows"] - 1)
    lo_hi = np.array([fidelity.variance_interval(v, dof, 0.99) for v in real]).T
    ax_var.errorbar(dims, real, yerr=np.abs(lo_hi - real), fmt="o", color="C0", capsize=3,
                    label="real (99% interval)")
    ax_var.plot(dims, fake, "x", color="C1", ms=8, label="generated")
    ax_var.set_xlabel("real dimension (real parts, then imaginary parts)")
    ax_var.set_ylabel("variance of y - x")
    ax_var.grid(True, alpha=0.3)
    ax_var.legend(loc="upper right")
    p = report.get("mmd_p_value")
    ax_var.set_title("residual variance" + (f"; MMD test p = {p:.3g}" if p is not None else ""))
    if title:
        fig.suptitle(title)
    return plots._save(fig, path)
