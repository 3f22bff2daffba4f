"""The decision-regions figure: neural regions, ML (Voronoi) regions, and where they differ.

Drawn on a matplotlib Figure with the Agg canvas (core.plots' helpers), never
through pyplot.
"""
import os

import numpy as np

from . import regions
from .plots import _new_figure

# 3 standard deviations per real dimension: a circle of radius 3 sigma holds
# 1 - exp(-4.5) = 98.9% of a point's received samples.
EXTENT_SIGMAS = 3.0


def message_colours(M):
    """RGBA [M, 4]: one colour per message, neighbouring indices well apart in hue."""
    from matplotlib import colormaps
    if M <= 20:
        # tab20 pairs a dark and a light shade of each hue: the dark ones first.
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))
        return colormaps["tab20"](np.array(order[:M]))
    step = next(s for s in range(int(M * 0.38), M) if np.gcd(s, M) == 1)
    return colormaps["hsv"](((np.arange(M) * step) % M) / M)


def _regions_image(ax, label_map, grid, colours, alpha=1.0):
    from matplotlib.colors import ListedColormap
    h = grid.half_width
    ax.imshow(label_map, origin="lower", extent=(-h, h, -h, h), cmap=ListedColormap(colours),
              vmin=-0.5, vmax=len(colours) - 0.5, interpolation="nearest", alpha=alpha)


def _boundaries(ax, label_map, grid, **style):
    """The outline of every message's region, as contour lines of its indicator."""
    c = grid.centres
    for m in np.unique(label_map):
        ax.contour(c, c, (label_map == m).astype(float), levels=[0.5], **style)


def _points_and_extent(ax, link, colours, train_sigma):
    ax.scatter(link.points.real, link.points.imag, c=colours, s=36, edgecolors="black", linewidths=1.2,
               zorder=5, label="constellation point")
    if train_sigma is not None:
        from matplotlib.patches import Circle
        for i, p in enumerate(link.points):
            ax.add_patch(Circle((p.real, p.imag), EXTENT_SIGMAS * train_sigma, fill=False, ls="--", lw=0.8,
                                ec="black", zorder=4, label="training data, 3σ" if i == 0 else None))


def _frame(ax, grid, title):
    h = grid.half_width
    ax.set_xlim(-h, h)
    ax.set_ylim(-h, h)
    ax.set_aspect("equal")
    ax.set_xlabel("in-phase")
    ax.set_ylabel("quadrature")
    ax.set_title(title, fontsize=10)


def plot_regions(link, grid, nn_map, ml_map, rows, path, title=None):
    """Three panels over the same window, then the measured masses as a table.

    Input
    -----
    link : regions.RegionLink (points complex [M], training Eb/N0)
    grid : regions.Grid, the window and its cells
    nn_map, ml_map : int64 [cells, cells] decisions (regions.decision_maps)
    rows : list of dicts from regions.measure, printed under the panels
    path : output PNG (parent folders are created)

    Returns the path.
    """
    from matplotlib.patches import Patch
    colours = message_colours(link.M)
    low_train = regions.lowest_training_ebn0(link.train_ebn0_db)
    train_sigma = None if low_train is None else regions.noise_sigma(low_train, link.M)
    trained = regions.describe_training(link.train_ebn0_db)
    fig = _new_figure(figsize=(15.0, 6.6))
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.86, bottom=0.27, wspace=0.22)

    _regions_image(axes[0], nn_map, grid, colours)
    _points_and_extent(axes[0], link, colours, train_sigma)
    _frame(axes[0], grid, f"neural decoder (trained at {trained})")

    _regions_image(axes[1], ml_map, grid, colours)
    _points_and_extent(axes[1], link, colours, train_sigma)
    _frame(axes[1], grid, "ML on AWGN: nearest point (Voronoi)")

    ax = axes[2]
    _regions_image(ax, ml_map, grid, colours, alpha=0.25)
    _boundaries(ax, ml_map, grid, colors="black", linewidths=0.6)
    differ = (nn_map != ml_map).astype(float)
    c = grid.centres
    if differ.any():
        ax.contourf(c, c, differ, levels=[0.5, 1.5], colors=["#d62728"], alpha=0.45, hatches=["////"])
        ax.contour(c, c, differ, levels=[0.5], colors="#a00000", linewidths=0.8)
    _points_and_extent(ax, link, colours, train_sigma)
    _frame(ax, grid, f"where they differ: {differ.mean():.1%} of the window's area")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="#d62728", alpha=0.45, hatch="////", label="NN decision ≠ ML decision"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)

    fig.suptitle(title or f"decision regions, M={link.M}, n=1 complex: {link.name}", fontsize=12)
    note = (f"window ±{grid.half_width:.3g} ({grid.cells}x{grid.cells} cells); masses for y = x + w, x uniform "
            f"over the points, AWGN at each Eb/N0 (N0 = 1/(log2(M) Eb/N0), Es = 1). MC: "
            f"{rows[0]['samples'] if rows else 0} samples per row, same draws for both detectors. grid: the "
            "Gaussian mass of the cells where the decisions differ; outside: mass beyond the window.")
    fig.text(0.05, 0.19, note, fontsize=8, wrap=True, va="top")
    fig.text(0.05, 0.13, regions.format_table(rows), family="monospace", fontsize=8, va="top")
    return _save(fig, path)


def _save(fig, path):
    """As plots' figures, at 100 dpi: the 15-inch-wide figure stays near 200 kB (a README image)."""
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
