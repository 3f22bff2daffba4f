"""Adversarial attacks on learned receivers: FGM, universal perturbations, jamming.

An attacker adds a perturbation p to what the receiver sees. Its power is
measured against the signal as the perturbation-to-signal ratio
PSR = ||p||^2 / (n Es) per message block (Es = 1, DESIGN.md), in dB; an
attack at a given PSR spends its whole budget ||p||^2 = n 10**(PSR/10).

- fgm: the white-box fast gradient method per example (L2 FGM): each
  received block gets its own perturbation along the gradient of the
  decoder's cross-entropy. An upper reference: the attacker must know every
  received block before it is sent.
- universal_perturbation: one input-agnostic perturbation p for every
  message (Sadeghi & Larsson, "Physical adversarial attacks against
  end-to-end autoencoder communication systems", IEEE Comm. Letters 2019),
  which a physical attacker can transmit without knowing what is sent;
  optionally robust to not being symbol-aligned (shift_invariant).
- jamming: Gaussian noise of the same power, the classical baseline an
  adversarial attack has to beat to be worth the name.
- Perturbed / Jammed: any of them as a channel (core.channels interface),
  so the evaluator and the trainers take attacks like any other channel.
- hamming_soft_decoder: a differentiable stand-in for the ML decoder of
  Hamming (7,4), so the same white-box attacks can target the classical
  receiver.

A "decoder" is any callable mapping real float32 [B, 2n] (real parts, then
imaginary parts) to logits [B, M] that is differentiable in its input: a
models.Decoder or hamming_soft_decoder(). Perturbations are complex tensors;
in real mode they have zero imaginary parts (all their energy on the real
parts, the only part a real-mode receiver reads).
"""
import math

import torch
from torch import nn

from . import baselines, channels, progress, snr, validate
from .models import complex_to_real, decide, real_to_complex

PSR_RANGE_DB = (-60.0, 20.0)


# --- perturbation power -------------------------------------------------------

def budget(psr_db, n):
    """Perturbation energy per message block: ||p||^2 = n * 10**(psr_db / 10) (Es = 1).

    psr_db : float, perturbation-to-signal ratio in dB, finite in [-60, 20]
    n : int, channel uses per message
    """
    psr_db = validate.real("psr_db", psr_db, *PSR_RANGE_DB)
    n = validate.integer("n", n, 1)
    return n * 10.0 ** (psr_db / 10.0)


def psr_db_of(p):
    """PSR in dB of a perturbation: 10 log10(||p||^2 / n).

    p : complex (or real) tensor [n], or [B, n]: then the PSR of the mean
        energy per row (the average power of a per-message attack).
    Returns float; -inf for an all-zero p.
    """
    p = torch.as_tensor(p)
    if p.dim() not in (1, 2) or p.shape[-1] < 1:
        raise ValueError(f"p must have shape [n] or [B, n], got {list(p.shape)}")
    energy = float(p.abs().double().pow(2).sum(dim=-1).mean())
    return 10.0 * math.log10(energy / p.shape[-1]) if energy > 0 else -math.inf


def scale_to_psr(p, psr_db):
    """p with every row (last axis, length n) scaled to exactly budget(psr_db, n) energy.

    p : complex tensor [n] or [B, n] (real tensors are scaled the same way)
    Returns a tensor of p's shape and dtype. An all-zero row has no direction
    to scale: ValueError.
    """
    p = torch.as_tensor(p)
    if p.dim() not in (1, 2) or p.shape[-1] < 1:
        raise ValueError(f"p must have shape [n] or [B, n], got {list(p.shape)}")
    target = budget(psr_db, p.shape[-1])
    # Norms in float64, so the scaled energy is exact to the precision of p's dtype.
    norm = p.abs().double().pow(2).sum(dim=-1, keepdim=True).sqrt()
    if not bool((norm > 0).all()):
        raise ValueError("p has an all-zero row, which cannot be scaled to a PSR")
    if not bool(torch.isfinite(norm).all()):
        raise ValueError("p holds NaN or infinite values")
    return (p.double() if not p.is_complex() else p.to(torch.complex128)).mul(
        math.sqrt(target) / norm).to(p.dtype)


def _project(p, radius):
    """p scaled down onto the L2 ball of the radius (unchanged inside it); p complex [n]."""
    norm = float(p.abs().pow(2).sum().sqrt())
    return p * (radius / norm) if norm > radius else p


# --- gradients of the decoder's loss ----------------------------------------------

def _as_received(y):
    y = torch.as_tensor(y)
    if not y.is_complex():
        raise ValueError(f"y must be a complex tensor [B, n], got dtype {y.dtype}")
    if y.dim() != 2:
        raise ValueError(f"y must have shape [B, n], got {list(y.shape)}")
    return y.detach().to(torch.complex64)


def _as_labels(labels, batch):
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape [{batch}], got {list(labels.shape)}")
    return labels


def _logits(decoder, z):
    """decoder(complex z [B, n]) -> logits [B, M], with z in the decoder's real layout."""
    return decoder(complex_to_real(z))


def _decided(decoder, z):
    with torch.no_grad():
        return decide(_logits(decoder, z))


def loss_gradient(decoder, y, labels, mode="complex"):
    """Gradient of the cross-entropy of each example w.r.t. its received block.

    Input
    -----
    decoder : callable, real float32 [B, 2n] -> logits [B, M], differentiable
    y : complex64 tensor [B, n], received blocks
    labels : int64 tensor [B], the messages sent
    mode : 'complex', or 'real' (the imaginary part of the gradient is zeroed:
        a real-mode receiver never reads it)

    Output
    ------
    complex64 tensor [B, n]: d CE(decoder(y), labels) / d Re(y) + j d / d Im(y).

    Only the input is differentiated (torch.autograd.grad), so the decoder's
    parameters never accumulate gradients. Where the softmax is so confident
    that the cross-entropy's gradient underflows to zero in float32, the
    gradient of the logit margin (best wrong logit minus the true logit) is
    used instead: it points the same way (towards the decision boundary) and
    never vanishes for a piecewise-linear network that still reads its input.
    """
    validate.mode(mode)
    y = _as_received(y)
    labels = _as_labels(labels, y.shape[0])
    with torch.enable_grad():
        yr = complex_to_real(y).requires_grad_(True)
        logits = decoder(yr)
        # Sum, not mean: each example's gradient is its own, not scaled by 1/B.
        loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, yr, retain_graph=True)
        dead = g.abs().sum(dim=1) == 0
        if bool(dead.any()):
            true = logits.gather(1, labels[:, None])[:, 0]
            wrong = logits.scatter(1, labels[:, None], -math.inf).max(dim=1).values
            (gm,) = torch.autograd.grad((wrong - true)[dead].sum(), yr)
            g = torch.where(dead[:, None], gm, g)
    g = g.detach()
    if mode == "real":
        g[:, y.shape[1]:] = 0
    return real_to_complex(g)


def _unit_rows(g):
    """Rows of g scaled to unit norm; a row with no gradient at all gets e_0 (documented fallback)."""
    norm = g.abs().pow(2).sum(dim=1, keepdim=True).sqrt()
    fallback = torch.zeros_like(g)
    fallback[:, 0] = 1.0  # a decoder blind to its input: any direction is as good as another
    return torch.where(norm > 0, g / norm.clamp_min(torch.finfo(norm.dtype).tiny), fallback)


def fgm(decoder, y, labels, psr_db, mode="complex"):
    """Per-example white-box fast gradient method (L2 FGM).

    p_i = sqrt(budget) g_i / ||g_i||, g_i = d CE(decoder(y_i), labels_i) / d y_i
    (loss_gradient): the first-order best perturbation of each received
    block for the given energy.

    Input
    -----
    decoder : callable, real float32 [B, 2n] -> logits [B, M], differentiable
    y : complex tensor [B, n], received blocks (the attack is added to them)
    labels : int64 tensor [B], the messages sent
    psr_db : float, PSR in dB; every row gets exactly budget(psr_db, n) energy
    mode : 'complex', or 'real' (zero imaginary parts)

    Output
    ------
    complex64 tensor [B, n], the perturbations.
    """
    y = _as_received(y)
    radius = math.sqrt(budget(psr_db, y.shape[1]))
    return radius * _unit_rows(loss_gradient(decoder, y, labels, mode))


# --- the universal perturbation -----------------------------------------------

def _roll_rows(p, shifts):
    """Row i of the result is roll(p, shifts[i]): complex [n], int64 [B] -> complex [B, n].

    roll(p, s)[k] = p[(k - s) mod n]: the perturbation delayed by s symbols.
    """
    n = p.shape[-1]
    idx = (torch.arange(n, device=p.device)[None, :] - shifts[:, None]) % n
    return p[idx]


def _unroll_rows(d, shifts):
    """Inverse of _roll_rows per row: row i is roll(d[i], -shifts[i]); complex [B, n]."""
    n = d.shape[-1]
    idx = (torch.arange(n, device=d.device)[None, :] + shifts[:, None]) % n
    return d.gather(1, idx)


def _flip_vectors(decoder, z, labels, radius, mode, search_steps):
    """Smallest FGM step that makes each still-correct example wrong.

    z complex [B, n] (received block plus the current perturbation), all
    decoded correctly. Returns complex [B, n]: eps_i u_i with u_i the unit FGM
    direction at z_i and eps_i the smallest step in [0, radius] (binary search
    to radius / 2**search_steps) after which z_i + eps_i u_i is decoded wrongly;
    eps_i = radius when even the whole budget does not flip it (the strongest
    push the budget allows along that direction).
    """
    u = _unit_rows(loss_gradient(decoder, z, labels, mode))
    lo = torch.zeros(z.shape[0], 1)
    hi = torch.full((z.shape[0], 1), radius)
    flips = _decided(decoder, z + hi * u) != labels
    for _ in range(search_steps if bool(flips.any()) else 0):
        mid = 0.5 * (lo + hi)
        wrong = (_decided(decoder, z + mid * u) != labels)[:, None]
        hi = torch.where(wrong, mid, hi)
        lo = torch.where(wrong, lo, mid)
    return hi * u


def _score(decoder, y, labels, p, shifts):
    """Mean cross-entropy of y + roll(p, s) over the examples and shifts: how well p attacks.

    y complex [B, n], labels int64 [B], p complex [n], shifts int64 [S].
    Smoother than counting wrong decisions, which at a high Eb/N0 are a few
    dozen among thousands of examples: the mean loss ranks perturbations by
    their BLER on fresh data far more reliably.
    """
    with torch.no_grad():
        return sum(float(nn.functional.cross_entropy(_logits(decoder, y + torch.roll(p, s)), labels))
                   for s in shifts.tolist()) / len(shifts)


def universal_perturbation(decoder, y, labels, psr_db, *, mode="complex", passes=5, shift_invariant=False,
                           generator=None, progress_bar=False, chunk=64, search_steps=10, restarts=3):
    """One input-agnostic perturbation that makes the decoder wrong on as many messages as it can.

    Sadeghi & Larsson's algorithm (IEEE Comm. Letters 2019): go over the
    attacker's received examples; for each one that y + p still decodes
    correctly, take the FGM direction at y + p, find by binary search the
    smallest step along it that flips the decision (up to the whole budget),
    add that step to p and project p onto the L2 ball of the budget. Repeat
    for `passes` passes; finally scale p to exactly the budget (an attack at
    a given PSR spends all of it).

    Vectorised: examples are taken `chunk` at a time, every example of a
    chunk sees the same p, and the chunk's flip steps are summed into p
    before the projection. This is the sequential algorithm with p updated
    once per chunk instead of once per example (the gradients, searches and
    decisions of a chunk run as one batch, about chunk times fewer calls);
    small chunks keep it close to the sequential algorithm. A flip step only
    comes from an example that is still decoded correctly, as in the paper.
    Summing a chunk also averages out single examples' noisy directions: on
    the (M=16, n=7) link at Eb/N0 8 dB and PSR -6 dB, chunks of 64 gave a
    higher BLER (about 1e-2) than the one-example-at-a-time algorithm (about
    6e-3), in 0.1 s instead of 4 s for 3 passes over 2000 examples.

    Restarts and selection: the result depends on the order of the examples
    (the algorithm settles on one of several local optima; shift-invariant
    ones differed by 2x in BLER between orders). So the algorithm runs
    `restarts` times from p = 0 in different orders, every pass's p (scaled
    to the budget) is scored by the decoder's mean cross-entropy on the
    attacker's own examples (over every shift when shift_invariant), and the
    best is returned. The attacker measures this without the receiver's help.

    shift_invariant=True: the attacker is not symbol-aligned, so a block
    sees roll(p, s) for an unknown s in [0, n). Every example then enters
    with all n cyclic shifts of p, and each flip step is rolled back into
    p's frame before the sum: p's update averages the FGM directions over
    the n shifts, so it works whatever the shift.

    Input
    -----
    decoder : callable, real float32 [B, 2n] -> logits [B, M], differentiable
    y : complex tensor [B, n], received blocks at the attacker's Eb/N0 (e.g.
        received_signals())
    labels : int64 tensor [B], the messages sent
    psr_db : float, PSR in dB of the result
    mode : 'complex', or 'real' (p gets zero imaginary parts)
    passes : int >= 1, passes over the examples per restart
    shift_invariant : bool, craft for every cyclic shift (see above)
    generator : torch.Generator shuffling the examples at each pass (e.g.
        prng.torch_generator(seed, prng.ATTACK)); None keeps their order,
        each restart starting at another example (rotated by B / restarts)
    progress_bar : bool, a progress bar (core.progress) over the chunks
    chunk : int >= 1, examples per update of p
    search_steps : int >= 1, halvings of the binary search
    restarts : int >= 1, runs from p = 0 (see above)

    Output
    ------
    complex64 tensor [n] with exactly budget(psr_db, n) energy.
    """
    validate.mode(mode)
    y = _as_received(y)
    batch, n = y.shape
    labels = _as_labels(labels, batch)
    radius = math.sqrt(budget(psr_db, n))
    passes = validate.integer("passes", passes, 1)
    shift_invariant = validate.boolean("shift_invariant", shift_invariant)
    chunk = validate.integer("chunk", chunk, 1)
    search_steps = validate.integer("search_steps", search_steps, 1)
    restarts = validate.integer("restarts", restarts, 1)
    if batch < 1:
        raise ValueError("y must hold at least one example")
    shifts = torch.arange(n) if shift_invariant else torch.zeros(1, dtype=torch.int64)

    best, best_score = None, -math.inf
    chunks = -(-batch // chunk)
    bar = progress.bar(restarts * passes * chunks, "universal perturbation", progress_bar, unit="chunk")
    for restart in range(restarts):
        p = torch.zeros(n, dtype=torch.complex64)
        for _ in range(passes):
            if generator is not None:
                order = torch.randperm(batch, generator=generator)
            else:
                order = torch.roll(torch.arange(batch), -(restart * batch // restarts))
            for start in range(0, batch, chunk):
                idx = order[start:start + chunk]
                # Every (example, shift) pair: example i sees roll(p, s).
                s = shifts.repeat(len(idx))
                yi, li = y[idx].repeat_interleave(len(shifts), 0), labels[idx].repeat_interleave(len(shifts))
                z = yi + _roll_rows(p, s)
                correct = _decided(decoder, z) == li
                if bool(correct.any()):
                    step = _flip_vectors(decoder, z[correct], li[correct], radius, mode, search_steps)
                    p = _project(p + _unroll_rows(step, s[correct]).sum(dim=0), radius)
                bar.update(1)
            if bool((p.abs() > 0).any()):
                scaled = scale_to_psr(p, psr_db)
                score = _score(decoder, y, labels, scaled, shifts)
                if score > best_score:
                    best, best_score = scaled, score
    bar.close()
    if best is None:
        # Nothing was decoded correctly (a receiver that is wrong everywhere):
        # fall back to the summed FGM directions, so the budget is still spent.
        best = _unit_rows(loss_gradient(decoder, y, labels, mode)).sum(dim=0)
    if mode == "real":
        best = torch.complex(best.real, torch.zeros_like(best.real))
    return scale_to_psr(best, psr_db)


# --- jamming ------------------------------------------------------------------

def jamming(batch, n, psr_db, generator=None, mode="complex"):
    """Gaussian jamming: complex [batch, n] with E||p||^2 = budget(psr_db, n) per row.

    complex mode: CN(0, 10**(psr_db/10)) per channel use; real mode: real
    N(0, 10**(psr_db/10)) per use, zero imaginary parts. Noise, so each row's
    energy is only budget on average (not scaled row by row).
    generator : torch.Generator (e.g. prng.torch_generator(seed, prng.JAMMING)).
    Returns complex64 [batch, n].
    """
    batch = validate.integer("batch", batch, 0)
    n = validate.integer("n", n, 1)
    validate.mode(mode)
    sigma = math.sqrt(budget(psr_db, n) / n)
    if mode == "real":
        re = torch.randn((batch, n), generator=generator) * sigma
        return torch.complex(re, torch.zeros_like(re))
    return torch.randn((batch, n), generator=generator, dtype=torch.complex64) * sigma


class Jamming:
    """Gaussian jamming as a per-message perturbation callable f(x, generator) -> complex [B, n].

    psr_db : float, the jamming's PSR in dB (mean energy per block)
    mode : 'complex', or 'real' (zero imaginary parts)
    generator : torch.Generator of its own (e.g. prng.torch_generator(seed,
        prng.JAMMING)); None draws from the generator the channel is given.
    """

    def __init__(self, psr_db, mode="complex", generator=None):
        budget(psr_db, 1)
        self.psr_db, self.mode, self.generator = float(psr_db), validate.mode(mode), generator
        self.preserves_real = mode == "real"

    def __call__(self, x, generator=None):
        g = self.generator if self.generator is not None else generator
        return jamming(x.shape[0], x.shape[1], self.psr_db, g, self.mode).to(x.device)


# --- attacks as channels ------------------------------------------------------------

class Perturbed(channels.Channel):
    """A channel with an attacker: y = base(x, n0, generator) + p.

    Input of forward: x complex [B, n], n0 (as core.channels), generator.
    Output: complex [B, n] (x's dtype).

    perturbation:
      - a complex tensor (or array) [n]: a universal perturbation, the same
        for every message, cyclically shifted by `shift` symbols
        (roll(p, s)[k] = p[(k - s) mod n], the perturbation delayed by s
        symbols with respect to the message boundaries); shift is an int in
        [0, n), or 'random': one shift per message drawn uniformly from the
        generator (after the base channel's draws), an attacker that is not
        symbol-aligned;
      - a callable f(x, generator) -> complex [B, n]: a per-message
        perturbation (Jamming, a generator network...). It may declare
        `preserves_real` (True when it only perturbs real parts).
    preserves_real: the base preserves real signals and the perturbation
    has zero imaginary parts, so a real-mode link may use this channel.
    Differentiable in x wherever the base channel is.
    """

    def __init__(self, base, perturbation, shift=0):
        super().__init__()
        self.base = base
        if callable(perturbation) and not isinstance(perturbation, torch.Tensor):
            self.perturb = perturbation
            if shift != 0:
                raise ValueError(f"shift must be 0 with a per-message perturbation callable, got {shift!r}")
            real = bool(getattr(perturbation, "preserves_real", False))
            self.register_buffer("p", None)
        else:
            self.perturb = None
            p = torch.as_tensor(perturbation)
            if p.dim() != 1 or p.shape[0] < 1:
                raise ValueError(f"perturbation must be a complex tensor [n], got shape {list(p.shape)}")
            p = p.detach().to(torch.complex64) if not p.is_complex() else p.detach().clone()
            if not bool(torch.isfinite(torch.view_as_real(p)).all()):
                raise ValueError("perturbation holds NaN or infinite values")
            self.register_buffer("p", p)
            if shift != "random":
                shift = validate.integer("shift", shift, 0, p.shape[0] - 1)
            real = not bool((p.imag != 0).any())
        self.shift = shift
        self.preserves_real = bool(getattr(base, "preserves_real", False)) and real

    def perturbation(self, x, generator=None):
        """The perturbation of each message: complex [B, n] for x complex [B, n]."""
        if self.perturb is not None:
            return self.perturb(x, generator)
        if x.shape[-1] != self.p.shape[0]:
            raise ValueError(f"the perturbation has n={self.p.shape[0]} symbols, x has {x.shape[-1]}")
        p = self.p.to(device=x.device)
        if self.shift == "random":
            s = torch.randint(0, p.shape[0], (x.shape[0],), generator=generator, device=x.device)
            return _roll_rows(p, s)
        return torch.roll(p, self.shift).expand(x.shape[0], -1)

    def forward(self, x, n0, generator=None):
        y = self.base(x, n0, generator)
        return y + self.perturbation(x, generator).to(y.dtype)


def Jammed(base, psr_db, mode="complex", generator=None):
    """Perturbed(base, Jamming(psr_db, mode, generator)): Gaussian jamming of the given PSR."""
    return Perturbed(base, Jamming(psr_db, mode, generator))


# --- a differentiable classical receiver ----------------------------------------

class HammingSoftDecoder(nn.Module):
    """Soft ML decoder of Hamming (7,4) on BPSK as a differentiable 'decoder'.

    logits_m = <Re(y), c_m>, the correlation of the real parts with the 16
    BPSK codewords c_m = 1 - 2 bits (core.baselines.hamming74_encode, message
    order of baselines.hamming74_link). All codewords have energy 7, so the
    largest correlation is the nearest codeword: its decision is the soft ML
    decision, and its cross-entropy gives the white-box attacks a gradient
    to follow on the classical receiver (the hard-decision receiver is
    attacked with what is crafted on this one).

    Input:  real float [batch, 14] (real parts, then imaginary parts, ignored)
    Output: logits [batch, 16], y's dtype
    """

    def __init__(self):
        super().__init__()
        bits = baselines.hamming74_encode(torch.arange(16).numpy())
        self.register_buffer("codebook", torch.from_numpy(1.0 - 2.0 * bits.astype("float32")))
        self.n, self.M = 7, 16

    def forward(self, y):
        if y.shape[-1] != 2 * self.n:
            raise ValueError(f"y must have shape [B, {2 * self.n}], got {list(y.shape)}")
        return y[:, :self.n] @ self.codebook.to(y.dtype).T


def hamming_soft_decoder():
    """A HammingSoftDecoder (eval mode): real [B, 14] -> logits [B, 16]."""
    return HammingSoftDecoder().eval()


# --- the attacker's data ----------------------------------------------------------

def received_signals(codebook, messages, ebn0_db, generator=None):
    """The attacker's dataset: messages sent through AWGN at ebn0_db.

    Input
    -----
    codebook : a models.Encoder, or complex [M, n] (tensor or array) with
        Es = 1, the transmitted word of each message
    messages : int64 [B] in [0, M)
    ebn0_db : float, Eb/N0 in dB (N0 = 1 / (R Eb/N0), R = log2(M) / n)
    generator : torch.Generator for the noise (e.g. prng.torch_generator(seed, prng.ATTACK))

    Output
    ------
    complex64 tensor [B, n], the received blocks.
    """
    if hasattr(codebook, "symbol_table"):
        table = torch.from_numpy(codebook.symbol_table())
    else:
        table = torch.as_tensor(codebook)
        if not table.is_complex():
            table = table.to(torch.float32).to(torch.complex64)
    if table.dim() != 2:
        raise ValueError(f"codebook must have shape [M, n], got {list(table.shape)}")
    M, n = validate.sizes(table.shape[0], table.shape[1])
    messages = torch.as_tensor(messages, dtype=torch.int64)
    if messages.dim() != 1 or (messages.numel() and (messages.min() < 0 or messages.max() >= M)):
        raise ValueError(f"messages must be int64 [B] in [0, {M})")
    n0 = snr.n0_from_ebn0_db(validate.db("ebn0_db", ebn0_db), M, n)
    x = table.to(torch.complex64)[messages]
    return channels.AWGN()(x, n0, generator)
