"""gr_e2e train --method mpa-tandem | mpa-plain and gr_e2e adapt-eval, run in process."""
import json

import pytest

from gnuradio.e2e.core import precoder

from cli_in_process import error_line, main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(mpa folder, plain folder, retrained deep_fade folder), each from 60 steps of training."""
    root = tmp_path_factory.mktemp("cli_mpa")
    for method, family, name in (("mpa-tandem", "train", "mpa"), ("mpa-plain", "train", "plain"),
                                 ("mpa-plain", "deep_fade", "deep")):
        from gnuradio.e2e import cli
        assert cli.main(["train", "--method", method, "--family", family, "--steps", "60", "--quiet",
                         "--out", str(root / name)]) == 0
    return root


def test_train_writes_a_precoder_checkpoint_loss_plot_and_report(trained):
    for name, architecture, family in (("mpa", "mpa", "train"), ("deep", "plain", "deep_fade")):
        cfg, _, _ = precoder.load_precoder(trained / name / "checkpoint.safetensors")
        assert (cfg.architecture, cfg.train_family, cfg.M, cfg.N, cfg.ebn0_db) == (architecture, family, 16, 8, 7.0)
        report = json.loads((trained / name / "train.json").read_text())
        assert report["rounds"] == 12 and len(report["history"]) == 12
        assert (trained / name / "loss.png").stat().st_size > 0


def test_adapt_eval_scores_every_method_and_writes_figures(trained, tmp_path, capsys):
    rc, out, _ = main(["adapt-eval", "--precoder", trained / "mpa" / "checkpoint.safetensors",
                       "--plain", trained / "plain" / "checkpoint.safetensors",
                       "--retrained", f"deep_fade={trained / 'deep' / 'checkpoint.safetensors'}",
                       "--families", "deep_fade", "--ebn0-db", "4,8", "--channels", 20, "--block", 5,
                       "--classical", "selection", "--quiet", "--out", tmp_path], capsys)
    assert rc == 0, out
    report = json.loads((tmp_path / "adaptation.json").read_text())
    rows = report["summary"]["deep_fade"]
    assert list(rows) == ["frozen", "alpha0", "mpa", "gradient", "classical:selection", "retrained"]
    assert rows["frozen"]["gap_closed_bler"] in (0.0, None) and "deep_fade:" in out
    assert all(len(c) == 2 for c in report["curves"]["deep_fade"].values())
    assert (tmp_path / "bler.png").stat().st_size > 0 and (tmp_path / "gap.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--at-ebn0-db", 5], "--at-ebn0-db 5 is not on the --ebn0-db grid"),
    (["--retrained", "deep_fade"], "--retrained must be FAMILY=PATH"),
    (["--families", "urban"], "--families: 'urban'"),
    (["--classical", "dirty-paper"], "--classical: 'dirty-paper'"),
    (["--plain", "PRECODER"], "--plain .* is a 'mpa' precoder"),
])
def test_adapt_eval_refuses_bad_arguments_by_name(trained, tmp_path, capsys, args, message):
    mpa_path = str(trained / "mpa" / "checkpoint.safetensors")
    args = [mpa_path if a == "PRECODER" else a for a in args]
    rc, _, err = main(["adapt-eval", "--precoder", mpa_path, "--ebn0-db", "4,8", "--out", tmp_path] + args, capsys)
    assert rc != 0
    assert __import__("re").search(message, error_line(err))


def test_adapt_eval_refuses_a_link_checkpoint(tiny_link, tmp_path, capsys):
    rc, _, err = main(["adapt-eval", "--precoder", tiny_link.path, "--out", tmp_path], capsys)
    assert rc != 0 and "expected precoder" in error_line(err)


@pytest.mark.parametrize("args, message", [
    (["--ebn0-db", "3:8"], "trains at one Eb/N0"),
    (["--mode", "real"], "complex-mode links"),
    (["--mpa-damping", "0"], "--mpa-damping"),
    (["--subchannels", "0"], "--subchannels"),
])
def test_train_refuses_bad_arguments_by_name(tmp_path, capsys, args, message):
    rc, _, err = main(["train", "--method", "mpa-tandem", "--steps", 5, "--quiet", "--out", tmp_path] + args, capsys)
    assert rc != 0 and message in error_line(err)
