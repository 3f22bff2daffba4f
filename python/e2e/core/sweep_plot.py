"""The figure of a sweep: BLER versus Eb/N0 per method and channel, with the spread across seeds."""
import numpy as np

from .plots import _MARKERS, _new_figure, _save

# The curves a sweep figure draws: what the link runs (the neural decoder)
# and the classical baselines; ML detection stays in the table.
NEURAL = "learned, neural decoder"


def _drawn(curve, train):
    return curve == NEURAL or not train  # baselines have no training Eb/N0


def plot_sweep(rows, across, path, title=None):
    """One column per channel; one line per (method, training Eb/N0) and per baseline.

    Input
    -----
    rows : list of dicts as sweep.aggregate's rows (one per seed and point)
    across : list of dicts as sweep.aggregate's across_seeds (method,
        channel, train_ebn0_db, curve, ebn0_db, seeds, bler_mean,
        bler_ci95_low, bler_ci95_high)
    path : output file

    With several seeds a line is the mean BLER over seeds, its band the 95%
    t interval across seeds (down to the axis floor where the interval
    reaches 0) and small dots the seeds themselves. With one seed a line
    carries each point's Wilson 95% error bar. Baselines are dashed. Where a
    channel has a baseline, a lower panel divides every curve (band and dots
    too) by the first baseline's mean, so a spread of a few percent shows.
    Zero BLERs are not drawn (log axis). Returns the path.
    """
    curves, seeds = {}, {}
    for a in across:
        if _drawn(a["curve"], a["train_ebn0_db"]):
            key = (a["method"], a["train_ebn0_db"], a["curve"])
            curves.setdefault(a["channel"], {}).setdefault(key, []).append(a)
    for r in rows:
        if r["status"] == "ok" and _drawn(r["curve"], r["train_ebn0_db"]):
            key = (r["channel"], r["method"], r["train_ebn0_db"], r["curve"])
            seeds.setdefault(key, {}).setdefault(r["ebn0_db"], []).append(r["bler"])
    chans = list(curves) or ["awgn"]
    references = {c: next(((k, v) for k, v in curves.get(c, {}).items() if not k[1]), None) for c in chans}
    with_ratio = any(references.values())
    fig = _new_figure(figsize=(6.4 * len(chans), 6.6 if with_ratio else 4.8))
    axes = fig.subplots(2 if with_ratio else 1, len(chans), squeeze=False, sharex="col",
                        gridspec_kw={"height_ratios": [3, 1.4]} if with_ratio else None)
    positive = [a["bler_mean"] for a in across if a["bler_mean"] > 0] or [1e-6]
    floor = min(positive) / 3
    trains = {}
    for c in curves.values():
        for method, train, _ in c:
            trains.setdefault(method, set()).add(train)
    for col, channel in enumerate(chans):
        ax, ratio_ax = axes[0][col], axes[1][col] if with_ratio else None
        reference = references[channel]
        ref = {p["ebn0_db"]: p["bler_mean"] for p in reference[1]} if reference else {}
        for i, ((method, train, curve), points) in enumerate(curves.get(channel, {}).items()):
            e = np.array([p["ebn0_db"] for p in points])
            mean = np.array([p["bler_mean"] for p in points])
            low = np.array([p["bler_ci95_low"] for p in points])
            high = np.array([p["bler_ci95_high"] for p in points])
            count = points[0]["seeds"]
            if train:  # the training Eb/N0 joins the label when a method has several
                label = method + (f", train {train} dB" if len(trains[method]) > 1 else "")
            else:
                label = curve
            label += f" ({count} seed{'s' * (count > 1)})"
            color = f"C{i % 10}"
            style = {"marker": _MARKERS[i % len(_MARKERS)], "markersize": 4, "label": label,
                     "linestyle": "-" if train else "--", "color": color}
            keep = mean > 0
            per_seed = seeds.get((channel, method, train, curve), {})
            if count > 1:
                ax.plot(e[keep], mean[keep], **style)
                ax.fill_between(e, np.maximum(low, floor), np.maximum(high, floor), color=color, alpha=0.2, lw=0)
            else:
                ax.errorbar(e[keep], mean[keep], yerr=np.stack([mean - low, high - mean])[:, keep], capsize=2,
                            **style)
            dots = [(x, b) for x in e for b in per_seed.get(x, []) if b > 0] if count > 1 else []
            if dots:
                ax.plot(*zip(*dots), linestyle="none", marker=".", markersize=2.5, color=color, alpha=0.6)
            if ratio_ax is None or not ref:
                continue
            scale = np.array([ref.get(x, np.nan) for x in e])
            scale[~(scale > 0)] = np.nan
            ratio_ax.plot(e, mean / scale, **{**style, "label": None})
            if count > 1:
                ratio_ax.fill_between(e, low / scale, high / scale, color=color, alpha=0.2, lw=0)
            else:
                ratio_ax.errorbar(e, mean / scale, yerr=np.stack([mean - low, high - mean]) / scale, capsize=2,
                                  linestyle="none", color=color)
            if dots:
                x, b = np.array(dots).T
                r = b / np.array([ref.get(v, np.nan) for v in x])
                ratio_ax.plot(x, r, linestyle="none", marker=".", markersize=2.5, color=color, alpha=0.6)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.set_ylabel("BLER")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{title}, {channel}" if title else channel)
        if curves.get(channel):
            ax.legend(fontsize="small")
        bottom = ax
        if ratio_ax is not None:
            bottom = ratio_ax
            if ref:
                ratio_ax.set_ylabel(f"BLER / {reference[0][2]}", fontsize="small")
                ratio_ax.grid(True, alpha=0.3)
            else:
                ratio_ax.set_axis_off()
        bottom.set_xlabel("Eb/N0 (dB)")
    return _save(fig, path)
