"""BLER comparison of a trained link against classical baselines.

What `gr_e2e eval` and the main job compute and print: the learned link
scored with its neural decoder and with the optimal detector on its own
constellation, the classical baselines on the same grid and channel, and
the dB gaps between them.
"""
import math

from . import baselines, checkpoint, evaluation
from .channels import AWGN, RayleighBlockFading
from .learned import LearnedLink

BASELINES = ("hamming-soft", "hamming-hard", "uncoded-bpsk", "uncoded-qpsk", "uncoded-16qam")
_BITS_PER_SYMBOL = {"bpsk": 1, "qpsk": 2, "16qam": 4}


def baseline_links(names, config):
    """Links for baseline names (BASELINES) that carry config.M messages; ValueError naming the misfit."""
    k = math.log2(config.M)
    links = []
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"baselines: unknown {name!r}; choose from {', '.join(BASELINES)}")
        if name.startswith("hamming"):
            if config.M != 16:
                raise ValueError(f"baselines: {name} carries 16 messages, the link has M={config.M}")
            links.append(baselines.hamming74_link(name.split("-")[1]))
            continue
        modulation = name.split("-")[1]
        if k != int(k) or int(k) % _BITS_PER_SYMBOL[modulation]:
            raise ValueError(f"baselines: {name}: {config.M} messages do not fill whole {modulation} symbols")
        links.append(baselines.uncoded_link(int(k), modulation))
    return links


def default_baselines(config):
    """Hamming (7,4) soft and hard for M = 16, and uncoded BPSK (real mode, odd k) or QPSK."""
    names = ["hamming-soft", "hamming-hard"] if config.M == 16 else []
    k = math.log2(config.M)
    if k == int(k):
        names.append("uncoded-bpsk" if config.mode == "real" or int(k) % 2 else "uncoded-qpsk")
    return names


def ml_detector_for(channel):
    """The optimal detector on a learned constellation for this channel: 'ml' (AWGN) or 'ml-rbf'."""
    if isinstance(channel, RayleighBlockFading):
        return "ml-rbf"
    if isinstance(channel, AWGN):
        return "ml"
    return None


def evaluate_checkpoint(path, grid, *, channel=None, baselines=None, min_errors=100, max_blocks=1_000_000,
                        seed=0, progress_bar=True):
    """BLER curves of a link checkpoint (neural decoder and, where known, the optimal detector) and baselines.

    channel: core.channels interface (None: AWGN). The classical baselines
    are AWGN designs: on another channel asking for them is refused, and by
    default none are run. The optimal detector is ML on AWGN and ML without
    channel knowledge on Rayleigh block fading; other channels get none.
    Returns (config, encoder, curves {name: points}, gaps {name: db_gap list}).
    """
    channel = AWGN() if channel is None else channel
    config, encoder, decoder = checkpoint.load_link(path)
    on_awgn = type(channel) is AWGN
    if baselines and not on_awgn:
        raise ValueError("baselines: the classical baselines assume AWGN; on another channel only the "
                         "learned link is evaluated")
    names = (default_baselines(config) if on_awgn else []) if baselines is None else baselines
    links = [LearnedLink(encoder, decoder, "nn", name="learned, neural decoder")]
    detector = ml_detector_for(channel)
    if detector == "ml-rbf" and config.mode != "complex":
        detector = None
    if detector:
        links.append(LearnedLink(encoder, None, detector, name="learned, ML detection"))
    links += baseline_links(names, config)
    curves = {link.name: evaluation.evaluate_bler(link, grid, channel=channel, min_errors=min_errors,
                                                  max_blocks=max_blocks, seed=seed, progress_bar=progress_bar)
              for link in links}
    nn = curves["learned, neural decoder"]
    gaps = {}
    if detector:
        gaps["neural decoder vs ML on its constellation"] = evaluation.db_gap(nn, curves["learned, ML detection"])
    for link in links[1 + bool(detector):]:
        gaps[f"neural decoder vs {link.name}"] = evaluation.db_gap(nn, curves[link.name])
    return config, encoder, curves, gaps


def format_table(curves):
    """BLER curves as a text table: one row per curve, one column per Eb/N0."""
    names = list(curves)
    grid = [p["ebn0_db"] for p in curves[names[0]]]
    width = max(len(n) for n in names)
    lines = ["Eb/N0 (dB)".ljust(width) + "".join(f"{e:>10g}" for e in grid)]
    for name in names:
        lines.append(name.ljust(width) + "".join(f"{p['bler']:>10.3g}" for p in curves[name]))
    return "\n".join(lines)
