"""Model-aware training: backpropagate the cross-entropy through a channel model."""
import math

import torch
from torch import nn

from . import prng

try:
    from tqdm.auto import tqdm
except ImportError:  # progress bars are a convenience, never a requirement
    tqdm = None

SCHEDULES = ("constant", "cosine", "step")


def lr_factor(schedule, step, steps):
    """Learning-rate multiplier at `step` of `steps` (cosine to 1% of the start)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
    if schedule == "step":  # x0.1 at 50% and again at 80%
        return 1.0 if step < 0.5 * steps else (0.1 if step < 0.8 * steps else 0.01)
    raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def train_model_aware(encoder, decoder, channel, *, steps, batch_size=1000, lr=1e-3,
                      lr_schedule="cosine", seed=0, train=("encoder", "decoder"),
                      progress=False, desc="model-aware training", log_every=10):
    """Train encoder and decoder jointly through a differentiable channel.

    encoder: Encoder, messages int64 [batch] -> real [batch, 2n]
    channel: nn.Module, real [batch, 2n] -> real [batch, 2n]
    decoder: Decoder, real [batch, 2n] -> logits [batch, M]
    train:   which networks get gradient steps; ('decoder',) fine-tunes the
             receiver on a frozen constellation.
    Messages of step i are prng.batch_messages(seed, i, batch_size, M).

    Returns the history {'step': [...], 'loss': [...], 'lr': [...]}, the loss
    averaged over each log_every steps.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        check_positive_int(name, value)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    lr_factor(lr_schedule, 0, steps)
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
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(lr_schedule, s, steps))
    loss_fn = nn.CrossEntropyLoss()
    M = encoder.config.M
    encoder.train(), decoder.train()
    history = {"step": [], "loss": [], "lr": []}
    # disable=None: bars only on a terminal, so logs and CI output stay readable.
    bar = tqdm(total=steps, desc=desc, leave=False, disable=None) if progress and tqdm else None
    try:
        running = 0.0
        for step in range(steps):
            m = torch.from_numpy(prng.batch_messages(seed, step, batch_size, M))
            loss = loss_fn(decoder(channel(encoder(m))), m)
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
                if bar:
                    bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        for p in frozen:
            p.requires_grad_(True)
    encoder.eval(), decoder.eval()
    return history


@torch.no_grad()
def validation_errors(encoder, decoder, channel, *, blocks=100_000, seed=0):
    """Block errors of the neural decoder on `blocks` fresh messages (held-out seed)."""
    m = torch.from_numpy(prng.numpy_rng(seed, prng.EVAL, 10**6).integers(0, encoder.config.M, blocks))
    return int((decoder(channel(encoder(m))).argmax(dim=1) != m).sum())


def fit_link(config, make_channel, *, steps, batch_size=1000, lr=1e-2, lr_schedule="cosine",
             seed=0, restarts=1, decoder_finetune_steps=0, finetune_channel=None,
             validation_blocks=100_000, progress=False):
    """Train `restarts` links from different initialisations and keep the best.

    Gradient descent on an autoencoder lands in different local optima (codes
    with different minimum distances); a few restarts judged on held-out
    messages make the result reliable rather than lucky.

    make_channel: callable(generator) -> channel nn.Module for training and
                  validation (real [batch, 2n] -> real [batch, 2n]).
    decoder_finetune_steps: extra receiver-only steps on the frozen
                  constellation, over finetune_channel (default: the training
                  channel), at lr/10: brings the neural decoder close to ML.
    Returns (encoder, decoder, report) where report has each restart's
    validation errors and history, and which one was chosen.
    """
    from .models import build
    check_positive_int("restarts", restarts)
    runs = []
    for r in range(restarts):
        run_seed = int(prng.seed_sequence(seed, prng.INIT, r).generate_state(1)[0])
        enc, dec = build(config, seed=run_seed)
        gen = prng.torch_generator(seed, prng.NOISE, r)
        hist = train_model_aware(enc, dec, make_channel(gen), steps=steps, batch_size=batch_size,
                                 lr=lr, lr_schedule=lr_schedule, seed=run_seed, progress=progress,
                                 desc=f"training {r + 1}/{restarts}")
        if decoder_finetune_steps:
            ft = (finetune_channel or make_channel)(prng.torch_generator(seed, prng.NOISE, r, 1))
            train_model_aware(enc, dec, ft, steps=decoder_finetune_steps, batch_size=batch_size,
                              lr=lr / 10, lr_schedule=lr_schedule, seed=run_seed + 1, train=("decoder",),
                              progress=progress, desc=f"receiver fine-tune {r + 1}/{restarts}")
        errors = validation_errors(enc, dec, make_channel(prng.torch_generator(seed, prng.EVAL, r)),
                                   blocks=validation_blocks, seed=seed)
        runs.append({"restart": r, "seed": run_seed, "validation_errors": errors,
                     "validation_blocks": validation_blocks, "final_loss": hist["loss"][-1],
                     "history": hist, "models": (enc, dec)})
    best = min(runs, key=lambda x: (x["validation_errors"], x["final_loss"]))
    enc, dec = best.pop("models")
    for x in runs:
        x.pop("models", None)
    return enc, dec, {"chosen": best["restart"], "runs": runs}
