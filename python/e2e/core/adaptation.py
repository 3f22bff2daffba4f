"""How well a link trained on one subchannel family adapts to families it never saw.

The methods compared on each family (all with genie CSI, M messages on the
same N subchannels, the same channels, messages and noise: core.mpa's
evaluation stream):

  frozen      the autoencoder without the layer, trained on the training
              family, used as it is
  alpha0      the MPA link with its layer at the base coefficients alpha0
              (the MPA link without adaptation)
  mpa         the MPA link, its layer re-iterated from each channel
              measurement (paper, Algorithm 2); receiver unchanged
  gradient    the MPA link, its layer's coefficients fitted by gradient
              steps against the frozen receiver (mpa.adapt_gradient)
  retrained   the autoencoder without the layer trained on this family (the
              upper bound adaptation tries to reach)
  classical:S QPSK repetition with classical precoding S
              (core.classical_precoding) and ML detection

summary() turns the curves into the numbers the benchmark reports: BLER at
one Eb/N0, the Eb/N0 where BLER crosses a target, and the share of the
frozen-to-retrained gap each method closes.
"""
import math
import time

import numpy as np
import torch

from . import classical_precoding, evaluation, mpa, progress, theory, validate

TARGET_BLER = 1e-2


def link_method(encoder, decoder, adaptation="none", **adapt_options):
    """A method (channel, ebn0_db, channels, block, seed) -> (errors, blocks, adaptation seconds) of a learned link."""
    validate.choice("adaptation", adaptation, ("none", "mpa", "gradient"))

    def run(channel, ebn0_db, channels, block, seed):
        return mpa.block_errors(encoder, decoder, channel, ebn0_db, channels=channels, block=block,
                                adaptation=adaptation, seed=seed, **adapt_options)
    return run


def classical_method(scheme, M):
    """A method of the same signature for classical precoding `scheme` (no adaptation time: closed form)."""
    validate.choice("scheme", scheme, classical_precoding.PRECODERS)

    def run(channel, ebn0_db, channels, block, seed):
        start = time.perf_counter()
        errors, blocks = classical_precoding.block_errors(channel, ebn0_db, scheme, M=M, channels=channels,
                                                          block=block, seed=seed)
        return errors, blocks, time.perf_counter() - start
    return run


def bler_curves(methods, channel, grid, *, channels, block, seed=0, progress_bar=False):
    """BLER against Eb/N0 of every method on one channel family.

    methods: {name: method} (link_method, classical_method)
    channel: core.subchannels.SubchannelChannel of the family
    grid:    Eb/N0 values in dB
    channels, block: channel realisations per point and messages per realisation
    Returns {name: [point dict: ebn0_db, errors, blocks, bler, bler_ci95 (low, high),
    adapt_ms_per_channel]}.
    """
    validate.integer("channels", channels, 1)
    validate.integer("block", block, 1)
    grid = [validate.db("ebn0_db", e) for e in grid]
    bar = progress.bar(len(methods) * len(grid), f"BLER on {channel.family}", enabled=progress_bar, unit="point")
    curves = {}
    for name, method in methods.items():
        points = []
        for ebn0 in grid:
            errors, blocks, seconds = method(channel, ebn0, channels, block, seed)
            points.append({"ebn0_db": ebn0, "errors": errors, "blocks": blocks, "bler": errors / blocks,
                           "bler_ci95": list(theory.wilson_interval(errors, blocks)),
                           "adapt_ms_per_channel": 1e3 * seconds / channels})
            bar.update(1)
            bar.set_postfix(method=name, ebn0_db=ebn0, bler=f"{errors / blocks:.3g}")
        curves[name] = points
    bar.close()
    return curves


def ebn0_at(curve, target=TARGET_BLER):
    """Eb/N0 (dB) where a curve crosses BLER `target` (log-linear between points), or None if it does not."""
    pairs = sorted((p["ebn0_db"], p["bler"]) for p in curve if p["bler"] > 0)
    return evaluation._reference_ebn0_at(pairs, target) if pairs else None


def point_at(curve, ebn0_db):
    """The point of a curve at ebn0_db; ValueError if the grid does not hold it."""
    for p in curve:
        if math.isclose(p["ebn0_db"], ebn0_db):
            return p
    raise ValueError(f"ebn0_db {ebn0_db!r} is not on the grid {[p['ebn0_db'] for p in curve]}")


def gap_closed(frozen, method, retrained):
    """Share of the frozen -> retrained gap a method closes: (frozen - method) / (frozen - retrained).

    1 reaches the retrained link, 0 is no better than frozen, negative is
    worse than frozen; None when a value is missing or there is no gap.
    Works on BLERs (lower is better) and on Eb/N0 at a target alike.
    """
    if frozen is None or method is None or retrained is None or frozen == retrained:
        return None
    return (frozen - method) / (frozen - retrained)


def summary(curves, fixed_ebn0_db, target=TARGET_BLER, frozen="frozen", retrained="retrained"):
    """Per method: BLER (with its 95% interval) at fixed_ebn0_db, Eb/N0 at `target`, and the gap it closes.

    Returns {name: {bler, bler_ci95, ebn0_db_at_target, gap_closed_bler,
    gap_closed_db, adapt_ms_per_channel}}; the gap shares are measured
    between curves[frozen] and curves[retrained] (None if either is absent).
    """
    at = {name: point_at(c, fixed_ebn0_db) for name, c in curves.items()}
    need = {name: ebn0_at(c, target) for name, c in curves.items()}
    rows = {}
    for name in curves:
        rows[name] = {
            "bler": at[name]["bler"], "bler_ci95": at[name]["bler_ci95"], "ebn0_db_at_target": need[name],
            "gap_closed_bler": gap_closed(at.get(frozen, {}).get("bler"), at[name]["bler"],
                                          at.get(retrained, {}).get("bler")),
            "gap_closed_db": gap_closed(need.get(frozen), need[name], need.get(retrained)),
            "adapt_ms_per_channel": float(np.mean([p["adapt_ms_per_channel"] for p in curves[name]]))}
    return rows


@torch.no_grad()
def convergence_steps(encoder, h, n0, *, tol=mpa.DEFAULT_TOL, max_steps=200):
    """Steps the MPA iteration needs until no coefficient moves by more than tol, per channel.

    encoder: MpaEncoder; h: complex [B, N]; n0: float.
    Returns int64 numpy [B]: the first step whose largest change is <= tol
    (max_steps + 1 where it never got there). The same damped steps as
    mpa.iterate, with the encoder's beta and damping.
    """
    validate.integer("max_steps", max_steps, 1)
    steps = torch.full((h.shape[0],), max_steps + 1, dtype=torch.int64)
    iteration = mpa.damped_steps(encoder.features(), h, n0, encoder.alpha0, beta=encoder.beta,
                                 damping=encoder.damping)
    for k, (previous, alpha) in zip(range(1, max_steps + 1), iteration):
        delta = (alpha - previous).abs().flatten(1).max(dim=1).values
        steps = torch.where((delta <= tol) & (steps > max_steps), torch.full_like(steps, k), steps)
    return steps.numpy()


def adaptation_seconds(encoder, decoder, h, n0, *, repeats=20, **gradient_options):
    """Wall-clock seconds of one adaptation for one channel measurement, as a transmitter does it per update.

    h: complex [1, N]. Returns {'mpa': median seconds, 'gradient': median
    seconds} over `repeats` runs (the gradient method takes fewer repeats,
    at least 3, as it is slower).
    """
    validate.integer("repeats", repeats, 1)
    if h.dim() != 2 or h.shape[0] != 1:
        raise ValueError(f"h must have shape [1, N], got {tuple(h.shape)}")
    times = {"mpa": [], "gradient": []}
    for _ in range(repeats):
        times["mpa"].append(encoder.adapt(h, n0).seconds)
    for _ in range(max(3, repeats // 4)):
        with torch.enable_grad():
            times["gradient"].append(mpa.adapt_gradient(encoder, decoder, h, n0, **gradient_options).seconds)
    return {k: float(np.median(v)) for k, v in times.items()}
