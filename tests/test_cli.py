"""The gr_e2e command, run as a user runs it: a subprocess found on PATH.

Every bad input must end with a non-zero exit status and a
'gr_e2e: error: ...' line (argparse's own errors read 'gr_e2e <command>:
error: ...') that names the problem, and never with a Python traceback.
"""
import json
import os
import pickle
import shutil
import subprocess

import pytest

from gnuradio.e2e.core import checkpoint, config, theory

GR_E2E = shutil.which("gr_e2e")
TIMEOUT = 120


def run(*args, check=None):
    """Run gr_e2e; check=True/False asserts success/failure (None: no check)."""
    assert GR_E2E, "gr_e2e is not on PATH (source setup_env.sh)"
    env = dict(os.environ, MPLBACKEND="Agg")
    p = subprocess.run([GR_E2E, *map(str, args)], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert "Traceback" not in p.stderr, p.stderr
    if check is True:
        assert p.returncode == 0, p.stderr
    elif check is False:
        assert p.returncode != 0, p.stdout
    return p


def error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("gr_e2e") and ": error: " in l]
    assert lines, f"no 'gr_e2e: error:' line in stderr:\n{p.stderr}"
    return lines[-1]


def test_found_on_path():
    assert GR_E2E is not None, "gr_e2e is not on PATH (source setup_env.sh)"


@pytest.mark.parametrize("args", [[], ["train"], ["eval"], ["merge"], ["export-table"]])
@pytest.mark.slow
def test_help(args):
    p = run(*args, "--help", check=True)
    assert p.stdout.startswith("usage: gr_e2e")
    if not args:
        for cmd in ("train", "eval", "merge", "export-table"):
            assert cmd in p.stdout


@pytest.mark.slow
def test_no_command_is_an_error():
    p = run(check=False)
    assert "gr_e2e: error:" in p.stderr


# --- a tiny end-to-end run ---------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A small link trained by gr_e2e train (in-process: the subprocess tests check the command itself)."""
    from gnuradio.e2e import cli
    out = tmp_path_factory.mktemp("train")
    assert cli.main(["train", "--steps", "200", "--M", "16", "--n", "7", "--ebn0-db", "2:8", "--quiet",
                     "--out", str(out)]) == 0
    return out


def test_train_writes_outputs(trained_dir):
    for name in ("checkpoint.safetensors", "loss.png", "constellation.png", "train.json"):
        assert (trained_dir / name).stat().st_size > 0, name
    for png in ("loss.png", "constellation.png"):
        assert (trained_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((trained_dir / "train.json").read_text())
    assert summary["config"]["M"] == 16 and summary["config"]["n"] == 7
    assert summary["ebn0_db"] == [2.0, 8.0]
    assert len(summary["restarts"]) == 1 and summary["chosen_restart"] == 0
    assert summary["history"]["step"][-1] == 200
    cfg, enc, dec = checkpoint.load_link(trained_dir / "checkpoint.safetensors")
    assert cfg == config.LinkConfig(M=16, n=7)
    meta = checkpoint.read_metadata(trained_dir / "checkpoint.safetensors")
    assert meta["steps"] == "200" and json.loads(meta["ebn0_db"]) == [2.0, 8.0]


@pytest.mark.slow
def test_eval(trained_dir, tmp_path):
    ckpt = trained_dir / "checkpoint.safetensors"
    p = run("eval", "--checkpoint", ckpt, "--ebn0-db", "2,6", "--max-blocks", 20000, "--quiet",
            "--out", tmp_path, check=True)
    data = json.loads((tmp_path / "bler.json").read_text())
    assert (tmp_path / "bler.png").read_bytes()[:4] == b"\x89PNG"
    curves = data["curves"]
    assert "learned, neural decoder" in curves and "learned, ML detection" in curves
    baselines = [k for k in curves if not k.startswith("learned")]
    assert any("Hamming" in k for k in baselines) and any("uncoded" in k for k in baselines)
    for name, points in curves.items():
        assert [pt["ebn0_db"] for pt in points] == [2.0, 6.0], name
        for pt in points:
            assert 0 < pt["blocks"] <= 20000 and 0 <= pt["bler"] <= 1
            lo, hi = pt["bler_ci95"]
            assert lo <= pt["bler"] <= hi
        # more noise, more errors: the 99.9% Wilson intervals of 2 dB and 6 dB do not overlap
        lo2 = theory.wilson_interval(points[0]["block_errors"], points[0]["blocks"], 0.999)[0]
        hi6 = theory.wilson_interval(points[1]["block_errors"], points[1]["blocks"], 0.999)[1]
        assert hi6 < lo2, name
    assert data["max_blocks"] == 20000 and data["config"]["M"] == 16
    assert "neural decoder vs ML on its constellation" in data["gaps_db"]
    # the printed table has a row per curve
    for name in curves:
        assert name in p.stdout


@pytest.mark.slow
def test_eval_baselines_option(trained_dir, tmp_path):
    ckpt = trained_dir / "checkpoint.safetensors"
    run("eval", "--checkpoint", ckpt, "--ebn0-db", "4", "--max-blocks", 2000, "--quiet",
        "--baselines", "uncoded-bpsk,hamming-hard", "--out", tmp_path, check=True)
    curves = json.loads((tmp_path / "bler.json").read_text())["curves"]
    assert len(curves) == 4 and sum(not k.startswith("learned") for k in curves) == 2


@pytest.mark.slow
def test_export_table(trained_dir, tmp_path):
    ckpt = trained_dir / "checkpoint.safetensors"
    p = run("export-table", "--checkpoint", ckpt, check=True)
    rows = [l for l in p.stdout.splitlines() if l.startswith("[")]
    assert len(rows) == 1
    assert rows[0].count("complex(") == 16 * 7
    values = eval(rows[0], {"complex": complex})  # noqa: S307 - our own output, checked above
    _, enc = checkpoint.load_network(ckpt, "encoder")
    table = enc.symbol_table().reshape(-1)
    assert len(values) == 112
    assert max(abs(a - b) for a, b in zip(values, table)) < 1e-5
    out = tmp_path / "table.json"
    run("export-table", "--checkpoint", ckpt, "--out", out, check=True)
    d = json.loads(out.read_text())
    assert (d["M"], d["n"], len(d["symbol_table"])) == (16, 7, 112)


# --- bad inputs ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pickle_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "weights.safetensors"
    path.write_bytes(pickle.dumps({"encoder": [1.0, 2.0]}))
    return path


@pytest.mark.slow
def test_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.safetensors"
    for args in (["eval", "--checkpoint", missing, "--out", tmp_path], ["export-table", "--checkpoint", missing]):
        line = error_line(run(*args, check=False))
        assert str(missing) in line and "no such file" in line


@pytest.mark.slow
def test_pickle_checkpoint(pickle_file, tmp_path):
    for args in (["eval", "--checkpoint", pickle_file, "--out", tmp_path],
                 ["export-table", "--checkpoint", pickle_file]):
        line = error_line(run(*args, check=False))
        assert str(pickle_file) in line and "pickle" in line


@pytest.mark.parametrize("args, words", [
    (["eval", "--ebn0-db", "abc"], ["--ebn0-db", "'abc'"]),
    (["eval", "--baselines", "nope"], ["--baselines", "nope"]),
    (["export-table", "--out", "{tmp}/no/such/dir/table.json"], ["no/such/dir"]),
])
@pytest.mark.slow
def test_eval_bad_inputs(trained_dir, tmp_path, args, words):
    ckpt = trained_dir / "checkpoint.safetensors"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    extra = ["--out", tmp_path / "e"] if args[0] == "eval" else []
    line = error_line(run(args[0], "--checkpoint", ckpt, *args[1:], *extra, check=False))
    for w in words:
        assert w in line, line


@pytest.mark.parametrize("args, words", [
    (["--decoder-hidden", "x"], ["--decoder-hidden", "'x'"]),
    (["--steps", "inf"], ["--steps", "inf"]),
    (["--out", "{file}"], ["{file}"]),  # --out names an existing file, not a folder
])
@pytest.mark.slow
def test_train_bad_inputs(tmp_path, args, words):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    args = [a.replace("{file}", str(blocker)) for a in args]
    words = [w.replace("{file}", str(blocker)) for w in words]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    line = error_line(run("train", "--steps", 1, "--quiet", *args, check=False))
    for w in words:
        assert w in line, line


# --- more bad inputs, in-process (cli.main) to save a second of start-up per case ------------

def main_in_process(args, capsys):
    """Run cli.main; an exception escaping it fails the test like a traceback would."""
    from gnuradio.e2e import cli
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse errors
        rc = e.code
    captured = capsys.readouterr()
    return rc, captured.err


@pytest.mark.parametrize("args, words", [
    (["eval", "--ebn0-db", "5:1:1"], ["--ebn0-db"]),
    (["eval", "--ebn0-db", "0:4:0"], ["--ebn0-db"]),
    (["eval", "--ebn0-db", "nan"], ["--ebn0-db"]),
    (["eval", "--baselines", "hamming-soft,bogus"], ["--baselines", "bogus"]),
    (["eval", "--max-blocks", "abc"], ["--max-blocks", "abc"]),
    (["eval", "--max-blocks", "inf"], ["--max-blocks", "inf"]),
    (["eval", "--min-errors", "0"], ["--min-errors"]),
    (["eval", "--seed", "-1"], ["--seed"]),
    (["eval", "--out", "{file}"], ["{file}"]),
    (["export-table", "--out", "{tmp}/no/such/dir/table.npy"], ["no/such/dir"]),
    (["train", "--encoder-hidden", "16,-2"], ["--encoder-hidden"]),
    (["train", "--ebn0-db", "abc"], ["--ebn0-db", "'abc'"]),
    (["train", "--ebn0-db", "8:3"], ["--ebn0-db"]),
    (["train", "--M", "1"], ["M must"]),
    (["train", "--M", "abc"], ["--M", "abc"]),
    (["train", "--n", "-7"], ["--n"]),
    (["train", "--steps", "0"], ["--steps"]),
    (["train", "--steps", "2.5"], ["--steps"]),
    (["train", "--batch-size=-inf"], ["--batch-size", "-inf"]),
    (["train", "--lr", "-1"], ["lr"]),
    (["train", "--lr", "abc"], ["--lr"]),
    (["train", "--lr-schedule", "linear"], ["--lr-schedule"]),
    (["train", "--mode", "quaternion"], ["--mode"]),
    (["train", "--seed", "-1"], ["--seed"]),
    (["train", "--decoder-finetune-steps", "-3"], ["--decoder-finetune-steps"]),
    (["train", "--method", "model-free", "--sigma2", "1.5"], ["sigma2"]),
    (["train", "--method", "model-free", "--restarts", "2"], ["--restarts"]),
    (["train", "--method", "model-free", "--feedback-loss-prob", "2"], ["feedback_loss_prob"]),
    (["train", "--method", "model-free", "--feedback-bits", "30"], ["feedback_bits"]),
    (["train", "--channel", "phase", "--mode", "real"], ["--channel phase", "--mode complex"]),
    (["merge", "--transmitter", "{tmp}/none.safetensors", "--receiver", "{tmp}/none.safetensors",
      "--out", "{tmp}/l.safetensors"], ["none.safetensors", "no such file"]),
    (["merge", "--transmitter", "{ckpt}", "--receiver", "{ckpt}", "--out", "{tmp}/no/dir/l.safetensors"],
     ["--out", "does not exist"]),
    (["train", "--method", "model-free", "--rx-batches", "0", "--tx-batches", "0"], ["rx_batches"]),
])
def test_bad_inputs_in_process(trained_dir, tmp_path, capsys, args, words):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    sub = {"{tmp}": str(tmp_path), "{file}": str(blocker), "{ckpt}": str(trained_dir / "checkpoint.safetensors")}
    for k, v in sub.items():
        args = [a.replace(k, v) for a in args]
        words = [w.replace(k, v) for w in words]
    cmd, rest = args[0], args[1:]
    if cmd == "train":
        full = ["train", "--steps", 1, "--batch-size", 10, "--quiet", "--out", tmp_path / "out", *rest]
    elif cmd == "merge":
        full = args
    else:
        full = [cmd, "--checkpoint", trained_dir / "checkpoint.safetensors", *rest]
        if cmd == "eval":
            full = ["eval", "--out", tmp_path / "e", "--quiet", "--max-blocks", 10, *full[1:]]
    rc, err = main_in_process(full, capsys)
    assert rc not in (0, None), err
    lines = [l for l in err.splitlines() if l.startswith("gr_e2e") and ": error: " in l]
    assert lines, err
    for w in words:
        assert w in lines[-1], lines[-1]


@pytest.mark.slow
def test_train_model_free_writes_outputs(tmp_path):
    out = tmp_path / "mf"
    p = run("train", "--method", "model-free", "--M", 16, "--n", 7, "--ebn0-db", 4, "--steps", 400,
            "--batch-size", 200, "--lr", 5e-3, "--lr-schedule", "constant", "--feedback-snr-db", 10, "--feedback-bits", 4,
            "--quiet", "--out", out, check=True)
    assert "model-free" in p.stdout
    for name in ("checkpoint.safetensors", "loss.png", "constellation.png", "train.json"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "train.json").read_text())
    losses = summary["history"]["loss"]
    assert losses[-1] < 0.5 * losses[0]  # measured over seeds 0-2: 2.72 -> 0.39-0.45


def test_model_free_defaults_are_the_shared_recipe():
    """gr_e2e train --method model-free takes core.model_free.ModelFreeParams' defaults (the blocks' too)."""
    from gnuradio.e2e import cli
    from gnuradio.e2e.core import model_free
    args = cli.build_parser().parse_args(["train", "--method", "model-free", "--out", "x"])
    p = model_free.ModelFreeParams()
    assert (args.sigma2, args.rx_batches, args.tx_batches, args.baseline, args.batch_size) == \
        (p.sigma2, p.rx_batches, p.tx_batches, p.baseline, p.batch_size)
    assert args.lr is None and args.lr_schedule is None  # resolved per method: the recipe's own defaults


@pytest.mark.slow
def test_merge_makes_a_link_of_two_role_files(trained_dir, tmp_path):
    _, enc, dec = checkpoint.load_link(trained_dir / "checkpoint.safetensors")
    cfg = config.LinkConfig(M=16, n=7)
    tx = checkpoint.save(tmp_path / "tx.safetensors", "transmitter", cfg, {"encoder": enc}, {"transmitter_steps": 5})
    rx = checkpoint.save(tmp_path / "rx.safetensors", "receiver", cfg, {"decoder": dec})
    out = tmp_path / "link.safetensors"
    p = run("merge", "--transmitter", tx, "--receiver", rx, "--out", out, check=True)
    assert "(transmitter)" in p.stdout and "(receiver)" in p.stdout
    _, e2, _ = checkpoint.load_link(out)
    assert (e2.symbol_table() == enc.symbol_table()).all()
    assert checkpoint.read_metadata(out)["transmitter.transmitter_steps"] == "5"
    # The role files are not links: eval refuses them by name.
    line = error_line(run("eval", "--checkpoint", tx, "--out", tmp_path / "e", "--quiet", check=False))
    assert "is a transmitter checkpoint; expected autoencoder" in line


def test_init_writes_an_untrained_link_that_info_describes(tmp_path):
    out = tmp_path / "start.safetensors"
    p = run("init", "--M", 16, "--n", 7, "--decoder-hidden", "64", "--seed", 3, "--out", out, check=True)
    assert "untrained link" in p.stdout
    c = checkpoint.load(out)
    assert c.kind == "autoencoder" and (c.config.M, c.config.n, c.config.decoder_hidden) == (16, 7, (64,))
    _, enc, _ = checkpoint.load_link(out)
    from gnuradio.e2e.core import models
    fresh, _ = models.build(config.LinkConfig(M=16, n=7, decoder_hidden=(64,)), seed=3)
    assert (enc.symbol_table() == fresh.symbol_table()).all()  # the seed's initial weights, not trained ones
    info = run("info", out, "--json", check=True)
    summary = json.loads(info.stdout.splitlines()[-1])
    assert summary["kind"] == "autoencoder" and summary["config"]["decoder_hidden"] == [64]
    assert summary["parameters"]["decoder"] == 14 * 64 + 64 + 64 * 16 + 16  # 2n inputs -> 64 -> M
    assert summary["metadata"]["seed"] == "3" and "decoder: Decoder" in info.stdout
    # Not over an existing file without --force.
    assert "--force" in error_line(run("init", "--out", out, check=False))
    run("init", "--out", out, "--force", check=True)


def test_init_role_files_are_what_the_training_blocks_write(tmp_path):
    tx, rx = tmp_path / "tx.safetensors", tmp_path / "rx.safetensors"
    run("init", "--kind", "transmitter", "--n", 2, "--out", tx, check=True)
    run("init", "--kind", "receiver", "--n", 2, "--out", rx, check=True)
    assert checkpoint.load(tx).kind == "transmitter" and checkpoint.load(rx).kind == "receiver"
    run("merge", "--transmitter", tx, "--receiver", rx, "--out", tmp_path / "link.safetensors", check=True)
    assert "transmitter checkpoint" in run("info", tx, check=True).stdout


@pytest.mark.parametrize("args, words", [
    (["init", "--M", "0", "--out", "{tmp}/x.safetensors"], ["--M", "0"]),
    (["init", "--decoder-hidden", "a", "--out", "{tmp}/x.safetensors"], ["--decoder-hidden"]),
    (["init", "--mode", "real", "--receiver-frontend", "transformer", "--out", "{tmp}/x.safetensors"],
     ["transformer"]),
    (["init", "--out", "{tmp}/no/dir/x.safetensors"], ["no/dir"]),
    (["info", "{tmp}/none.safetensors"], ["none.safetensors", "no such file"]),
])
def test_init_and_info_bad_inputs(tmp_path, args, words):
    line = error_line(run(*[a.format(tmp=tmp_path) for a in args], check=False))
    for w in words:
        assert w in line, line


def test_eval_prints_its_table_without_writing_files(tmp_path):
    start = tmp_path / "start.safetensors"
    run("init", "--out", start, check=True)
    before = set(os.listdir(tmp_path))
    p = run("eval", "--checkpoint", start, "--ebn0-db", "4", "--max-blocks", 2000, "--quiet", check=True)
    assert "learned, neural decoder" in p.stdout and "wrote" not in p.stdout
    assert set(os.listdir(tmp_path)) == before


def test_progress_lines_in_a_log_and_quiet_silences_them(tmp_path):
    """Not a terminal (a pipe): one line per stage on stderr; --quiet: none. stdout keeps the results."""
    start = tmp_path / "start.safetensors"
    run("init", "--out", start, check=True)
    args = ("eval", "--checkpoint", start, "--ebn0-db", "2,4", "--max-blocks", 2000, "--baselines", "")
    logged = run(*args, check=True)
    stages = [line for line in logged.stderr.splitlines() if " pt in " in line]
    assert [line.split(":")[0] for line in stages] == ["learned, neural decoder", "learned, ML detection"]
    assert all(": 2/2 pt in " in line for line in stages), logged.stderr
    quiet = run(*args, "--quiet", check=True)
    assert quiet.stderr.strip() == "" and quiet.stdout == logged.stdout
