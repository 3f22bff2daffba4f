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
import dataclasses
import math

import numpy as np
import torch
from torch.nn import functional as F

from . import prng, progress, validate
from .channels import NoiseLevel, check_mode, through
from .models import decide
from .training import SCHEDULES, lr_scheduler

RECEIVER = "receiver"
TRANSMITTER = "transmitter"


BASELINES = ("none", "mean")


@dataclasses.dataclass(frozen=True)
class ModelFreeParams:
    """The recipe both ends of model-free training share, validated on construction.

    One object feeds the offline trainer, the live trainers, the two live
    training blocks and gr_e2e train --method model-free, so their defaults
    cannot drift apart. Defaults are the paper's (Aoudia & Hoydis): sigma2 =
    0.02, R = T = 10, Adam 1e-3, the plain estimator, a constant rate.

    batch_size : int >= 1, messages per batch.
    seed : int >= 0; batch b carries prng.batch_messages(seed, b, batch_size, M)
        and the transmitter's perturbation of batch b is drawn from
        (seed, PERTURBATION, b), so both ends agree without talking.
    rx_batches, tx_batches : ints >= 0, not both 0: R receiver batches, then
        T transmitter batches, repeating (phase_of).
    sigma2 : float in (0, 1), exploration variance per channel use.
    lr : float > 0, Adam learning rate of each end.
    baseline : 'none' (the paper's estimator) or 'mean' (subtract the batch's
        mean loss: same expectation, lower variance).
    lr_schedule : 'constant', 'cosine' or 'step' (training.lr_factor).
    schedule_steps : int >= 0, the schedule's horizon in steps of each end,
        then the rate holds. 0: the whole run where its length is known (the
        offline trainer); a live flowgraph has no known end, so there a
        schedule other than 'constant' needs schedule_steps > 0 (live_check).
    """

    batch_size: int = 1000
    seed: int = 0
    rx_batches: int = 10
    tx_batches: int = 10
    sigma2: float = 0.02
    lr: float = 1e-3
    baseline: str = "none"
    lr_schedule: str = "constant"
    schedule_steps: int = 0

    def __post_init__(self):
        checked = {
            "batch_size": validate.integer("batch_size", self.batch_size, 1),
            "seed": validate.integer("seed", self.seed, 0),
            "rx_batches": validate.integer("rx_batches", self.rx_batches, 0),
            "tx_batches": validate.integer("tx_batches", self.tx_batches, 0),
            "sigma2": validate.real("sigma2", self.sigma2, 0, 1, low_open=True, high_open=True),
            "lr": validate.real("lr", self.lr, 0, low_open=True),
            "baseline": validate.choice("baseline", self.baseline, BASELINES),
            "lr_schedule": validate.choice("lr_schedule", self.lr_schedule, SCHEDULES),
            "schedule_steps": validate.integer("schedule_steps", self.schedule_steps, 0),
        }
        if checked["rx_batches"] + checked["tx_batches"] == 0:
            raise ValueError("rx_batches and tx_batches must not both be 0")
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: store the canonical types

    def live_check(self):
        """Refuse what only an offline run can do: a decaying schedule without a horizon."""
        if self.lr_schedule != "constant" and self.schedule_steps == 0:
            raise ValueError(f"schedule_steps must be > 0 with lr_schedule={self.lr_schedule!r} in a live "
                             "flowgraph: a live run has no known end to decay towards")
        return self

    def phase(self, batch_index):
        return phase_of(batch_index, self.rx_batches, self.tx_batches)

    def messages(self, batch_index, M):
        """Training messages of a batch: int64 [batch_size]."""
        return prng.batch_messages(self.seed, batch_index, self.batch_size, M)

    def perturbation_generator(self, batch_index):
        """The torch.Generator of batch b's exploration noise."""
        return prng.torch_generator(self.seed, prng.PERTURBATION, batch_index)


def phase_of(batch_index, rx_batches=10, tx_batches=10):
    """'receiver' or 'transmitter' for this batch index: R then T, repeating."""
    if rx_batches < 0 or tx_batches < 0 or rx_batches + tx_batches == 0:
        raise ValueError(f"rx_batches and tx_batches must be >= 0 and not both 0, "
                         f"got {rx_batches!r}, {tx_batches!r}")
    return RECEIVER if batch_index % (rx_batches + tx_batches) < rx_batches else TRANSMITTER


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
    validate.choice("baseline", baseline, BASELINES)
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
    return float(loss.detach()), int((decide(logits.detach()) != messages).sum())


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
               floats (None or 0: no quantisation).
    loss_prob: probability that a whole feedback message is lost.
    Noise is added after quantisation, as on a channel carrying the
    quantised values. Randomness: prng stream (seed, FEEDBACK, batch index).
    """

    def __init__(self, snr_db=None, bits=None, loss_prob=0.0, seed=0):
        self.snr_db = validate.optional_real("feedback_snr_db", snr_db)
        bits = validate.integer("feedback_bits", 0 if bits is None else bits, 0, 24)
        self.bits = bits or None
        self.loss_prob = validate.real("feedback_loss_prob", loss_prob, 0, 1)
        self.seed = validate.integer("seed", seed, 0)

    @property
    def ideal(self):
        return self.snr_db is None and self.bits is None and self.loss_prob == 0.0

    def __call__(self, losses, batch_index):
        """float32 [batch] -> impaired float32 [batch], or None if the message is lost."""
        if self.ideal:
            return losses
        rng = prng.numpy_rng(self.seed, prng.FEEDBACK, batch_index)
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


def train_model_free(encoder, decoder, channel, ebn0_db, params=ModelFreeParams(), *, batches,
                     feedback=None, generator=None, progress_bar=False, log_every=20,
                     desc="model-free training"):
    """The offline alternating trainer: the reference for the live flowgraph.

    channel: core.channels interface; it is called under no_grad, nothing is
        differentiated through it, so any channel works (channels.FunctionChannel
        wraps a black box: a recording, a radio).
    ebn0_db: Eb/N0 in dB (or a (lo, hi) range drawn per example) of the noise
        the channel adds.
    params: ModelFreeParams. Batch b carries params.messages(b, M) and belongs
        to params.phase(b). Receiver batches send f(m) and step the receiver;
        transmitter batches send perturb(f(m)) with the perturbation drawn from
        params.perturbation_generator(b), the receiver computes per-example
        losses, `feedback` (a FeedbackLink) impairs them, and the transmitter
        steps. The schedule runs over params.schedule_steps steps of each end,
        or over each end's share of `batches` when that is 0.
    generator: torch.Generator of the channel's draws (default: (seed, NOISE)).

    Returns the history {'batch', 'phase', 'loss', 'bler', 'lost_feedback'}:
    receiver batches' mean loss and block error rate, averaged over log_every
    batches of that phase.
    """
    validate.integer("batches", batches, 1)
    validate.integer("log_every", log_every, 1)
    config = encoder.config
    check_mode(channel, config.mode)
    noise = NoiseLevel(ebn0_db, config.M, config.n)
    feedback = feedback or FeedbackLink()
    opt = {RECEIVER: torch.optim.Adam(decoder.parameters(), lr=params.lr),
           TRANSMITTER: torch.optim.Adam(encoder.parameters(), lr=params.lr)}
    n_rx = sum(params.phase(b) == RECEIVER for b in range(batches))
    horizon = {RECEIVER: params.schedule_steps or n_rx, TRANSMITTER: params.schedule_steps or batches - n_rx}
    sched = {phase: lr_scheduler(opt[phase], params.lr_schedule, max(1, horizon[phase])) for phase in opt}
    gen = generator or prng.torch_generator(params.seed, prng.NOISE)
    history = {"batch": [], "phase": [], "loss": [], "bler": []}
    acc = {RECEIVER: [0.0, 0, 0, 0], TRANSMITTER: [0.0, 0, 0, 0]}  # loss sum, errors, examples, batches
    bar = progress.bar(batches, desc, progress_bar)
    encoder.train(), decoder.train()
    lost = 0
    for b in range(batches):
        m = torch.from_numpy(params.messages(b, config.M))
        phase = params.phase(b)
        n0 = noise.sample(len(m), gen)
        if phase == RECEIVER:
            with torch.no_grad():
                y = through(channel, encoder(m), n0, gen)
            loss, errors = receiver_step(decoder, opt[RECEIVER], y, m)
            a = acc[RECEIVER]
            a[0] += loss * len(m)
            a[1] += errors
        else:
            with torch.no_grad():
                x_p, w = perturb(encoder(m), params.sigma2, config.mode, params.perturbation_generator(b))
                y = through(channel, x_p, n0, gen)
            losses = per_example_losses(decoder, y, m)
            fed_back = feedback(losses.numpy(), b)
            if fed_back is None:
                lost += 1
            else:
                transmitter_step(encoder, opt[TRANSMITTER], m, w, torch.from_numpy(np.asarray(fed_back)),
                                 params.sigma2, params.baseline)
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
            bar.set_postfix(phase=phase, loss=f"{history['loss'][-1]:.4f}")
        bar.update(1)
    bar.close()
    encoder.eval(), decoder.eval()
    history["lost_feedback"] = lost
    return history
