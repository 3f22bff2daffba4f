"""Decision regions (core.regions) and `gr_e2e plot regions`.

The masses are checked against closed forms: an antipodal pair with a
receiver whose threshold is moved by t disagrees with ML on the strip
0 <= Re y < t, of mass [Q((1-t)/s) - Q((1+t)/s)] / 2; its SER and ML's
(uncoded BPSK, Q(sqrt(2 Eb/N0))) are known too. Monte-Carlo estimates must
hold the exact value inside their 99.9% Wilson interval; the grid integral
must match it up to the mass outside the window.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from gnuradio.e2e import cli
from gnuradio.e2e.core import checkpoint, config, models, qam_reference, regions, theory

GR_E2E = shutil.which("gr_e2e")


def nearest_point(y, points):
    """Brute force: index of the nearest point for every y (complex [B] -> int64 [B])."""
    return np.argmin(np.abs(y[:, None] - points[None, :]), axis=1)


def antipodal_link(threshold):
    """M = 2 on +1 (message 0) and -1 (message 1); the receiver decides 1 below Re y = threshold."""
    points = np.array([1.0, -1.0], dtype=np.complex128)
    return regions.RegionLink("antipodal", points, lambda y: (np.asarray(y).real < threshold).astype(np.int64))


@torch.no_grad()
def ml_decoder(points, cfg):
    """A Decoder of cfg (decoder_hidden=(4,)) whose logits are exactly ML scores 2 Re(y c*) - |c|^2.

    The hidden ReLU layer passes y through as relu(y) - relu(-y).
    """
    _, dec = models.build(cfg, seed=0)
    first, last = dec.net[0], dec.net[-1]
    first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    first.bias.zero_()
    c = torch.from_numpy(np.stack([points.real, points.imag], axis=1).astype(np.float32))  # [M, 2]
    last.weight.copy_(torch.cat([2 * c, -2 * c], dim=1))
    last.bias.copy_(-(c ** 2).sum(dim=1))
    dec.eval()
    return dec


@pytest.fixture(scope="module")
def qam_ml_link(tmp_path_factory):
    """16-QAM with a neural decoder that IS the ML detector, saved as a link checkpoint trained 'at 10 dB'."""
    cfg = config.LinkConfig(**{**qam_reference.qam16_config().to_dict(), "decoder_hidden": (4,)})
    enc = qam_reference.qam16_encoder(cfg)
    dec = ml_decoder(enc.symbol_table()[:, 0], cfg)
    path = str(tmp_path_factory.mktemp("regions") / "qam_ml.safetensors")
    checkpoint.save_link(path, cfg, enc, dec, metadata={"ebn0_db": "10", "channel": "awgn"})
    return path


def test_voronoi_regions_are_nearest_point_decisions():
    rng = np.random.default_rng(5)
    points = rng.standard_normal(16) + 1j * rng.standard_normal(16)
    link = regions.RegionLink("random", points, lambda y: None)
    grid = regions.make_grid(3.0, 100)  # even: no cell centre on the axes, where QPSK ties
    y = grid.points()
    assert np.array_equal(link.ml_decide(y), nearest_point(y, points))
    # QPSK: the Voronoi regions are the four quadrants.
    qpsk = regions.RegionLink("qpsk", np.array([1 + 1j, -1 + 1j, -1 - 1j, 1 - 1j]) / np.sqrt(2), lambda y: None)
    quadrant = np.select([(y.real > 0) & (y.imag > 0), (y.real < 0) & (y.imag > 0), (y.real < 0) & (y.imag < 0)],
                         [0, 1, 2], 3)
    assert np.array_equal(qpsk.ml_decide(y), quadrant)


def test_qam_encoder_emits_gray_16qam():
    enc = qam_reference.qam16_encoder(qam_reference.qam16_config())
    table = enc.symbol_table()[:, 0]
    assert np.allclose(table, qam_reference.QAM16_POINTS, atol=1e-6)
    assert abs(np.mean(np.abs(table) ** 2) - 1.0) < 1e-6


def test_ml_decoder_never_disagrees_and_ser_matches_16qam_theory(qam_ml_link):
    link = regions.link_from_checkpoint(qam_ml_link)
    assert link.train_ebn0_db == 10.0 and link.train_channel == "awgn"
    grid = regions.make_grid(regions.default_half_width(link, [0.0]), 200)
    nn_map, ml_map = regions.decision_maps(link, grid)
    assert np.array_equal(nn_map, ml_map)
    (row,) = regions.measure(link, [6.0], grid, samples=200_000, seed=3, maps=(nn_map, ml_map))
    assert row["disagree"] == 0 and row["grid_disagree"] == 0.0
    assert row["p_disagree_ci"][1] < 2e-5
    assert row["nn_errors"] == row["ml_errors"]
    # Square 16-QAM: SER = 1 - (1 - p)^2, p = (3/2) Q(sqrt(Es/N0 / 5)), Es/N0 = 4 Eb/N0 (R = 4 bits per use).
    p = 1.5 * theory.qfunc(np.sqrt(4 * 10 ** 0.6 / 5))
    exact = 1 - (1 - p) ** 2
    lo, hi = theory.wilson_interval(row["ml_errors"], row["samples"], confidence=0.999)
    assert lo <= exact <= hi, (exact, lo, hi)


@pytest.mark.parametrize("ebn0_db", [0.0, 4.0])
def test_moved_threshold_disagrees_by_the_known_mass(ebn0_db):
    t = 0.5
    link = antipodal_link(t)
    s = regions.noise_sigma(ebn0_db, 2)
    assert s == pytest.approx(np.sqrt(1 / (2 * 10 ** (ebn0_db / 10))))  # R = 1: N0 = 1 / (Eb/N0)
    q = theory.qfunc
    exact = {"p_disagree": (q((1 - t) / s) - q((1 + t) / s)) / 2, "nn_ser": (q((1 - t) / s) + q((1 + t) / s)) / 2,
             "ml_ser": q(1 / s)}
    mc = regions.monte_carlo(link, ebn0_db, samples=200_000, seed=1, confidence=0.999)
    for key, value in exact.items():
        lo, hi = mc[key + "_ci"]
        assert lo <= value <= hi, (key, value, lo, hi)
    # Cell edges at multiples of 0.02 put both boundaries (0 and t) on edges: the grid integral is
    # exact but for the strip's mass outside the window.
    grid = regions.make_grid(4.0, 400)
    integral = regions.grid_integral(link, grid, *regions.decision_maps(link, grid), ebn0_db)
    assert exact["p_disagree"] - integral["outside"] - 1e-12 <= integral["disagree"] <= exact["p_disagree"] + 1e-12


def test_training_ebn0_and_relation():
    assert regions.training_ebn0({"ebn0_db": "10"}) == 10.0
    assert regions.training_ebn0({"ebn0_db": "[2.0, 8.0]"}) == (2.0, 8.0)
    assert regions.training_ebn0({"ebn0_db": "loud"}) is None and regions.training_ebn0({}) is None
    assert regions.training_relation(4.0, 10.0) == "6 dB below"
    assert regions.training_relation(12.0, (2.0, 8.0)) == "4 dB above"
    assert regions.training_relation(5.0, (2.0, 8.0)) == "in training range"
    assert regions.training_relation(10.0, 10.0) == "at training"
    assert regions.training_relation(3.0, None) == ""
    # The window reaches sigmas noise stds at the noisiest of the shown and the training Eb/N0.
    link = regions.RegionLink("pair", np.array([1.0, -1.0 + 0j]), None, train_ebn0_db=(-2.0, 8.0))
    assert regions.default_half_width(link, [4.0], sigmas=4) == pytest.approx(1 + 4 * regions.noise_sigma(-2, 2))


def test_cli_writes_the_figure_and_prints_the_table(qam_ml_link, tmp_path):
    assert GR_E2E, "gr_e2e is not on PATH (source setup_env.sh)"
    out = tmp_path / "regions.png"
    p = subprocess.run([GR_E2E, "plot", "regions", "--checkpoint", qam_ml_link, "--out", str(out), "--ebn0-db",
                        "0,10,14", "--grid", "120", "--samples", "20000"], capture_output=True, text=True,
                       env=dict(os.environ, MPLBACKEND="Agg"), timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = p.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Eb/N0 dB"))
    assert "P(NN!=ML)" in lines[header] and "NN SER" in lines[header] and "ML SER" in lines[header]
    rows = [re.match(r"(\S+)\s+(at training|\S+ dB below|\S+ dB above)\s+(\S+) \[", line)
            for line in lines[header + 1:header + 4]]
    assert [(r[1], r[2]) for r in rows] == [("0", "10 dB below"), ("10", "at training"), ("14", "4 dB above")]
    assert [r[3] for r in rows] == ["0", "0", "0"]  # P(NN != ML) of a decoder that is the ML detector


def test_qam16_reference_trains_a_receiver_and_saves_a_link(tmp_path, capsys):
    out, ckpt = tmp_path / "qam.png", tmp_path / "qam.safetensors"
    assert cli.main(["plot", "regions", "--constellation", "qam16", "--train-steps", "150", "--out", str(out),
                     "--grid", "64", "--samples", "20000", "--save-checkpoint", str(ckpt), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "receiver trained at 10 dB on awgn" in text and "Eb/N0 dB" in text
    cfg, enc, _ = checkpoint.load_link(str(ckpt))
    assert (cfg.M, cfg.n, cfg.mode) == (16, 1, "complex")
    assert np.allclose(enc.symbol_table()[:, 0], qam_reference.QAM16_POINTS, atol=1e-6)  # frozen while training
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Checkpoints the regions refuse: n = 2 complex, n = 1 real, a receiver-only file."""
    folder = tmp_path_factory.mktemp("refused")
    paths = {}
    for name, cfg, kind in (("n2", config.LinkConfig(M=16, n=2), "autoencoder"),
                            ("real", config.LinkConfig(M=4, n=1, mode="real"), "autoencoder"),
                            ("receiver", config.LinkConfig(M=16, n=1), "receiver")):
        enc, dec = models.build(cfg, seed=0)
        nets = {"encoder": enc, "decoder": dec} if kind == "autoencoder" else {"decoder": dec}
        paths[name] = str(folder / f"{name}.safetensors")
        checkpoint.save(paths[name], kind, cfg, nets)
    return paths


def error_of(args, capsys):
    """Run gr_e2e in process; the 'gr_e2e...: error:' line of a refused command."""
    try:
        code = cli.main(args)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gr_e2e") and ": error: " in line]
    assert lines
    return lines[-1]


def test_refusals_name_the_checkpoint_and_the_reason(refused, capsys, tmp_path):
    out = str(tmp_path / "x.png")
    line = error_of(["plot", "regions", "--checkpoint", refused["n2"], "--out", out], capsys)
    assert refused["n2"] in line and "n=2" in line and "n = 1 complex" in line
    line = error_of(["plot", "regions", "--checkpoint", refused["real"], "--out", out], capsys)
    assert refused["real"] in line and "real-mode" in line
    line = error_of(["plot", "regions", "--checkpoint", refused["receiver"], "--out", out], capsys)
    assert refused["receiver"] in line and "receiver checkpoint" in line
    line = error_of(["plot", "regions", "--checkpoint", str(tmp_path / "none.safetensors"), "--out", out], capsys)
    assert "none.safetensors" in line and "no such file" in line
    assert not os.path.exists(out)


@pytest.mark.parametrize("extra, option", [
    (["--grid", "3"], "--grid"), (["--grid", "2.5"], "--grid"), (["--samples", "0"], "--samples"),
    (["--window", "-1"], "--window"), (["--window-sigmas", "0"], "--window-sigmas"), (["--seed", "-1"], "--seed"),
    (["--ebn0-db", "a,b"], "--ebn0-db"), (["--ebn0-db", "8:0:1"], "--ebn0-db"), (["--threads", "0"], "--threads"),
    (["--grid", "many"], "--grid"), (["--train-ebn0-db", "10"], "--train-ebn0-db"),
    (["--constellation", "qam16"], "--constellation"),
])
def test_bad_options_name_the_option(qam_ml_link, capsys, tmp_path, extra, option):
    line = error_of(["plot", "regions", "--checkpoint", qam_ml_link, "--out", str(tmp_path / "x.png"), *extra],
                    capsys)
    assert option in line, line


@pytest.mark.parametrize("extra, option", [
    (["--train-ebn0-db", "8:2"], "--train-ebn0-db"), (["--train-steps", "0"], "--train-steps"),
    (["--decoder-hidden", "a"], "--decoder-hidden"), (["--out", "x.txt"], "--out"),
    (["--save-checkpoint", "/no/such/folder/q.safetensors"], "--save-checkpoint"),
])
def test_bad_qam16_options_are_refused_before_training(capsys, tmp_path, extra, option):
    args = ["plot", "regions", "--constellation", "qam16", "--out", str(tmp_path / "q.png"), "--quiet", *extra]
    line = error_of(args, capsys)
    assert option in line, line
