"""Message-passing attention precoder (MPA): a linear L -> N layer whose coefficients come from attention.

The transmitter network maps a message to L complex features f_1..f_L; a
linear dimension-reduction layer maps them onto the N subchannels (the N
subcarriers of core.subchannels) with real, non-negative coefficients
alpha_{l,i}:

    x_i = s sum_l alpha_{l,i} f_l                  (the layer, paper's forward model)
    r_i = h_i x_i + n_i                            (paper: r_i = sum_l alpha_{l,i} f_l h_i + n_i)

The coefficients are not learned by backpropagation. They are computed per
channel measurement h by a message-passing iteration between the features
and the received signals (paper, attention update):

    alpha_{l,i} = exp(<r_i, f_l>) / sum_n exp(<r_n, f_l>)

Interpretation made precise here (the paper leaves it partly open):

- The vectors. f_l is feature l over the whole codebook, a vector in C^M
  (the transmitter knows all M messages' features), and r_i is what
  subchannel i delivers over the codebook. The inner product runs over the
  M messages, so it measures how much of feature l subchannel i carries.
- Forward step. r_i is the noiseless received codebook h_i x_i; the noise
  enters through the receiver's one-tap MMSE combiner,
  x^_i = conj(h_i) r_i / (|h_i|^2 + N0) = g_i x_i with
  g_i = |h_i|^2 / (|h_i|^2 + N0) in [0, 1): a faded subchannel delivers
  little of what it carries.
- Backward step (attention). The score is a normalised inner product
  scaled by an inverse temperature beta:
      e_{l,i} = beta Re<x^_i, f_l> / (||x_i|| ||f_l||) = beta g_i cos(x_i, f_l),
  and alpha_{l,i} = softmax over the subchannels i of e_{l,i}, so
  sum_i alpha_{l,i} = 1 for every feature l (each feature spreads one
  unit over the N subchannels). Normalising by ||x_i|| makes features
  compete: a subchannel that carries many features correlates less with
  each of them.
- Iteration. alpha starts from the layer's base coefficients alpha0
  (feature l assigned to subchannel l mod N: alpha0 = softmax_i(beta
  [i = l mod N]), the attention's value for features each aligned with its
  own subchannel) and takes a fixed number of damped steps
  alpha <- (1 - damping) alpha + damping softmax(e(alpha)); the result says
  how far it converged (the last step's largest change, per channel).
  The number of steps is part of the layer: tandem training fits the
  networks to the coefficients that many steps give. The iteration's fixed
  point is not where the error rate is lowest: run on, it concentrates
  every feature on a few strong subchannels and the link loses the
  diversity of the others (bench/mpa.py measures BLER against steps), so
  the defaults stop after 2 steps, far from convergence.
- Power. After the layer the codebook is scaled (s above) so that its mean
  energy per channel use, averaged over the M messages and the N
  subchannels, is Es = 1 for every alpha (per channel measurement): power
  moves between subchannels, the total stays.

Training is tandem (paper, Algorithm 1): stage 2 iterates the layer for a
batch of channel draws with the networks frozen; stage 1 then trains the
networks by backpropagation with those coefficients held fixed; repeated.
At inference (Algorithm 2) the transmitter re-runs the iteration from each
new channel measurement; the receiver is never retrained.

The receiver (CsiDecoder) knows h (genie CSI, as the transmitter does) and
reads the one-tap sufficient statistics conj(h_i) y_i and |h_i|^2 of each
subchannel; it is not told alpha (which is a function of h and N0, so a
receiver with the same networks could recompute it).

Baselines on the same N subchannels and rate: the autoencoder without the
layer (a models.Encoder of n = N symbols with the same CsiDecoder, trained
on the training family), and gradient adaptation of the same layer's
coefficients against the frozen receiver (adapt_gradient), which needs
the receiver network at the transmitter; MPA does not.
"""
import dataclasses
import math
import time

import torch
from torch import nn

from . import prng, progress, validate
from .models import _mlp, decide, real_to_complex
from .snr import rate
from .training import lr_scheduler

# Defaults of the iteration.
# beta and steps: of (beta, steps) = (8, 16), (8, 4), (4, 8), (4, 4), (2, 4), (4, 2), each link trained in
# tandem with its own setting (M=16, N=8, L=16, 8 dB, 'train' family), (4, 2) gave the lowest BLER on the
# training family and on the unseen ones. More steps move the coefficients further towards the
# iteration's fixed point, which concentrates each feature on few subchannels and costs BLER
# (bench/mpa.py measures BLER against steps).
DEFAULT_BETA = 4.0
DEFAULT_STEPS = 2
DEFAULT_DAMPING = 0.5
DEFAULT_TOL = 1e-4


def project(features, alpha):
    """The layer's linear map x_i = sum_l alpha_{l,i} f_l (before power scaling).

    features: complex [..., L] (one row per message)
    alpha:    real [L, N], or [B, L, N] with features [B, M, L] (one alpha per channel)
    Returns complex [..., N].
    """
    return features @ alpha.to(features.dtype)


def codebook_power(gram, alpha):
    """Mean energy per message of the projected codebook, sum_i alpha_i^T Re(G) alpha_i: real [...].

    gram:  complex [L, L], G = F^H F / M of the features F [M, L]
    alpha: real [L, N] or [B, L, N]
    """
    return torch.einsum("...li,lk,...ki->...", alpha, gram.real.to(alpha.dtype), alpha)


def base_coefficients(L, N, beta=DEFAULT_BETA):
    """alpha0: feature l on subchannel l mod N, as the attention softmax gives it: float32 [L, N], rows sum 1."""
    L, N = validate.integer("L", L, 1), validate.integer("N", N, 1)
    assign = torch.zeros(L, N)
    assign[torch.arange(L), torch.arange(L) % N] = 1.0
    return torch.softmax(beta * assign, dim=1)


def mmse_gain(h, n0):
    """g_i = |h_i|^2 / (|h_i|^2 + N0): real [B, N] from h complex [B, N], n0 float or real [B, 1]."""
    p = h.real * h.real + h.imag * h.imag
    return p / (p + torch.as_tensor(n0, dtype=p.dtype, device=p.device))


def attention(features, alpha, h, n0, beta=DEFAULT_BETA):
    """One forward/backward message-passing step: new coefficients from the current ones.

    features: complex [M, L], the codebook's features
    alpha:    real [B, L, N], current coefficients (one set per channel measurement)
    h:        complex [B, N], channel measurements
    n0:       float, or real [B, 1]
    Returns real [B, L, N]: softmax over the subchannels (last axis) of
    beta g_i Re<x_i, f_l> / (||x_i|| ||f_l||); each row over i sums to 1.
    """
    return _attention_step(feature_gram(features), alpha, mmse_gain(h, n0), beta)


def feature_gram(features):
    """Re(F^H F): real [L, L] from features F complex [M, L].

    Every quantity of the attention step is a function of it:
    Re<x_i, f_l> = (Re(G) alpha)_{l,i} and ||x_i||^2 = alpha_i^T Re(G) alpha_i
    for x = F alpha, so a step costs O(L^2 N) whatever M is.
    """
    return (features.conj().T @ features).real


def _attention_step(gram, alpha, gain, beta):
    """attention() on precomputed Re(F^H F) [L, L] and MMSE gains g [B, N]."""
    return _attention_scaled(gram.to(alpha.dtype), alpha, _score_scale(gram, gain, beta, alpha.dtype))


def _score_scale(gram, gain, beta, dtype):
    """beta g_i / ||f_l||: real [B, L, N], the part of the score that does not change during an iteration."""
    f_norm = gram.diagonal().clamp_min(1e-24).sqrt().to(dtype)
    return beta * gain[:, None, :].to(dtype) / f_norm[None, :, None]


def _attention_scaled(gram, alpha, scale):
    inner = torch.matmul(gram, alpha)                                        # Re<x_i, f_l>: [B, L, N]
    x_norm = (alpha * inner).sum(dim=1, keepdim=True).clamp_min(1e-24).sqrt()  # ||x_i||: [B, 1, N]
    return torch.softmax(inner * scale / x_norm, dim=-1)


def damped_steps(features, h, n0, alpha0, *, beta=DEFAULT_BETA, damping=DEFAULT_DAMPING):
    """The MPA iteration's coefficients step after step: yields (previous, new), real [B, L, N] each, without end.

    features: complex [M, L]; h: complex [B, N]; n0: float or real [B, 1];
    alpha0: real [L, N], where every channel starts. Each step is
    alpha <- (1 - damping) alpha + damping attention(alpha). The caller
    stops it (iterate: a number of steps or a tolerance).
    """
    validate.real("damping", damping, 0, 1, low_open=True)
    alpha = alpha0.to(features.real.dtype).expand(h.shape[0], *alpha0.shape).clone()
    gram = feature_gram(features).to(alpha.dtype)
    scale = _score_scale(gram, mmse_gain(h, n0), beta, alpha.dtype)  # constant over the iteration
    while True:
        new = torch.lerp(alpha, _attention_scaled(gram, alpha, scale), damping)
        yield alpha, new
        alpha = new


@dataclasses.dataclass
class MpaResult:
    """Outcome of an adaptation.

    alpha: real [B, L, N], coefficients per channel measurement
    steps: steps taken
    delta: real [B], largest change of alpha in the last step (how far it converged)
    seconds: wall-clock time of the adaptation
    """

    alpha: torch.Tensor
    steps: int
    delta: torch.Tensor
    seconds: float = 0.0

    @property
    def converged(self):
        """bool [B]: the last step moved no coefficient by more than DEFAULT_TOL."""
        return self.delta <= DEFAULT_TOL


@torch.no_grad()
def iterate(features, h, n0, alpha0, *, beta=DEFAULT_BETA, steps=DEFAULT_STEPS, damping=DEFAULT_DAMPING,
            tol=0.0):
    """The MPA iteration: `steps` damped attention steps from alpha0 (stops early once every change <= tol).

    features: complex [M, L]; h: complex [B, N]; n0: float or real [B, 1];
    alpha0: real [L, N]. Deterministic: the same inputs give the same alpha.
    Returns MpaResult (alpha real [B, L, N]).
    """
    validate.integer("steps", steps, 0)
    validate.real("damping", damping, 0, 1, low_open=True)
    start = time.perf_counter()
    alpha = alpha0.to(features.real.dtype).expand(h.shape[0], *alpha0.shape).clone()
    delta = torch.zeros(h.shape[0], dtype=alpha.dtype)
    taken = 0
    for taken, (previous, alpha) in zip(range(1, steps + 1),
                                        damped_steps(features, h, n0, alpha0, beta=beta, damping=damping)):
        if tol > 0 or taken == steps:  # the change is measured only where it is used
            delta = (alpha - previous).abs().flatten(1).max(dim=1).values
        if tol > 0 and bool((delta <= tol).all()):
            break
    return MpaResult(alpha, taken, delta, time.perf_counter() - start)


class MpaEncoder(nn.Module):
    """Message -> L complex features -> the attention layer -> N complex symbols (Es = 1 per use).

    network: one-hot -> Dense(hidden, activation)... -> Dense(2L), read as L
    complex features (real parts, then imaginary parts).

    forward(messages int64 [B], alpha real [L, N] or [B, L, N] (None: alpha0))
    -> complex [B, N]. The power scale is computed on the whole codebook
    under each message's alpha, so a message's symbols do not depend on the
    rest of the batch.
    """

    def __init__(self, M, N, L, hidden=None, activation="elu", beta=DEFAULT_BETA, steps=DEFAULT_STEPS,
                 damping=DEFAULT_DAMPING):
        super().__init__()
        self.M, self.N, self.L = validate.integer("M", M, 2), validate.integer("N", N, 1), validate.integer("L", L, 1)
        hidden = (self.M,) if hidden is None else validate.widths("hidden", hidden)
        self.beta = validate.real("beta", beta, 0)
        self.steps = validate.integer("steps", steps, 0)
        self.damping = validate.real("damping", damping, 0, 1, low_open=True)
        self.net = _mlp((self.M,) + hidden, activation, 2 * self.L)
        self.register_buffer("alpha0", base_coefficients(self.L, self.N, self.beta))

    def features(self):
        """The codebook's features: complex64 [M, L]."""
        w = self.net[0].weight
        return real_to_complex(self.net(torch.eye(self.M, dtype=w.dtype, device=w.device)))

    def codebook(self, alpha=None):
        """All M codewords under alpha: complex [M, N] for alpha [L, N], [B, M, N] for [B, L, N]."""
        alpha = self.alpha0 if alpha is None else alpha
        f = self.features()
        x = project(f, alpha)
        power = codebook_power(f.conj().T @ f / self.M, alpha)
        return x * torch.rsqrt(power / self.N)[..., None, None].to(x.dtype) if alpha.dim() == 3 \
            else x * torch.rsqrt(power / self.N).to(x.dtype)

    def forward(self, messages, alpha=None):
        alpha = self.alpha0 if alpha is None else alpha
        f = self.features()
        x = project(f[messages][:, None, :], alpha)[:, 0, :] if alpha.dim() == 3 else project(f[messages], alpha)
        power = codebook_power(f.conj().T @ f / self.M, alpha)
        scale = torch.rsqrt(power / self.N).to(x.dtype)
        return x * (scale[:, None] if alpha.dim() == 3 else scale)

    def adapt(self, h, n0):
        """Per-transmission adaptation (paper, Algorithm 2): the MPA iteration for channel measurements h.

        h: complex [B, N]; n0: float or real [B, 1]. The networks are not touched.
        Returns MpaResult (alpha real [B, L, N]).
        """
        with torch.no_grad():
            f = self.features()
        return iterate(f, h, n0, self.alpha0, beta=self.beta, steps=self.steps, damping=self.damping)


def csi_features(y, h):
    """The receiver's input: conj(h) y and |h|^2 per subchannel, real float [B, 3N].

    y, h: complex [B, N]. (conj(h_i) y_i, |h_i|^2) is a sufficient statistic
    of y_i for x_i given h_i on a one-tap channel with Gaussian noise.
    Layout: Re(conj(h) y) [N], Im(conj(h) y) [N], |h|^2 [N].
    """
    z = h.conj() * y
    return torch.cat([z.real, z.imag, (h.real * h.real + h.imag * h.imag)], dim=-1).float()


class CsiDecoder(nn.Module):
    """Receiver that knows the channel: csi_features(y, h) real [B, 3N] -> logits float [B, M]."""

    def __init__(self, M, N, hidden=None, activation="relu"):
        super().__init__()
        self.M, self.N = validate.integer("M", M, 2), validate.integer("N", N, 1)
        hidden = (4 * self.M,) if hidden is None else validate.widths("hidden", hidden)
        self.net = _mlp((3 * self.N,) + hidden, activation, self.M)

    def forward(self, y, h):
        """y, h: complex [B, N]. Returns logits float [B, M]."""
        return self.net(csi_features(y, h))


class PlainEncoder(nn.Module):
    """The autoencoder's transmitter without the layer: message -> N complex symbols, Es = 1 per use.

    one-hot -> Dense(hidden, activation)... -> Dense(2N); the codebook is
    scaled to mean energy N over the M messages (as models.Encoder's
    'average' normalisation). forward(messages int64 [B]) -> complex [B, N].
    """

    def __init__(self, M, N, hidden=None, activation="elu"):
        super().__init__()
        self.M, self.N = validate.integer("M", M, 2), validate.integer("N", N, 1)
        hidden = (self.M,) if hidden is None else validate.widths("hidden", hidden)
        self.net = _mlp((self.M,) + hidden, activation, 2 * self.N)

    def codebook(self):
        """complex [M, N]."""
        w = self.net[0].weight
        x = real_to_complex(self.net(torch.eye(self.M, dtype=w.dtype, device=w.device)))
        return x * torch.rsqrt(x.abs().pow(2).sum(dim=1).mean() / self.N)

    def forward(self, messages, alpha=None):
        return self.codebook()[messages]


def noise_density(ebn0_db, M, N):
    """N0 = 1 / (R Eb/N0) with R = log2(M) / N bits per complex channel use (float)."""
    return 1.0 / (rate(M, N) * 10.0 ** (validate.db("ebn0_db", ebn0_db) / 10.0))


def train(encoder, decoder, channel, ebn0_db, *, rounds, stage1_steps=5, batch_size=500, lr=1e-2, seed=0,
          progress_bar=False):
    """Tandem training (paper, Algorithm 1), or plain training for a PlainEncoder.

    Each round draws batch_size channel realisations from `channel`
    (core.subchannels.SubchannelChannel, stream (seed, MPA, round)); stage 2
    runs the MPA iteration for them with the networks frozen (MpaEncoder
    only); stage 1 then takes stage1_steps Adam steps on encoder and
    decoder with those coefficients fixed (no gradient through alpha),
    fresh messages (prng.batch_messages) and noise each step.
    progress_bar: show a progress bar of the rounds (core.progress).
    Returns the mean cross-entropy of each round (list of floats).
    """
    for name, value in (("rounds", rounds), ("stage1_steps", stage1_steps), ("batch_size", batch_size)):
        validate.integer(name, value, 1)
    n0 = noise_density(ebn0_db, decoder.M, decoder.N)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = lr_scheduler(opt, "cosine", rounds * stage1_steps)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    bar = progress.bar(rounds, "tandem training" if isinstance(encoder, MpaEncoder) else "training",
                       enabled=progress_bar, unit="round")
    encoder.train(), decoder.train()
    for r in range(rounds):
        gen = prng.torch_generator(seed, prng.MPA, r)
        h = channel.draw_gains(batch_size, gen)
        alpha = encoder.adapt(h, n0).alpha if isinstance(encoder, MpaEncoder) else None    # stage 2
        total = 0.0
        for k in range(stage1_steps):                                                     # stage 1
            m = torch.from_numpy(prng.batch_messages(seed, r * stage1_steps + k, batch_size, decoder.M))
            y = channel(encoder(m, alpha), n0, gen, h=h)
            loss = loss_fn(decoder(y, h), m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        history.append(total / stage1_steps)
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    bar.close()
    encoder.eval(), decoder.eval()
    return history


def adapt_gradient(encoder, decoder, h, n0, *, steps=30, lr=0.2, repeats=2, seed=0):
    """Baseline: the layer's coefficients fitted by gradient descent against the frozen receiver.

    alpha = softmax over subchannels of logits, initialised at log alpha0;
    Adam on the receiver's cross-entropy for every codeword sent `repeats`
    times through h with fresh noise (stream (seed, MPA, step)). Needs the
    receiver network at the transmitter. Networks are not changed.

    h: complex [B, N]; n0: float. Returns MpaResult (alpha real [B, L, N]).
    """
    validate.integer("steps", steps, 0)
    validate.integer("repeats", repeats, 1)
    start = time.perf_counter()
    frozen = [p for p in list(encoder.parameters()) + list(decoder.parameters()) if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        B, M = h.shape[0], encoder.M
        logits = torch.log(encoder.alpha0).expand(B, -1, -1).clone().requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=lr)
        m = torch.arange(M).repeat(repeats)
        previous = torch.softmax(logits, dim=-1).detach()
        delta = torch.zeros(B)
        for step in range(steps):
            gen = prng.torch_generator(seed, prng.MPA, step)
            x = encoder.codebook(torch.softmax(logits, dim=-1))[:, m, :]               # [B, R M, N]
            hb = h[:, None, :].expand_as(x)
            y = hb * x + torch.randn(x.shape, generator=gen, dtype=x.dtype) * math.sqrt(n0)
            loss = nn.functional.cross_entropy(decoder(y.reshape(-1, encoder.N), hb.reshape(-1, encoder.N)),
                                               m.repeat(B), reduction="sum") / (repeats * M)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            alpha = torch.softmax(logits, dim=-1).detach()
            delta = (alpha - previous).abs().flatten(1).max(dim=1).values
            previous = alpha
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return MpaResult(previous, steps, delta, time.perf_counter() - start)


@torch.no_grad()
def block_errors(encoder, decoder, channel, ebn0_db, *, channels, block, adaptation="none", seed=0,
                 purpose=prng.EVAL, **adapt_options):
    """Block errors over `channels` channel realisations of `block` messages each.

    adaptation: 'none' (alpha0, or a PlainEncoder), 'mpa' (encoder.adapt per
    realisation) or 'gradient' (adapt_gradient per realisation). Channels,
    messages and noise come from stream (seed, purpose, MPA): prng.EVAL for
    evaluations, prng.VALIDATION for picking a training restart.
    Returns (errors, blocks, seconds spent adapting).
    """
    validate.choice("adaptation", adaptation, ("none", "mpa", "gradient"))
    n0 = noise_density(ebn0_db, decoder.M, decoder.N)
    gen = prng.torch_generator(seed, purpose, prng.MPA)
    h = channel.draw_gains(channels, gen)
    alpha, seconds = None, 0.0
    if adaptation == "mpa":
        result = encoder.adapt(h, n0)
        alpha, seconds = result.alpha, result.seconds
    elif adaptation == "gradient":
        with torch.enable_grad():
            result = adapt_gradient(encoder, decoder, h, n0, seed=seed, **adapt_options)
        alpha, seconds = result.alpha, result.seconds
    m = torch.from_numpy(prng.numpy_rng(seed, purpose, prng.MPA).integers(0, decoder.M, channels * block))
    hb = h.repeat_interleave(block, dim=0)
    x = encoder(m, None if alpha is None else alpha.repeat_interleave(block, dim=0))
    y = channel(x, n0, gen, h=hb)
    return int((decide(decoder(y, hb)) != m).sum()), channels * block, seconds
