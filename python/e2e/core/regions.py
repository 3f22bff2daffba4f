"""Decision regions of a one-complex-use receiver against the ML (Voronoi) regions.

With n = 1 complex channel use the received word is a point of the IQ plane,
so what a receiver decides can be drawn: a label per point of a grid. On AWGN
with equiprobable messages the maximum-likelihood detector picks the nearest
constellation point (its regions are the Voronoi cells); a neural decoder
only approximates them, and only where its training data fell. This module
measures where and how much the two disagree:

- on a grid of cell centres over a square window (wider than the training
  data), the neural and the ML decision of each cell;
- P(NN decision != ML decision) for y = x + w, x uniform over the
  constellation, w ~ CN(0, N0), two ways:
  * Monte Carlo on fresh samples, both detectors on the same samples, with a
    Wilson interval; not limited to the window, no discretisation; this is
    the estimate the tables report with its interval;
  * by integrating the exact Gaussian mass of every grid cell (a product of
    two erfc differences per message) over the cells where the decisions
    differ: deterministic, but a cell counts whole by its centre's decisions
    and mass outside the window is not seen (reported as `outside`);
- each detector's symbol error rate (Monte Carlo, Wilson interval), so the
  cost of the disagreement reads directly: NN SER - ML SER.

Eb/N0 follows DESIGN.md (core/snr.py): Es = 1, N0 = 1/(R Eb/N0), R = log2 M.
Pure NumPy/PyTorch: never imports gnuradio or pmt.
"""
import dataclasses
import json
import typing

import numpy as np
import torch

from . import baselines, checkpoint, prng, snr, theory, validate
from .models import decide, received_tensor

# Keeps these Monte-Carlo draws apart from the BLER evaluator's (same seed, same EVAL stream).
_STREAM_TAG = 0x5245
# Samples decided at once: bounds memory (a few [chunk, M] float arrays).
_CHUNK = 1 << 17
DEFAULT_SIGMAS = 4.0
DEFAULT_SAMPLES = 1_000_000
DEFAULT_CELLS = 400


@dataclasses.dataclass(frozen=True)
class RegionLink:
    """A link with one complex channel use, seen as a decision rule on the IQ plane.

    name: what to call it in tables and titles (the checkpoint path).
    points: complex128 [M], the transmitted symbol of each message.
    decide: callable, received points complex [B] -> int64 [B] decided messages.
    train_ebn0_db: the receiver's training Eb/N0 in dB (a number, or (lo, hi)
        drawn per example), None where unknown.
    train_channel: the training channel's name, None where unknown.
    """

    name: str
    points: np.ndarray
    decide: typing.Callable
    train_ebn0_db: typing.Any = None
    train_channel: typing.Optional[str] = None

    @property
    def M(self):
        return len(self.points)

    def ml_decide(self, y):
        """Minimum-distance (Voronoi) decisions: complex [B] -> int64 [B]."""
        return baselines.ml_detect(np.asarray(y).reshape(-1, 1), self.points[:, None], "complex")


def check_one_complex_use(config, source):
    """Refuse a link whose received word is not one point of the IQ plane; ValueError names source."""
    if config.mode != "complex":
        raise ValueError(f"{source}: is a {config.mode}-mode link; decision regions are drawn for "
                         "n = 1 complex channel use (a point of the IQ plane), not for real channel uses")
    if config.n != 1:
        raise ValueError(f"{source}: has n={config.n} channel uses per message; decision regions are "
                         f"drawn for n = 1 complex channel use (a {2 * config.n}-dimensional received "
                         "word has no plane picture)")
    return config


def training_ebn0(metadata):
    """The training Eb/N0 saved by gr_e2e train ('ebn0_db': JSON number or [lo, hi]); None if absent."""
    text = (metadata or {}).get("ebn0_db")
    if text is None:
        return None
    try:
        value = json.loads(text)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return validate.db_or_range("ebn0_db", tuple(float(v) for v in value))
        return validate.db("ebn0_db", float(value))
    except (ValueError, TypeError):
        return None  # written by something else: shown as unknown rather than refusing the plot


def network_decider(decoder):
    """decide(y) of a Decoder: complex [B] -> int64 [B], through the float32 network as deployed."""
    @torch.no_grad()
    def decide_points(y):
        y = np.asarray(y).reshape(-1, 1)
        out = np.empty(len(y), dtype=np.int64)
        for start in range(0, len(y), _CHUNK):
            out[start:start + _CHUNK] = decide(decoder(received_tensor(y[start:start + _CHUNK]))).numpy()
        return out
    return decide_points


def link_from_networks(config, encoder, decoder, metadata, name):
    """RegionLink of a (LinkConfig, Encoder, Decoder) with one complex use; metadata as saved by train."""
    check_one_complex_use(config, name)
    encoder.eval(), decoder.eval()
    points = encoder.symbol_table().astype(np.complex128)[:, 0]
    return RegionLink(name=name, points=points, decide=network_decider(decoder),
                      train_ebn0_db=training_ebn0(metadata), train_channel=(metadata or {}).get("channel"))


def link_from_checkpoint(path):
    """RegionLink of a link (autoencoder) checkpoint file; ValueError naming the file otherwise."""
    c = checkpoint.load(validate.path("checkpoint", path, allow_empty=False), kinds_allowed=("autoencoder",))
    return link_from_networks(c.config, c.network("encoder"), c.network("decoder"), c.metadata, c.source)


def noise_sigma(ebn0_db, M):
    """Noise standard deviation per real dimension, sqrt(N0/2), at Eb/N0 for M messages on one use."""
    return snr.noise_std_per_real_dim(validate.db("ebn0_db", ebn0_db), M, 1)


def lowest_training_ebn0(train_ebn0_db):
    """The training Eb/N0 with the most noise (lo of a range), or None."""
    if train_ebn0_db is None:
        return None
    return min(train_ebn0_db) if isinstance(train_ebn0_db, tuple) else train_ebn0_db


def default_half_width(link, ebn0_db_list, sigmas=DEFAULT_SIGMAS):
    """Half-width of the square window centred on 0: the constellation's extent plus `sigmas` noise stds.

    The std is the largest among the Eb/N0 values shown and the training
    Eb/N0, so the window holds nearly all received points at every one of
    them, and reaches well beyond the training data when that was less noisy.
    """
    sigmas = validate.real("sigmas", sigmas, 0, low_open=True)
    levels = [float(e) for e in ebn0_db_list]
    low_train = lowest_training_ebn0(link.train_ebn0_db)
    if low_train is not None:
        levels.append(low_train)
    if not levels:
        raise ValueError("ebn0_db_list must hold at least one Eb/N0 when the training Eb/N0 is unknown")
    extent = float(np.max(np.maximum(np.abs(link.points.real), np.abs(link.points.imag))))
    return extent + sigmas * noise_sigma(min(levels), link.M)


@dataclasses.dataclass(frozen=True)
class Grid:
    """cells x cells square cells over [-half_width, half_width]^2.

    edges: float64 [cells + 1] cell boundaries (the same on both axes).
    centres: float64 [cells] cell centres.
    Maps over the grid are float/int arrays [cells, cells], row = quadrature
    (imaginary) index, column = in-phase (real) index, as imshow(origin='lower').
    """

    half_width: float
    cells: int

    @property
    def edges(self):
        return np.linspace(-self.half_width, self.half_width, self.cells + 1)

    @property
    def centres(self):
        e = self.edges
        return 0.5 * (e[:-1] + e[1:])

    def points(self):
        """Every cell centre as a complex point: complex128 [cells * cells], row-major as the maps."""
        c = self.centres
        return (c[None, :] + 1j * c[:, None]).ravel()


def make_grid(half_width, cells=DEFAULT_CELLS):
    half_width = validate.real("window", half_width, 0, low_open=True)
    return Grid(half_width, validate.integer("grid", cells, 8, 4000))


def decision_maps(link, grid):
    """(nn, ml): int64 [cells, cells] maps of the neural and the ML decision at each cell centre."""
    y = grid.points()
    shape = (grid.cells, grid.cells)
    return link.decide(y).reshape(shape), link.ml_decide(y).reshape(shape)


def cell_masses(points, grid, sigma):
    """Probability of each cell under y = x + w, x uniform over points, w ~ CN(0, 2 sigma^2).

    Exact per cell: the Gaussian factorises over the two axes, so the mass of
    cell (j, i) given x is a product of two erfc differences.

    Output: float64 [M, cells, cells], mass[m, j, i] given message m (sum over
    m and divide by M for the mixture).
    """
    e = grid.edges
    sigma = validate.real("sigma", sigma, 0, low_open=True)

    def axis(centres):  # [M, cells]: P(edge_i <= centre + noise < edge_i+1)
        tail = theory.qfunc((e[None, :] - centres[:, None]) / sigma)
        return tail[:, :-1] - tail[:, 1:]

    px, py = axis(points.real), axis(points.imag)
    return py[:, :, None] * px[:, None, :]


def grid_integral(link, grid, nn_map, ml_map, ebn0_db):
    """{'disagree': P(NN != ML), 'outside': mass beyond the window} by cell integration.

    The decisions of a cell are those at its centre; `disagree` counts only
    mass inside the window, so the full-plane value lies in
    [disagree, disagree + outside] up to the cells that straddle a boundary.
    """
    masses = cell_masses(link.points, grid, noise_sigma(ebn0_db, link.M)).sum(axis=0) / link.M
    outside = 1.0 - masses.sum()
    # Below 1e-12 the difference is the rounding of a sum of 10^5 cells, not mass.
    return {"disagree": float(masses[nn_map != ml_map].sum()), "outside": float(outside) if outside > 1e-12 else 0.0}


def monte_carlo(link, ebn0_db, samples=DEFAULT_SAMPLES, seed=0, index=0, confidence=0.95):
    """P(NN != ML) and both detectors' SER on the same `samples` draws of y = x + w.

    x is drawn uniformly over the M points; draws come from the stream
    (seed, EVAL, tag, index), so each Eb/N0 point (index) has its own.
    Returns {'samples', 'disagree', 'nn_errors', 'ml_errors'} (counts) and
    each rate with its Wilson interval at `confidence`: 'p_disagree',
    'p_disagree_ci', 'nn_ser', 'nn_ser_ci', 'ml_ser', 'ml_ser_ci'.
    """
    samples = validate.integer("samples", samples, 1)
    sigma = noise_sigma(ebn0_db, link.M)
    rng = prng.numpy_rng(validate.integer("seed", seed, 0), prng.EVAL, _STREAM_TAG, index)
    counts = {"disagree": 0, "nn_errors": 0, "ml_errors": 0}
    for start in range(0, samples, _CHUNK):
        size = min(_CHUNK, samples - start)
        m = rng.integers(0, link.M, size)
        w = rng.standard_normal((2, size))
        y = link.points[m] + sigma * (w[0] + 1j * w[1])
        nn, ml = link.decide(y), link.ml_decide(y)
        counts["disagree"] += int(np.count_nonzero(nn != ml))
        counts["nn_errors"] += int(np.count_nonzero(nn != m))
        counts["ml_errors"] += int(np.count_nonzero(ml != m))
    out = {"samples": samples, **counts}
    for key, count in (("p_disagree", "disagree"), ("nn_ser", "nn_errors"), ("ml_ser", "ml_errors")):
        out[key] = counts[count] / samples
        out[key + "_ci"] = theory.wilson_interval(counts[count], samples, confidence)
    return out


def training_relation(ebn0_db, train_ebn0_db):
    """'at training', 'in training range', 'X dB below' / 'X dB above' training, or '' when unknown."""
    if train_ebn0_db is None:
        return ""
    lo, hi = train_ebn0_db if isinstance(train_ebn0_db, tuple) else (train_ebn0_db, train_ebn0_db)
    if ebn0_db < lo - 1e-9:
        return f"{lo - ebn0_db:g} dB below"
    if ebn0_db > hi + 1e-9:
        return f"{ebn0_db - hi:g} dB above"
    return "at training" if lo == hi else "in training range"


def measure(link, ebn0_db_list, grid, samples=DEFAULT_SAMPLES, seed=0, maps=None):
    """One row per Eb/N0: monte_carlo's fields, the grid integral ('grid_disagree', 'outside'),
    'ebn0_db' and 'vs_training'. maps: (nn, ml) from decision_maps, computed if None."""
    nn_map, ml_map = maps if maps is not None else decision_maps(link, grid)
    rows = []
    for i, e in enumerate(ebn0_db_list):
        e = validate.db("ebn0_db", e)
        row = {"ebn0_db": e, "vs_training": training_relation(e, link.train_ebn0_db)}
        row.update(monte_carlo(link, e, samples=samples, seed=seed, index=i))
        integral = grid_integral(link, grid, nn_map, ml_map, e)
        row["grid_disagree"], row["outside"] = integral["disagree"], integral["outside"]
        rows.append(row)
    return rows


def describe_training(train_ebn0_db):
    if train_ebn0_db is None:
        return "unknown"
    if isinstance(train_ebn0_db, tuple):
        return f"{train_ebn0_db[0]:g} to {train_ebn0_db[1]:g} dB (per example)"
    return f"{train_ebn0_db:g} dB"


def _rate(p, ci):
    return f"{p:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"


def format_table(rows):
    """The rows of measure() as a text table (what gr_e2e plot regions prints)."""
    header = ("Eb/N0 dB", "vs training", "P(NN!=ML) MC [95% CI]", "grid", "outside",
              "NN SER [95% CI]", "ML SER [95% CI]")
    lines = [header]
    for r in rows:
        lines.append((f"{r['ebn0_db']:g}", r["vs_training"] or "-", _rate(r["p_disagree"], r["p_disagree_ci"]),
                      f"{r['grid_disagree']:.3g}", f"{r['outside']:.1e}", _rate(r["nn_ser"], r["nn_ser_ci"]),
                      _rate(r["ml_ser"], r["ml_ser_ci"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)

