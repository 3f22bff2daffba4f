"""Model-aware training: backpropagate the cross-entropy through a differentiable channel."""
import math

import torch
from torch import nn

from . import prng, progress, validate
from .channels import NoiseLevel, check_mode, through
from .models import build, decide

SCHEDULES = ("constant", "cosine", "step")
# Defaults of model-aware training, shared by the trainer, fit_link and gr_e2e train.
DEFAULT_LR = 1e-2
DEFAULT_SCHEDULE = "cosine"


def lr_factor(schedule, step, steps):
    """Learning-rate multiplier at `step` of `steps` (cosine to 1% of the start)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
    if schedule == "step":  # x0.1 at 50% and again at 80%
        return 1.0 if step < 0.5 * steps else (0.1 if step < 0.8 * steps else 0.01)
    validate.choice("lr_schedule", schedule, SCHEDULES)
    raise AssertionError(f"lr_factor does not know {schedule!r}")  # SCHEDULES and this function disagree


def lr_scheduler(optimizer, schedule, steps):
    """The optimizer's learning rate follows `schedule` over `steps` steps, then holds.

    steps = 0 means no horizon: a constant rate whatever `schedule` says (a
    live run has no natural end, so its schedule needs an explicit one).
    """
    validate.choice("lr_schedule", schedule, SCHEDULES)
    steps = validate.integer("schedule_steps", steps, 0)
    if steps == 0:
        schedule = "constant"
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(schedule, min(s, steps), max(steps, 1)))


def train_model_aware(encoder, decoder, channel, ebn0_db, *, steps, batch_size=1000, lr=DEFAULT_LR,
                      lr_schedule=DEFAULT_SCHEDULE, seed=0, train=("encoder", "decoder"), generator=None,
                      progress_bar=False, desc="model-aware training", log_every=10):
    """Train encoder and decoder jointly through a differentiable channel.

    encoder: Encoder, messages int64 [batch] -> real [batch, 2n]
    channel: core.channels interface, complex [batch, n] -> complex [batch, n]
    decoder: Decoder, real [batch, 2n] -> logits [batch, M]
    ebn0_db: training Eb/N0 in dB, or (lo, hi) drawn per example
    train:   which networks get gradient steps; ('decoder',) fine-tunes the
             receiver on a frozen constellation.
    generator: torch.Generator for the channel's draws (default: stream
             (seed, NOISE)).
    Messages of step i are prng.batch_messages(seed, i, batch_size, M).

    Returns the history {'step': [...], 'loss': [...], 'lr': [...]}, the loss
    averaged over each log_every steps.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        validate.integer(name, value, 1)
    validate.real("lr", lr, 0, low_open=True)
    config = encoder.config
    check_mode(channel, config.mode)
    noise = NoiseLevel(ebn0_db, config.M, config.n)
    modules = {"encoder": encoder, "decoder": decoder}
    unknown = set(train) - set(modules)
    if unknown:
        raise ValueError(f"train must name 'encoder' and/or 'decoder', got {sorted(unknown)}")
    params = [p for name in train for p in modules[name].parameters()]
    # Frozen networks need no gradients: skip computing them.
    frozen = [p for name in set(modules) - set(train) for p in modules[name].parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=lr)
    sched = lr_scheduler(opt, lr_schedule, steps)
    gen = generator or prng.torch_generator(seed, prng.NOISE)
    loss_fn = nn.CrossEntropyLoss()
    encoder.train(), decoder.train()
    history = {"step": [], "loss": [], "lr": []}
    bar = progress.bar(steps, desc, progress_bar)
    try:
        running = 0.0
        for step in range(steps):
            m = torch.from_numpy(prng.batch_messages(seed, step, batch_size, config.M))
            y = through(channel, encoder(m), noise.sample(batch_size, gen), gen)
            loss = loss_fn(decoder(y), m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            if (step + 1) % log_every == 0 or step + 1 == steps:
                count = (step % log_every) + 1
                history["step"].append(step + 1)
                history["loss"].append(running / count)
                history["lr"].append(opt.param_groups[0]["lr"])
                running = 0.0
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
            bar.update(1)
    finally:
        bar.close()
        for p in frozen:
            p.requires_grad_(True)
    encoder.eval(), decoder.eval()
    return history


@torch.no_grad()
def validation_errors(encoder, decoder, channel, ebn0_db, *, blocks=100_000, seed=0):
    """Block errors of the neural decoder on `blocks` held-out messages and fresh noise.

    Messages and noise come from the VALIDATION stream of `seed`, never used
    for training.
    """
    config = encoder.config
    m = torch.from_numpy(prng.numpy_rng(seed, prng.VALIDATION).integers(0, config.M, blocks))
    gen = prng.torch_generator(seed, prng.VALIDATION, prng.NOISE)
    n0 = NoiseLevel(ebn0_db, config.M, config.n).sample(blocks, gen)
    return int((decide(decoder(through(channel, encoder(m), n0, gen))) != m).sum())


def fit_link(config, channel, ebn0_db, *, steps, batch_size=1000, lr=DEFAULT_LR,
             lr_schedule=DEFAULT_SCHEDULE, seed=0, restarts=1, decoder_finetune_steps=0,
             validation_blocks=100_000, progress_bar=False):
    """Train `restarts` links from different initialisations and keep the best.

    Gradient descent on an autoencoder lands in different local optima (codes
    with different minimum distances); a few restarts judged on held-out
    messages make the result reliable rather than lucky.

    channel: core.channels interface, for training and validation.
    ebn0_db: training Eb/N0 in dB, or (lo, hi) drawn per example.
    decoder_finetune_steps: extra receiver-only steps on the frozen
                  constellation at lr/10: brings the neural decoder close to ML.
    Returns (encoder, decoder, report) where report has each restart's
    validation errors and history, and which one was chosen.
    """
    validate.integer("restarts", restarts, 1)
    validate.integer("decoder_finetune_steps", decoder_finetune_steps, 0)
    runs = []
    for r in range(restarts):
        run_seed = prng.derived_seed(seed, prng.INIT, r)
        enc, dec = build(config, seed=run_seed)
        hist = train_model_aware(enc, dec, channel, ebn0_db, steps=steps, batch_size=batch_size, lr=lr,
                                 lr_schedule=lr_schedule, seed=run_seed,
                                 generator=prng.torch_generator(seed, prng.NOISE, r),
                                 progress_bar=progress_bar, desc=f"training {r + 1}/{restarts}")
        if decoder_finetune_steps:
            train_model_aware(enc, dec, channel, ebn0_db, steps=decoder_finetune_steps, batch_size=batch_size,
                              lr=lr / 10, lr_schedule=lr_schedule, seed=run_seed + 1, train=("decoder",),
                              generator=prng.torch_generator(seed, prng.FINETUNE, r),
                              progress_bar=progress_bar, desc=f"receiver fine-tune {r + 1}/{restarts}")
        errors = validation_errors(enc, dec, channel, ebn0_db, blocks=validation_blocks, seed=seed)
        runs.append({"restart": r, "seed": run_seed, "validation_errors": errors,
                     "validation_blocks": validation_blocks, "final_loss": hist["loss"][-1],
                     "history": hist, "models": (enc, dec)})
    best = min(runs, key=lambda x: (x["validation_errors"], x["final_loss"]))
    enc, dec = best.pop("models")
    for x in runs:
        x.pop("models", None)
    return enc, dec, {"chosen": best["restart"], "runs": runs}
