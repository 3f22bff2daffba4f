"""gr_e2e capture and gr_e2e train --method ra-gan | gan, run in process.

What they write is checked against core (a captured dataset is the one
simulate_dataset draws with the same seed; the files load as the kinds they
claim), and every bad argument ends with a 'gr_e2e: error:' line naming the
option or the file.
"""
import json

import numpy as np
import pytest
import torch

from gnuradio.e2e import cli, cli_channel
from gnuradio.e2e.core import channel_dataset, channel_gan, channel_gan_training, checkpoint, models, prng

from cli_in_process import error_line, main


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """200 pairs of the PA channel at 8 dB from i.i.d. inputs (n = 7), saved."""
    path = tmp_path_factory.mktemp("pairs") / "pa.safetensors"
    channel_dataset.save_dataset(path, channel_dataset.simulate_dataset("pa", 7, 8.0, 200, seed=4))
    return path


def test_capture_without_a_link_writes_iid_inputs(tmp_path, capsys):
    out = tmp_path / "pairs.safetensors"
    rc, stdout, err = main(["capture", "--channel", "pa", "--ebn0-db", 8, "--count", 300, "--seed", 3,
                            "--out", out], capsys)
    assert rc == 0, err
    assert "300 rows" in stdout and "i.i.d." in stdout
    ds = channel_dataset.load_dataset(out, expect={"n": 7, "M": 16})
    assert len(ds) == 300 and ds.messages is None and ds.batch_index is None
    assert (ds.source, ds.ebn0_db, ds.seed, ds.batch_size, ds.mode) == ("simulation: pa", 8.0, 3, None, "complex")
    # A pure function of the seed: the same draws as core's simulation.
    again = channel_dataset.simulate_dataset("pa", 7, 8.0, 300, seed=3)
    assert torch.equal(ds.x, again.x) and torch.equal(ds.y, again.y)
    rc, _, err = main(["capture", "--channel", "pa", "--ebn0-db", 8, "--count", 300, "--out", out], capsys)
    assert rc != 0 and "--force" in error_line(err)


def test_capture_with_a_link_records_its_training_batches(tiny_link, tmp_path, capsys):
    out = tmp_path / "link_pairs.safetensors"
    rc, stdout, err = main(["capture", "--channel", "awgn", "--ebn0-db", 5, "--count", 250, "--checkpoint",
                            tiny_link.path, "--batch-size", 100, "--seed", 2, "--out", out], capsys)
    assert rc == 0, err
    assert tiny_link.path in stdout
    ds = channel_dataset.load_dataset(out)
    assert (len(ds), ds.M, ds.n, ds.batch_size, ds.seed) == (250, 16, 7, 100, 2)
    assert ds.batch_index.tolist() == [0] * 100 + [1] * 100 + [2] * 50
    expected = np.concatenate([prng.batch_messages(2, b, 100, 16) for b in range(3)])[:250]
    np.testing.assert_array_equal(ds.messages.numpy(), expected)
    np.testing.assert_allclose(ds.x.numpy(), tiny_link.encoder.symbol_table()[expected], atol=1e-6)


def test_info_describes_a_dataset_and_a_channel_model(small_dataset, tmp_path, capsys):
    rc, stdout, err = main(["info", small_dataset, "--json"], capsys)
    assert rc == 0, err
    assert "channel dataset" in stdout and "rows: 200 pairs" in stdout and "metadata source: simulation: pa" in stdout
    assert json.loads(stdout.splitlines()[-1])["rows"] == 200
    cfg = channel_gan.ChannelModelConfig(n=7, generator="plain")
    g, d = channel_gan.build_channel_model(cfg, seed=0)
    channel_gan.save_channel_model(tmp_path / "cm.safetensors", cfg, g, d, metadata={"method": "gan"})
    rc, stdout, err = main(["info", tmp_path / "cm.safetensors"], capsys)
    assert rc == 0, err
    assert "channel_model checkpoint" in stdout and "generator=plain" in stdout
    assert "generator: ChannelGenerator" in stdout and "discriminator: ChannelDiscriminator" in stdout
    # Neither a checkpoint nor a dataset: the checkpoint's error stands.
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    rc, _, err = main(["info", tmp_path / "junk.safetensors"], capsys)
    assert rc != 0 and "junk.safetensors" in error_line(err)


@pytest.mark.parametrize("method, generator, l2", [("ra-gan", "residual", 0.01), ("gan", "plain", 0.0)])
def test_train_through_a_learned_channel_writes_everything(tmp_path, capsys, method, generator, l2):
    out = tmp_path / method
    extra = ["--batch-size", 32] if method == "gan" else []  # ra-gan: the default batch, 320
    rc, stdout, err = main(["train", "--method", method, "--channel", "pa", "--ebn0-db", 8, "--steps", 3,
                            "--fidelity-rows", 100, "--quiet", "--out", out, *extra], capsys)
    assert rc == 0, err
    for name in ("checkpoint.safetensors", "channel_model.safetensors", "loss.png", "constellation.png",
                 "train.json", "fidelity.json", "fidelity.png"):
        assert (out / name).stat().st_size > 0, name
    cfg, enc, dec = checkpoint.load_link(out / "checkpoint.safetensors", expect={"M": 16, "n": 7})
    fresh, _ = models.build(cfg, seed=0)
    assert not np.array_equal(enc.symbol_table(), fresh.symbol_table())  # the transmitter learned through G
    ccfg, g, _ = channel_gan.load_channel_model(out / "channel_model.safetensors", expect={"n": 7})
    assert (ccfg.generator, ccfg.discriminator, ccfg.ebn0_db) == (generator, "pair", 8.0)
    summary = json.loads((out / "train.json").read_text())
    assert summary["recipe"]["l2"] == l2 and summary["method"] == method
    assert summary["recipe"]["batch_size"] == (32 if method == "gan" else channel_gan_training.DEFAULT_BATCH)
    assert set(summary["history"]) == {"step", "d_loss", "g_loss", "receiver_loss", "transmitter_loss"}
    assert json.loads((out / "fidelity.json").read_text())["rows"] == 100


def test_batch_size_default_is_the_papers_for_these_methods_only():
    parser = cli.build_parser()
    assert cli_channel.DEFAULT_BATCH == channel_gan_training.DEFAULT_BATCH
    args = parser.parse_args(["train", "--method", "ra-gan", "--out", "x"])
    assert cli_channel._check_train_args(args)[0] == 320
    args = parser.parse_args(["train", "--method", "ra-gan", "--batch-size", "1000", "--out", "x"])
    assert cli_channel._check_train_args(args)[0] == 1000
    assert parser.parse_args(["train", "--out", "x"]).batch_size == 1000  # model-aware keeps its own


def test_train_on_a_dataset_fits_then_trains_through_the_model(small_dataset, tmp_path, capsys):
    out = tmp_path / "ds"
    rc, stdout, err = main(["train", "--method", "ra-gan", "--dataset", small_dataset, "--steps", 4,
                            "--fit-steps", 3, "--batch-size", 32, "--quiet", "--out", out], capsys)
    assert rc == 0, err
    assert "learned channel model" in stdout
    checkpoint.load_link(out / "checkpoint.safetensors", expect={"n": 7})
    ccfg, _, _ = channel_gan.load_channel_model(out / "channel_model.safetensors")
    assert ccfg.generator == "residual" and ccfg.ebn0_db == 8.0  # the dataset's Eb/N0
    summary = json.loads((out / "train.json").read_text())
    assert (summary["recipe"]["fitted_rows"], summary["recipe"]["fit_steps"]) == (160, 3)
    assert summary["channel_model_history"]["step"] == [3] and summary["history"]["step"] == [4]
    assert json.loads((out / "fidelity.json").read_text())["rows"] == 40  # the held-out 20%
    assert (out / "loss.png").stat().st_size > 0 and (out / "fidelity.png").stat().st_size > 0


@pytest.mark.parametrize("args, words", [
    (["capture", "--channel", "awgn", "--ebn0-db", "3", "--count", "0"], ["--count", "0"]),
    (["capture", "--channel", "awgn", "--ebn0-db", "inf", "--count", "10"], ["--ebn0-db"]),
    (["capture", "--channel", "awgn", "--ebn0-db", "3", "--count", "10", "--checkpoint", "{ckpt}", "--n", "4"],
     ["--n 4", "n=7"]),
    (["capture", "--channel", "awgn", "--ebn0-db", "3", "--count", "10", "--batch-size", "5"], ["--batch-size"]),
    (["train", "--method", "ra-gan", "--ebn0-db", "3:8"], ["--ebn0-db", "3:8"]),
    (["train", "--method", "gan", "--mode", "real"], ["--mode real"]),
    (["train", "--method", "ra-gan", "--dataset", "{tmp}/none.safetensors"], ["none.safetensors", "no such file"]),
    (["train", "--method", "ra-gan", "--dataset", "{dataset_n4}"], ["--dataset", "n=4", "--n 7"]),
    (["train", "--method", "ra-gan", "--l2", "-1"], ["--l2", "-1"]),
    (["train", "--method", "ra-gan", "--restarts", "2"], ["--restarts"]),
    (["train", "--method", "gan", "--start", "{ckpt}"], ["--start"]),
    (["train", "--method", "ra-gan", "--lr-schedule", "cosine"], ["--lr-schedule"]),
    (["train", "--method", "ra-gan", "--fit-steps", "5"], ["--fit-steps"]),
    (["train", "--method", "ra-gan", "--dataset", "{dataset_n4}", "--pretrain-steps", "5"], ["--pretrain-steps"]),
    (["train", "--method", "ra-gan", "--pretrain-steps", "-1"], ["--pretrain-steps"]),
])
def test_bad_arguments_name_the_option(tiny_link, tmp_path, capsys, args, words):
    n4 = tmp_path / "n4.safetensors"
    channel_dataset.save_dataset(n4, channel_dataset.simulate_dataset("awgn", 4, 3.0, 20))
    sub = {"{ckpt}": tiny_link.path, "{dataset_n4}": str(n4)}
    args = [sub.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    if args[0] == "train":
        args += ["--out", tmp_path / "out", "--quiet", "--steps", 1, "--batch-size", 10]
    else:
        args += ["--out", tmp_path / "pairs.safetensors"]
    rc, _, err = main(args, capsys)
    assert rc not in (0, None)
    line = error_line(err)
    for w in words:
        assert w in line, line
    assert not (tmp_path / "out").exists()  # refused before anything was written
