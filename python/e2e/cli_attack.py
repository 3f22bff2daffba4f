"""gr_e2e attack, and gr_e2e train --method adversarial | gan-defense.

As in cli.py: arguments are parsed and checked here under the option's
name, every computation lives in core (core.attacks, core.robustness,
core.defense, core.adversary, core.perturbation), and bad arguments end
with 'gr_e2e: error: ...'.
"""
import json
import os
import time

from . import cli
from .core import validate

ATTACK_EXAMPLE = """examples:
  # white-box: a universal perturbation crafted on the link's own decoder, BLER with and without it
  gr_e2e attack --checkpoint runs/regular/checkpoint.safetensors --psr-db -6 --out runs/attack
  # black-box: crafted on a substitute link the attacker trained, applied to the target
  gr_e2e attack --checkpoint runs/regular/checkpoint.safetensors --substitute runs/sub/checkpoint.safetensors \\
      --shift-invariant --out runs/attack_bb
"""


def _folder_for(path, option):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise cli.UsageError(f"{option} {path}: folder {folder} does not exist")


# --- attack -------------------------------------------------------------------------

def cmd_attack(args):
    import torch
    from .core import attacks, checkpoint, kinds, perturbation, plots, report, robustness
    from .core.learned import LearnedLink
    for option in ("--messages", "--passes", "--min-errors", "--max-blocks", "--threads"):
        validate.integer(option, getattr(args, option[2:].replace("-", "_")), 1)
    validate.integer("--seed", args.seed, 0)
    attacks.budget(validate.real("--psr-db", args.psr_db, *attacks.PSR_RANGE_DB), 1)
    craft_ebn0 = validate.db("--ebn0-db", args.ebn0_db)
    grid = cli.parse_grid(args.eval_ebn0_db)
    torch.set_num_threads(args.threads)
    cfg, enc, dec = checkpoint.load_link(args.checkpoint)
    if args.substitute:
        sub_cfg, sub_enc, sub_dec = checkpoint.load_link(args.substitute, expect={"M": cfg.M, "n": cfg.n})
        if sub_cfg.mode != cfg.mode:
            raise cli.UsageError(f"--substitute {args.substitute} is a {sub_cfg.mode}-mode link; the target is "
                                 f"{cfg.mode}-mode")
        # The attacker holds only its own model: the perturbation is crafted on the substitute link.
        craft_enc, craft_dec, crafted_on = sub_enc, sub_dec, args.substitute
    else:
        craft_enc, craft_dec, crafted_on = enc, dec, args.checkpoint
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    p = robustness.craft_universal(craft_dec, craft_enc, craft_ebn0, args.psr_db, mode=cfg.mode,
                                   messages=args.messages, shift_invariant=args.shift_invariant,
                                   passes=args.passes, seed=args.seed, progress_bar=not args.quiet)
    seconds = time.time() - t0
    name = "black-box" if args.substitute else "white-box"
    pcfg = perturbation.PerturbationConfig(M=cfg.M, n=cfg.n, mode=cfg.mode, psr_db=float(args.psr_db),
                                           method="universal", shift_invariant=bool(args.shift_invariant),
                                           crafted_on=os.path.basename(crafted_on), ebn0_db=float(craft_ebn0))
    p_path = os.path.join(args.out, "perturbation.safetensors")
    perturbation.save_perturbation(p_path, pcfg, p, metadata={"attack": name, "seed": args.seed})
    shift = "random" if args.shift_invariant else 0
    chans = robustness.attack_channels(args.psr_db, {name: p}, mode=cfg.mode, seed=args.seed, shift=shift)
    curves = robustness.evaluate_attacks({"learned": LearnedLink(enc, dec, name="learned")}, chans, grid,
                                         min_errors=args.min_errors, max_blocks=args.max_blocks, seed=args.seed,
                                         progress_bar=not args.quiet)
    print(report.format_table(curves))
    out_json = os.path.join(args.out, "attack.json")
    cli._write_json(out_json, {
        "checkpoint": args.checkpoint, "substitute": args.substitute or None, "attack": name,
        "config": json.loads(kinds.config_json("autoencoder", cfg)), "psr_db": args.psr_db,
        "craft_ebn0_db": craft_ebn0, "messages": args.messages, "shift_invariant": args.shift_invariant,
        "craft_seconds": round(seconds, 2), "perturbation": p_path, "curves": curves})
    plots.plot_bler(curves, os.path.join(args.out, "attack.png"),
                    title=f"M={cfg.M}, n={cfg.n}, {cfg.mode}: {name} universal attack, PSR {args.psr_db:g} dB",
                    baselines=["learned, no attack"])
    print(f"crafted in {seconds:.1f} s; wrote {p_path}, attack.json and attack.png in {args.out}")
    return 0


def add_parser(subparsers):
    """Register `attack` on gr_e2e's subparsers."""
    import argparse
    from .core import robustness
    a = subparsers.add_parser(
        "attack", help="craft a universal adversarial perturbation and measure BLER under it",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ATTACK_EXAMPLE,
        description="Craft one input-agnostic perturbation (Sadeghi & Larsson's universal attack) at a "
                    "perturbation-to-signal ratio PSR = ||p||^2 / (n Es), on the link's own decoder "
                    "(white-box) or on a --substitute link (black-box), save it (kind 'perturbation', "
                    "what adversarial_source plays) and score the link with no attack, Gaussian jamming "
                    "of the same power, and the perturbation, on the same noise.")
    a.add_argument("--checkpoint", required=True, help="the attacked link (.safetensors, encoder and decoder)")
    a.add_argument("--substitute", default="",
                   help="black-box: a link the attacker trained itself (same M, n, mode); the perturbation "
                        "is crafted on it and applied to --checkpoint")
    a.add_argument("--psr-db", type=cli._number, default=-6.0, help="perturbation-to-signal ratio in dB")
    a.add_argument("--ebn0-db", type=cli._number, default=8.5, help="Eb/N0 of the attacker's received examples")
    a.add_argument("--messages", type=cli._number, default=robustness.DEFAULT_ATTACK_MESSAGES,
                   help="received examples the perturbation is crafted on")
    a.add_argument("--passes", type=cli._number, default=3, help="passes of the crafting algorithm over them")
    a.add_argument("--shift-invariant", action="store_true",
                   help="craft for an attacker that is not symbol-aligned; scored with a random shift per "
                        "message")
    a.add_argument("--eval-ebn0-db", default="0:12:2", help="Eb/N0 grid of the evaluation: START:STOP:STEP or a list")
    a.add_argument("--min-errors", type=cli._number, default=100, help="stop a point after this many block errors")
    a.add_argument("--max-blocks", type=cli._number, default=200_000, help="... or after this many blocks")
    a.add_argument("--seed", type=cli._number, default=0, help="seed of the attacker's data and of the evaluation")
    a.add_argument("--threads", type=cli._number, default=1, help="torch CPU threads")
    a.add_argument("--out", required=True, help="output folder: perturbation.safetensors, attack.json, attack.png")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=cmd_attack)


# --- train --method adversarial | gan-defense -----------------------------------------

ROBUST_METHODS = ("adversarial", "gan-defense")


def train_robust(args, cfg, channel, ebn0):
    """The receiver of --start retrained against attacks, its transmitter frozen.

    Returns (encoder, decoder, report) as cli.train_model_free does, plus the
    generator for gan-defense in report['generator'].
    """
    from .core import adversary, checkpoint, defense, training
    if not args.start:
        raise cli.UsageError(f"--method {args.method} needs --start: the trained link whose receiver it "
                             "makes robust (its transmitter stays as it is)")
    if args.restarts != 1 or args.decoder_finetune_steps:
        raise cli.UsageError("--restarts and --decoder-finetune-steps apply to --method model-aware only")
    attacks_psr = validate.real("--psr-db", args.psr_db, -60.0, 20.0)
    start_cfg, enc, dec = checkpoint.load_link(args.start)
    lr = defense.DEFAULT_LR if args.lr is None else args.lr
    common = dict(steps=args.steps, batch_size=args.batch_size, lr=lr, seed=args.seed, progress_bar=not args.quiet)
    generator = None
    if args.method == "adversarial":
        hist = defense.train_adversarial(enc, dec, channel, ebn0, attacks_psr, **common)
    else:
        gamma = defense.DEFAULT_GAMMA if args.gamma is None else validate.real("--gamma", args.gamma, 0)
        gcfg = adversary.AdversaryConfig(M=start_cfg.M, n=start_cfg.n, mode=start_cfg.mode,
                                         architecture=args.adversary_architecture, psr_db=attacks_psr)
        generator = adversary.PerturbationGenerator(gcfg)
        hist = defense.train_gan_defense(enc, dec, generator, channel, ebn0, gamma=gamma, **common)
        hist = dict(hist, loss=hist["decoder_loss"])
    errors = training.validation_errors(enc, dec, channel, ebn0, seed=args.seed)
    run = {"restart": 0, "seed": args.seed, "validation_errors": errors, "validation_blocks": 100_000,
           "final_loss": hist["loss"][-1], "history": hist}
    recipe = {"start": args.start, "psr_db": attacks_psr, "lr": lr}
    return start_cfg, enc, dec, {"chosen": 0, "runs": [run], "recipe": recipe, "generator": generator}


def add_train_options(parser):
    """train's options for the robust methods."""
    g = parser.add_argument_group("robust receivers (--method adversarial or gan-defense)")
    g.add_argument("--start", default="",
                   help="the trained link whose receiver is retrained against attacks; its transmitter is kept")
    g.add_argument("--psr-db", type=cli._number, default=-6.0,
                   help="the adversary's budget: perturbation-to-signal ratio in dB")
    g.add_argument("--gamma", type=cli._number, default=None,
                   help="gan-defense: consensus optimisation weight (default: core.defense.DEFAULT_GAMMA)")
    g.add_argument("--adversary-architecture", choices=["mlp", "cnn"], default="mlp",
                   help="gan-defense: the generator adversary's network (saved as adversary.safetensors)")
