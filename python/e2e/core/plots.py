"""Figures for reports: BLER curves, constellations, training loss.

Figures are drawn on ``matplotlib.figure.Figure`` objects rendered by the Agg
canvas, never through pyplot, so saving a file neither needs a display nor
changes the backend of a user's interactive session.
"""
import os

import numpy as np

from . import validate


def _new_figure(figsize=(6.4, 4.8)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


_MARKERS = "osD^v<>ph*"


def _points(curve):
    """-> (ebn0 [P], bler [P], yerr [2, P] or None), zero-BLER points dropped (log axis)."""
    e, b, lo, hi, has_ci = [], [], [], [], True
    for p in curve:
        if isinstance(p, dict):
            e.append(float(p["ebn0_db"]))
            b.append(float(p["bler"]))
            ci = p.get("bler_ci95")
            has_ci = has_ci and ci is not None
            lo.append(float(ci[0]) if ci is not None else np.nan)
            hi.append(float(ci[1]) if ci is not None else np.nan)
        else:
            e.append(float(p[0]))
            b.append(float(p[1]))
            has_ci = False
    e, b, lo, hi = map(np.asarray, (e, b, lo, hi))
    keep = b > 0
    yerr = np.stack([b - lo, hi - b])[:, keep] if has_ci and len(b) else None
    return e[keep], b[keep], yerr


def plot_bler(curves, path, title=None, styles=None, baselines=()):
    """BLER versus Eb/N0 on a log axis, with Wilson 95% error bars.

    Input
    -----
    curves : dict name -> list of point dicts (ebn0_db, bler, optional
        bler_ci95) as from evaluation.evaluate_bler, or of (ebn0_db, bler)
        pairs (drawn without error bars, e.g. theory lines)
    path : output file (parent directories are created)
    styles : optional dict name -> dict of Axes.errorbar kwargs, overriding
        the defaults
    baselines : names drawn dashed; every other curve (learned) is solid

    Returns the path.
    """
    fig = _new_figure()
    ax = fig.subplots()
    baselines = set(baselines)
    styles = styles or {}
    for i, (name, curve) in enumerate(curves.items()):
        e, b, yerr = _points(curve)
        style = {"marker": _MARKERS[i % len(_MARKERS)], "markersize": 4, "capsize": 2,
                 "linestyle": "--" if name in baselines else "-", "label": name}
        style.update(styles.get(name, {}))
        ax.errorbar(e, b, yerr=yerr, **style)
    ax.set_yscale("log")
    ax.set_xlabel("Eb/N0 (dB)")
    ax.set_ylabel("BLER")
    ax.grid(True, which="both", alpha=0.3)
    if curves:
        ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_constellation(symbols, mode, path, title=None):
    """The transmitted words of all M messages.

    Input
    -----
    symbols : complex array [M, n]
    mode : 'complex': all M n points in the IQ plane, coloured by channel
        use; 'real': an M x n heatmap of the real amplitudes

    Returns the path.
    """
    validate.mode(mode)
    s = np.asarray(symbols)
    if s.ndim != 2:
        raise ValueError(f"symbols must have shape [M, n], got {s.shape}")
    M, n = s.shape
    fig = _new_figure()
    ax = fig.subplots()
    if mode == "complex":
        use = np.broadcast_to(np.arange(n), (M, n)).ravel()
        sc = ax.scatter(s.real.ravel(), s.imag.ravel(), c=use, cmap="viridis", s=14,
                        vmin=0, vmax=max(n - 1, 1))
        if n > 1:
            fig.colorbar(sc, ax=ax, label="channel use")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.axvline(0, color="0.6", lw=0.5)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("in-phase")
        ax.set_ylabel("quadrature")
    elif mode == "real":
        a = s.real
        # Symmetric limits so that zero is the neutral colour of the diverging map.
        vmax = float(np.abs(a).max()) or 1.0
        im = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, label="amplitude")
        ax.set_xlabel("channel use")
        ax.set_ylabel("message")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _smooth(x, window):
    if window <= 1 or len(x) < window:
        return x
    kernel = np.ones(window) / window
    # 'valid' then pad the start with the running mean, so the line starts at step 0.
    head = np.cumsum(x[:window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(x, kernel, mode="valid")])


def plot_loss(history, path, title=None):
    """Training loss versus step, raw and smoothed, log y when all positive.

    Input
    -----
    history : dict with 'step' and 'loss' (equal-length lists) and optionally
        'lr' (same length), drawn on a second axis

    Returns the path.
    """
    step = np.asarray(history["step"], dtype=np.float64)
    loss = np.asarray(history["loss"], dtype=np.float64)
    if step.shape != loss.shape:
        raise ValueError(f"'step' and 'loss' differ in length: {step.shape} vs {loss.shape}")
    fig = _new_figure()
    ax = fig.subplots()
    ax.plot(step, loss, color="C0", alpha=0.3, lw=0.8, label="loss")
    ax.plot(step, _smooth(loss, max(1, len(loss) // 50)), color="C0", lw=1.6, label="smoothed")
    if len(loss) and np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if history.get("lr") is not None:
        lr = np.asarray(history["lr"], dtype=np.float64)
        ax2 = ax.twinx()
        ax2.plot(step, lr, color="C1", lw=1.0, label="learning rate")
        if np.all(lr > 0):
            ax2.set_yscale("log")
        ax2.set_ylabel("learning rate")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    if title:
        ax.set_title(title)
    return _save(fig, path)
