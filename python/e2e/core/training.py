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


def _check_positive_int(name, value):
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
        _check_positive_int(name, value)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    lr_factor(lr_schedule, 0, steps)
    modules = {"encoder": encoder, "decoder": decoder}
    unknown = set(train) - set(modules)
    if unknown:
        raise ValueError(f"train must name 'encoder' and/or 'decoder', got {sorted(unknown)}")
    params = [p for name in train for p in modules[name].parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(lr_schedule, s, steps))
    loss_fn = nn.CrossEntropyLoss()
    M = encoder.config.M
    encoder.train(), decoder.train()
    history = {"step": [], "loss": [], "lr": []}
    bar = tqdm(total=steps, desc=desc, leave=False) if progress and tqdm else None
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
    if bar:
        bar.close()
    encoder.eval(), decoder.eval()
    return history
