"""core.adaptation: the scoring of adaptation methods on subchannel families."""
import math

import numpy as np
import pytest
import torch

from gnuradio.e2e.core import adaptation, adaptation_plot, mpa, prng, subchannels

torch.set_num_threads(1)


def test_gap_closed_is_the_share_of_the_frozen_to_retrained_distance():
    assert adaptation.gap_closed(0.04, 0.03, 0.02) == pytest.approx(0.5)
    assert adaptation.gap_closed(12.0, 12.0, 10.0) == 0.0
    assert adaptation.gap_closed(12.0, 13.0, 10.0) == pytest.approx(-0.5)
    assert adaptation.gap_closed(12.0, 9.0, 10.0) == pytest.approx(1.5)
    assert adaptation.gap_closed(None, 1.0, 2.0) is None and adaptation.gap_closed(1.0, 1.0, 1.0) is None


def _curve(pairs):
    return [{"ebn0_db": e, "bler": b, "errors": int(b * 1e4), "blocks": 10000, "bler_ci95": [b, b],
             "adapt_ms_per_channel": 0.0} for e, b in pairs]


def test_ebn0_at_interpolates_in_log_bler_and_says_when_not_reached():
    c = _curve([(0, 1e-1), (4, 1e-3), (8, 0.0)])
    assert adaptation.ebn0_at(c, 1e-2) == pytest.approx(2.0)
    assert adaptation.ebn0_at(_curve([(0, 0.5), (4, 0.2)]), 1e-2) is None


def test_summary_measures_every_method_against_frozen_and_retrained():
    curves = {"frozen": _curve([(0, 1e-1), (8, 1e-3)]), "mpa": _curve([(0, 1e-1), (8, 1e-4)]),
              "retrained": _curve([(0, 1e-2), (8, 1e-4)])}
    rows = adaptation.summary(curves, 8.0)
    assert rows["frozen"]["gap_closed_bler"] == 0.0 and rows["retrained"]["gap_closed_bler"] == 1.0
    assert rows["mpa"]["gap_closed_bler"] == pytest.approx(1.0)
    # Eb/N0 at 1e-2: frozen 4 dB, mpa 8/3 dB, retrained 0 dB.
    assert rows["mpa"]["gap_closed_db"] == pytest.approx((4 - 8 / 3) / 4)
    with pytest.raises(ValueError, match="not on the grid"):
        adaptation.summary(curves, 3.0)


def test_convergence_steps_is_where_the_iteration_stops_moving(tiny_precoder):
    enc = tiny_precoder.encoder
    h = subchannels.SubchannelChannel(8, "selective").draw_gains(20, prng.torch_generator(5, prng.MPA))
    n0, tol = mpa.noise_density(8.0, 16, 8), 1e-3
    steps = adaptation.convergence_steps(enc, h, n0, tol=tol, max_steps=60)
    assert steps.shape == (20,) and steps.min() >= 1
    with torch.no_grad():
        f = enc.features()
    for b in np.flatnonzero(steps <= 60)[:5]:
        s = int(steps[b])
        at = mpa.iterate(f, h[b:b + 1], n0, enc.alpha0, beta=enc.beta, damping=enc.damping, steps=s)
        assert float(at.delta[0]) <= tol
        if s > 1:
            before = mpa.iterate(f, h[b:b + 1], n0, enc.alpha0, beta=enc.beta, damping=enc.damping, steps=s - 1)
            assert float(before.delta[0]) > tol


def test_bler_curves_are_deterministic_points_with_intervals(tiny_precoder):
    ch = subchannels.SubchannelChannel(8, "deep_fade")
    methods = {"mpa": adaptation.link_method(tiny_precoder.encoder, tiny_precoder.decoder, "mpa"),
               "classical": adaptation.classical_method("selection", 16)}
    a = adaptation.bler_curves(methods, ch, [4.0, 8.0], channels=30, block=5, seed=2)
    b = adaptation.bler_curves(methods, ch, [4.0, 8.0], channels=30, block=5, seed=2)
    for name in methods:
        assert [p["errors"] for p in a[name]] == [p["errors"] for p in b[name]]
        assert [p["blocks"] for p in a[name]] == [150, 150]
        for p in a[name]:
            lo, hi = p["bler_ci95"]
            assert lo <= p["bler"] <= hi and p["adapt_ms_per_channel"] >= 0
    with pytest.raises(ValueError, match="scheme"):
        adaptation.classical_method("dirty-paper", 16)


def test_adaptation_seconds_times_one_measurement(tiny_precoder):
    h = subchannels.SubchannelChannel(8, "train").draw_gains(1, prng.torch_generator(0, prng.MPA))
    t = adaptation.adaptation_seconds(tiny_precoder.encoder, tiny_precoder.decoder, h, 0.1, repeats=4, steps=3)
    assert set(t) == {"mpa", "gradient"} and all(v > 0 for v in t.values())
    with pytest.raises(ValueError, match=r"h must have shape \[1, N\]"):
        adaptation.adaptation_seconds(tiny_precoder.encoder, tiny_precoder.decoder, h.repeat(2, 1), 0.1)


def test_figures_are_written(tmp_path):
    curves = {"deep_fade": {"frozen": _curve([(0, 1e-1), (8, 1e-3)]), "mpa": _curve([(0, 1e-1), (8, 1e-4)]),
                            "classical:selection": _curve([(0, 5e-2), (8, 1e-4)])}}
    adaptation_plot.plot_families(curves, tmp_path / "bler.png")
    rows = {"deep_fade": adaptation.summary(dict(curves["deep_fade"], retrained=curves["deep_fade"]["mpa"]), 8.0)}
    adaptation_plot.plot_gap_closed(rows, tmp_path / "gap.png")
    adaptation_plot.plot_convergence({"deep_fade": np.array([3, 5, 9])}, {"deep_fade": [(0, 0.1), (4, 0.05)]},
                                     tmp_path / "conv.png")
    for name in ("bler.png", "gap.png", "conv.png"):
        assert (tmp_path / name).stat().st_size > 0
