"""Figures of core.adaptation: BLER per family, gap closed, convergence of the MPA iteration."""
import numpy as np

from .plots import _MARKERS, _new_figure, _points, _save

# Lines the eye looks for first: adaptation methods solid, references dashed.
_REFERENCES = ("frozen", "retrained", "alpha0")


def _style(name, i):
    dashed = name in _REFERENCES or name.startswith("classical")
    return {"marker": _MARKERS[i % len(_MARKERS)], "markersize": 4, "capsize": 2,
            "linestyle": "--" if dashed else "-", "label": name}


def plot_families(curves_by_family, path, title=None):
    """One BLER-against-Eb/N0 panel per channel family.

    curves_by_family: {family: {method: [point dicts]}} (adaptation.bler_curves per family)
    Returns the path.
    """
    families = list(curves_by_family)
    cols = min(2, len(families))
    rows = -(-len(families) // cols)
    fig = _new_figure((5.2 * cols, 4.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, family in zip(axes, families):
        for i, (name, curve) in enumerate(curves_by_family[family].items()):
            e, b, yerr = _points(curve)
            ax.errorbar(e, b, yerr=yerr, **_style(name, i))
        ax.set_yscale("log")
        ax.set_title(family)
        ax.set_xlabel("Eb/N0 (dB)")
        ax.set_ylabel("BLER")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(families):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_gap_closed(summaries, path, key="gap_closed_db", goal=0.5, title=None):
    """Grouped bars: the share of the frozen -> retrained gap each method closes, per family.

    summaries: {family: adaptation.summary(...) rows}; key: 'gap_closed_db'
    (Eb/N0 at the target BLER) or 'gap_closed_bler' (BLER at the fixed
    Eb/N0). Missing values (None) are left out. A dotted line marks `goal`.
    """
    families = list(summaries)
    methods = [m for m in next(iter(summaries.values())) if m not in ("frozen", "retrained")]
    fig = _new_figure((1.8 + 1.6 * len(families), 4.0))
    ax = fig.subplots()
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        xs, ys = [], []
        for i, family in enumerate(families):
            v = summaries[family].get(method, {}).get(key)
            if v is not None:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(max(-1.5, min(1.5, v)))  # clipped so one outlier does not flatten the rest
        ax.bar(xs, ys, width, label=method)
    ax.axhline(goal, color="k", linestyle=":", linewidth=1, label=f"goal ({goal:g})")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(families)), families)
    ax.set_ylabel("share of frozen -> retrained gap closed\n(clipped to [-1.5, 1.5])")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the bars, never on them
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_convergence(steps_by_family, bler_by_steps, path, title=None):
    """Left: share of channels converged after k steps, per family. Right: BLER against MPA steps.

    steps_by_family: {family: int array of steps to converge} (adaptation.convergence_steps)
    bler_by_steps:   {family: [(steps, bler), ...]}
    """
    fig = _new_figure((10.4, 4.0))
    left, right = fig.subplots(1, 2)
    for family, steps in steps_by_family.items():
        s = np.sort(np.asarray(steps))
        left.step(s, np.arange(1, s.size + 1) / s.size, where="post", label=family)
    left.set_xlabel("MPA steps")
    left.set_ylabel("share of channels converged")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    for i, (family, pairs) in enumerate(bler_by_steps.items()):
        k, b = zip(*pairs)
        right.plot(k, b, marker=_MARKERS[i % len(_MARKERS)], label=family)
    right.set_xscale("symlog", linthresh=1)
    right.set_yscale("log")
    right.set_xlabel("MPA steps (0: alpha0)")
    right.set_ylabel("BLER")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
