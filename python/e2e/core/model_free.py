"""Model-free training of an autoencoder link (Aoudia & Hoydis).

The receiver is trained with the true gradient on known messages. The
transmitter never sees a gradient through the channel: it perturbs its
output, x_p = sqrt(1 - sigma2) f(m) + w with w ~ CN(0, sigma2) per channel
use, sends x_p, gets the per-example losses l_i back over a feedback link,
and follows the policy-gradient estimate

    grad J ~ mean_i( l_i * grad_theta log pi(x_p,i | f(m_i)) ).

Each batch belongs to one phase, a pure function of its batch index and the
schedule (R receiver batches, then T transmitter batches, repeating), so both
ends agree without a control channel.

Tensors: channel symbols are real [batch, 2n] (real parts, then imaginary
parts), as everywhere in core. Per-example losses are float32 [batch].
"""
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import prng

RECEIVER = "receiver"
TRANSMITTER = "transmitter"


def phase_of(batch_index, rx_batches=10, tx_batches=10):
    """'receiver' or 'transmitter' for this batch index: R then T, repeating."""
    if rx_batches < 0 or tx_batches < 0 or rx_batches + tx_batches == 0:
        raise ValueError(f"rx_batches and tx_batches must be >= 0 and not both 0, "
                         f"got {rx_batches!r}, {tx_batches!r}")
    return RECEIVER if batch_index % (rx_batches + tx_batches) < rx_batches else TRANSMITTER


def validate_sigma2(sigma2):
    if not (isinstance(sigma2, (int, float)) and 0 < sigma2 < 1):
        raise ValueError(f"sigma2 (perturbation variance) must be in (0, 1), got {sigma2!r}")
    return float(sigma2)


def perturbation_variance(sigma2, mode):
    """Variance per real dimension of the policy's perturbation."""
    return sigma2 / 2 if mode == "complex" else sigma2


def perturb(x, sigma2, mode, generator=None):
    """Relax the transmitter's output into a Gaussian policy.

    x: real [batch, 2n], Es = 1 per channel use. Returns (x_p, w), both real
    [batch, 2n]: x_p = sqrt(1 - sigma2) x + w is what is sent; w has variance
    sigma2 per channel use (sigma2/2 per real dimension in complex mode,
    sigma2 on the real part in real mode), so x_p keeps Es = 1 on average.
    """
    w = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    w = w * math.sqrt(perturbation_variance(sigma2, mode))
    if mode == "real":
        w[:, x.shape[1] // 2:] = 0
    return math.sqrt(1 - sigma2) * x + w, w


def transmitter_surrogate(encoder, messages, w, losses, sigma2, baseline="none"):
    """A scalar whose gradient is the policy-gradient estimate of grad E[loss].

    For the Gaussian policy x_p ~ N(mu, v I), mu = sqrt(1 - sigma2) f(m),
    grad log pi = (x_p - mu) / v * dmu/dtheta = w / v * dmu/dtheta, with w the
    perturbation that was actually drawn. Scoring with the stored w, rather
    than re-evaluating log pi at the current encoder, keeps the estimate
    sound when the step comes a few updates after the batch was sent (live
    training): a drift d of f would otherwise enter as d / v, a large bias
    for small sigma2. On fresh samples the two are identical.

    messages: int64 [batch]; w: real [batch, 2n], the perturbation sent;
    losses: float [batch], per-example losses fed back (no gradient).
    baseline: 'none' (the paper's estimator) or 'mean' (subtract the batch's
    mean loss: same expectation, lower variance).
    """
    if baseline not in ("none", "mean"):
        raise ValueError(f"baseline must be 'none' or 'mean', got {baseline!r}")
    losses = torch.as_tensor(losses, dtype=w.dtype).detach()
    if baseline == "mean":
        losses = losses - losses.mean()
    mu = math.sqrt(1 - sigma2) * encoder(messages)
    v = perturbation_variance(sigma2, encoder.config.mode)
    score = (w.detach() * mu).sum(dim=1) / v  # its gradient is w / v * dmu/dtheta
    return (losses * score).mean()


def policy_log_prob(x_p, x, sigma2, mode):
    """log pi(x_p | f(m)) up to a constant, per example: float [batch] (for checks).

    x_p: the perturbed symbols that were sent, real [batch, 2n].
    x:   the encoder's output f(m), real [batch, 2n].
    """
    sq = (x_p - math.sqrt(1 - sigma2) * x).pow(2)
    if mode == "real":
        sq = sq[:, : x.shape[1] // 2]
    return -sq.sum(dim=1) / (2 * perturbation_variance(sigma2, mode))


def per_example_losses(decoder, y, messages):
    """Cross-entropy of each example, float [batch] (what the receiver feeds back)."""
    with torch.no_grad():
        return F.cross_entropy(decoder(y), messages, reduction="none")


def receiver_step(decoder, optimizer, y, messages):
    """One gradient step of the receiver on received y [batch, 2n] with known messages."""
    logits = decoder(y)
    loss = F.cross_entropy(logits, messages)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), int((logits.detach().argmax(dim=1) != messages).sum())


def transmitter_step(encoder, optimizer, messages, w, losses, sigma2, baseline="none"):
    """One policy-gradient step of the transmitter from fed-back losses (w: the perturbation sent)."""
    surrogate = transmitter_surrogate(encoder, messages, w, losses, sigma2, baseline)
    optimizer.zero_grad(set_to_none=True)
    surrogate.backward()
    optimizer.step()


class FeedbackLink:
    """Impairments of the loss feedback link, for experiments.

    snr_db:    additive Gaussian noise at SNRfb = E[l^2] / sigma_e^2 (None: none).
    bits:      uniform quantisation to 2**bits levels between the batch's
               minimum and maximum loss, which travel with the message as two
               floats (None: no quantisation).
    loss_prob: probability that a whole feedback message is lost.
    Noise is added after quantisation, as on a channel carrying the
    quantised values. Randomness: prng stream (seed, NOISE, 7, batch index).
    """

    def __init__(self, snr_db=None, bits=None, loss_prob=0.0, seed=0):
        if snr_db is not None and not math.isfinite(float(snr_db)):
            raise ValueError(f"snr_db must be a finite number or None, got {snr_db!r}")
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 24):
            raise ValueError(f"bits must be an integer in [1, 24] or None, got {bits!r}")
        if not 0.0 <= float(loss_prob) <= 1.0:
            raise ValueError(f"loss_prob must be in [0, 1], got {loss_prob!r}")
        self.snr_db, self.bits, self.loss_prob, self.seed = snr_db, bits, float(loss_prob), seed

    @property
    def ideal(self):
        return self.snr_db is None and self.bits is None and self.loss_prob == 0.0

    def __call__(self, losses, batch_index):
        """float32 [batch] -> impaired float32 [batch], or None if the message is lost."""
        if self.ideal:
            return losses
        rng = prng.numpy_rng(self.seed, prng.NOISE, 7, batch_index)
        if self.loss_prob and rng.random() < self.loss_prob:
            return None
        out = np.asarray(losses, dtype=np.float64)
        if self.bits is not None:
            lo, hi = out.min(), out.max()
            levels = 2 ** self.bits - 1
            if hi > lo:
                out = lo + np.round((out - lo) / (hi - lo) * levels) * (hi - lo) / levels
        if self.snr_db is not None:
            sigma_e = math.sqrt(np.mean(out ** 2) / 10 ** (self.snr_db / 10))
            out = out + rng.standard_normal(out.shape) * sigma_e
        return out.astype(np.float32)


def train_model_free(encoder, decoder, channel, *, batches, batch_size=1000, rx_batches=10,
                     tx_batches=10, sigma2=0.02, lr_rx=1e-3, lr_tx=1e-3, lr_schedule="constant",
                     baseline="none", feedback=None, seed=0, progress=False, log_every=20,
                     desc="model-free training"):
    """The offline alternating trainer: the reference for the live flowgraph.

    Batch b carries prng.batch_messages(seed, b, batch_size, M) and belongs to
    phase_of(b, rx_batches, tx_batches). Receiver batches send f(m) and step
    the receiver; transmitter batches send the perturbed x_p, the receiver
    computes per-example losses, `feedback` (a FeedbackLink) impairs them,
    and the transmitter steps. The channel is called under no_grad: nothing
    is differentiated through it, so it may be any [batch, 2n] -> [batch, 2n]
    function, a real radio included.

    lr_schedule: training.SCHEDULES, applied to each end over its own steps.
    Returns the history {'batch', 'phase', 'loss', 'bler'}: receiver
    batches' mean loss and block error rate, averaged over log_every batches
    of that phase.
    """
    from .training import check_positive_int, lr_factor
    for name, v in (("batches", batches), ("batch_size", batch_size), ("log_every", log_every)):
        check_positive_int(name, v)
    sigma2 = validate_sigma2(sigma2)
    phase_of(0, rx_batches, tx_batches)
    feedback = feedback or FeedbackLink()
    lr_factor(lr_schedule, 0, 1)
    opt_rx = torch.optim.Adam(decoder.parameters(), lr=lr_rx)
    opt_tx = torch.optim.Adam(encoder.parameters(), lr=lr_tx)
    n_rx = sum(phase_of(b, rx_batches, tx_batches) == RECEIVER for b in range(batches))
    sched = {RECEIVER: torch.optim.lr_scheduler.LambdaLR(opt_rx, lambda s: lr_factor(lr_schedule, s, n_rx)),
             TRANSMITTER: torch.optim.lr_scheduler.LambdaLR(
                 opt_tx, lambda s: lr_factor(lr_schedule, s, batches - n_rx))}
    gen = prng.torch_generator(seed, prng.NOISE, 3)
    M, mode = encoder.config.M, encoder.config.mode
    history = {"batch": [], "phase": [], "loss": [], "bler": []}
    acc = {RECEIVER: [0.0, 0, 0, 0], TRANSMITTER: [0.0, 0, 0, 0]}  # loss sum, errors, examples, batches
    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=batches, desc=desc, leave=False, disable=None) if progress else None
    except ImportError:
        bar = None
    encoder.train(), decoder.train()
    lost = 0
    for b in range(batches):
        m = torch.from_numpy(prng.batch_messages(seed, b, batch_size, M))
        phase = phase_of(b, rx_batches, tx_batches)
        if phase == RECEIVER:
            with torch.no_grad():
                y = channel(encoder(m))
            loss, errors = receiver_step(decoder, opt_rx, y, m)
            a = acc[RECEIVER]
            a[0] += loss * len(m)
            a[1] += errors
        else:
            with torch.no_grad():
                x_p, w = perturb(encoder(m), sigma2, mode, gen)
                y = channel(x_p)
            losses = per_example_losses(decoder, y, m)
            fed_back = feedback(losses.numpy(), b)
            if fed_back is None:
                lost += 1
            else:
                transmitter_step(encoder, opt_tx, m, w, torch.from_numpy(np.asarray(fed_back)), sigma2, baseline)
            a = acc[TRANSMITTER]
            a[0] += float(losses.sum())
        sched[phase].step()
        a[2] += len(m)
        a[3] += 1
        if a[3] == log_every:
            history["batch"].append(b + 1)
            history["phase"].append(phase)
            history["loss"].append(a[0] / a[2])
            history["bler"].append(a[1] / a[2] if phase == RECEIVER else None)
            acc[phase] = [0.0, 0, 0, 0]
            if bar:
                bar.set_postfix(phase=phase, loss=f"{history['loss'][-1]:.4f}")
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    encoder.eval(), decoder.eval()
    history["lost_feedback"] = lost
    return history


class ChannelFunction(nn.Module):
    """Wrap a NumPy channel complex [batch, n] -> complex [batch, n] as a torch channel.

    Model-free training needs no gradient through the channel, so any
    function works: a simulation, a recorded channel, a radio.
    """

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        n = x.shape[1] // 2
        z = x[:, :n].numpy() + 1j * x[:, n:].numpy()
        y = np.asarray(self.fn(z))
        return torch.from_numpy(np.concatenate([y.real, y.imag], axis=1).astype(np.float32))
