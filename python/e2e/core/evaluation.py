"""Monte-Carlo BLER/BER of any link over any channel, and dB gaps between curves.

A *link* (see ``core.baselines``) has ``M``, ``n``, ``mode``, ``name``,
``transmit(messages) -> [B, n]`` and ``receive(y, n0) -> [B]``; classical
baselines and learned models are scored by the same code, over any channel
of the core.channels interface (AWGN, fading, learned channels, attacks), on
the same noise convention (DESIGN.md: Es = 1, N0 = 1 / (R Eb/N0), N0/2 per
real dimension).
"""
import math

import numpy as np
import torch

from . import progress, prng, snr, theory, validate
from .baselines import message_bits
from .channels import AWGN, check_mode


def _is_power_of_two(M):
    return M >= 1 and (M & (M - 1)) == 0


def evaluate_bler(link, ebn0_db_grid, *, channel=None, min_errors=100, max_blocks=1_000_000,
                  batch_size=100_000, seed=0, progress_bar=False):
    """Monte-Carlo block and bit error rates of a link over an Eb/N0 grid.

    Each point draws uniform messages from ``prng.numpy_rng(seed, EVAL, i)``
    and the channel's randomness from ``prng.torch_generator(seed, EVAL, i,
    NOISE)`` (point index i), so a point is reproducible on its own and
    independent of the others. Batches run until ``block_errors >=
    min_errors`` or ``blocks >= max_blocks`` (the last batch is trimmed so
    that blocks never exceed max_blocks). N0 follows from the link's own
    rate log2(M)/n.

    The receiver sees only what the channel returns: link.receive(y, n0) is
    never told a fading gain, so baselines written for AWGN are not optimal
    on fading channels (baselines.ml_detect_block_fading is).

    Input
    -----
    link : object with M, n, mode, transmit, receive (see core.baselines)
    ebn0_db_grid : sequence of float, Eb/N0 points in dB
    channel : core.channels interface, complex [B, n] -> complex [B, n];
        None means AWGN. A real-mode link needs a channel that keeps real
        signals real (channels.check_mode).

    Output
    ------
    list of dict, one per point, JSON-serialisable: ebn0_db, snr_db, n0,
    blocks, block_errors, bler, bler_ci95 [low, high] (Wilson 95%) and, when
    M is a power of two (k = log2 M bits per message), bits, bit_errors, ber,
    ber_ci95. The BER interval treats bits as independent trials; bit errors
    in one block are correlated, so it is narrower than the truth.
    """
    M, n = validate.sizes(link.M, link.n)
    channel = check_mode(AWGN() if channel is None else channel, link.mode)
    for name, value in (("min_errors", min_errors), ("max_blocks", max_blocks), ("batch_size", batch_size)):
        validate.integer(name, value, 1)
    k = int(round(math.log2(M))) if _is_power_of_two(M) else None
    grid = [validate.db("ebn0_db", e) for e in ebn0_db_grid]

    bar = progress.bar(len(grid), str(getattr(link, "name", "link")), progress_bar, unit="pt")
    results = []
    for i, ebn0_db in enumerate(grid):
        n0 = snr.n0_from_ebn0_db(ebn0_db, M, n)
        rng = prng.numpy_rng(seed, prng.EVAL, i)
        gen = prng.torch_generator(seed, prng.EVAL, i, prng.NOISE)
        blocks = block_errors = bit_errors = 0
        done = 0.0  # this point's share finished: it stops at min_errors or max_blocks, whichever first
        while block_errors < min_errors and blocks < max_blocks:
            b = min(int(batch_size), int(max_blocks) - blocks)
            sent = rng.integers(0, M, size=b, dtype=np.int64)
            x = torch.from_numpy(np.asarray(link.transmit(sent), dtype=np.complex128))
            with torch.no_grad():
                y = channel(x, n0, gen).numpy()
            decided = np.asarray(link.receive(y, n0), dtype=np.int64)
            wrong = decided != sent
            blocks += b
            block_errors += int(np.count_nonzero(wrong))
            if k is not None and k > 0 and wrong.any():
                # Only wrong blocks can hold bit errors; XOR marks the differing bits.
                bit_errors += int(message_bits(sent[wrong] ^ decided[wrong], k).sum(dtype=np.int64))
            now = min(1.0, max(block_errors / min_errors, blocks / max_blocks))
            bar.update(now - done)
            done = now
        point = {
            "ebn0_db": ebn0_db,
            "snr_db": snr.ebn0_db_to_snr_db(ebn0_db, M, n),
            "n0": float(n0),
            "blocks": blocks,
            "block_errors": block_errors,
            "bler": block_errors / blocks,
            "bler_ci95": list(theory.wilson_interval(block_errors, blocks)),
        }
        if k is not None and k > 0:
            bits = blocks * k
            point.update(bits=bits, bit_errors=bit_errors, ber=bit_errors / bits,
                         ber_ci95=list(theory.wilson_interval(bit_errors, bits)))
        results.append(point)
        bar.set_postfix(ebn0_db=ebn0_db, bler=f"{point['bler']:.3g}")
        bar.update(1.0 - done)
    bar.close()
    return results


def _as_pairs(curve):
    """List of point dicts or (ebn0_db, bler) pairs -> list of (float, float)."""
    pairs = []
    for p in curve:
        if isinstance(p, dict):
            pairs.append((float(p["ebn0_db"]), float(p["bler"])))
        else:
            e, b = p
            pairs.append((float(e), float(b)))
    return pairs


def _reference_ebn0_at(ref, target):
    """Eb/N0 at which the reference crosses BLER target, or None.

    Linear in log10(BLER) between adjacent reference points (sorted by
    Eb/N0, zero-BLER points dropped); if a noisy reference crosses the
    target more than once, the lowest Eb/N0 crossing wins.
    """
    lt = math.log10(target)
    for (x0, b0), (x1, b1) in zip(ref, ref[1:]):
        l0, l1 = math.log10(b0), math.log10(b1)
        if min(l0, l1) <= lt <= max(l0, l1):
            if l0 == l1:
                return x0
            return x0 + (lt - l0) * (x1 - x0) / (l1 - l0)
    if len(ref) == 1 and ref[0][1] == target:
        return ref[0][0]
    return None


def db_gap(curve, reference):
    """Horizontal (Eb/N0) distance of a BLER curve from a reference curve.

    Input
    -----
    curve, reference : list of point dicts (as from evaluate_bler) or of
        (ebn0_db, bler) pairs

    Output
    ------
    list of dict, one per point of ``curve`` with bler > 0: ebn0_db, bler,
    reference_ebn0_db (Eb/N0 where the reference reaches that BLER, None
    outside its range) and gap_db = ebn0_db - reference_ebn0_db (None too);
    a positive gap means the curve needs more Eb/N0, i.e. is worse.
    """
    ref = sorted((e, b) for e, b in _as_pairs(reference) if b > 0)
    out = []
    for e, b in _as_pairs(curve):
        if not b > 0:
            continue
        r = _reference_ebn0_at(ref, b)
        out.append({"ebn0_db": e, "bler": b, "reference_ebn0_db": r,
                    "gap_db": None if r is None else e - r})
    return out


def max_gap_db(curve, reference, ebn0_range=None):
    """Largest gap_db of db_gap over curve points with lo <= Eb/N0 <= hi.

    ebn0_range : (lo, hi) in dB, or None for every point. Points with no
    reference crossing are ignored; returns None when no gap is defined.
    """
    lo, hi = (-math.inf, math.inf) if ebn0_range is None else map(float, ebn0_range)
    gaps = [g["gap_db"] for g in db_gap(curve, reference)
            if g["gap_db"] is not None and lo <= g["ebn0_db"] <= hi]
    return max(gaps) if gaps else None
