"""Channel datasets: the file format round trip, every damaged file refused naming it, simulation, split."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gnuradio.e2e.core import channel_dataset as cd
from gnuradio.e2e.core import channels, checkpoint, config, models, prng, snr
from gnuradio.e2e.core.channel_dataset import ChannelDataset, DatasetError

N_ROWS, N = 300, 7


@pytest.fixture(scope="module")
def encoder():
    enc, _ = models.build(config.LinkConfig(M=16, n=N), seed=3)
    return enc.eval()


@pytest.fixture(scope="module")
def dataset(encoder):
    return cd.simulate_dataset("pa", N, 3.0, N_ROWS, encoder=encoder, seed=5, batch_size=128)


@pytest.fixture
def saved(tmp_path, dataset):
    return cd.save_dataset(tmp_path / "pairs.safetensors", dataset)


def test_round_trip_keeps_everything(saved, dataset):
    back = cd.load_dataset(saved, expect={"n": N, "M": 16})
    for name in ("x", "y", "messages", "batch_index"):
        assert torch.equal(getattr(back, name), getattr(dataset, name)), name
    assert back.metadata() == dataset.metadata()
    assert back.x.dtype == torch.complex64 and back.messages.dtype == torch.int64


def test_file_layout_is_the_documented_one(saved, dataset):
    data = open(saved, "rb").read()
    tensors = st_load(data)
    assert sorted(tensors) == ["batch_index", "messages", "x", "y"]
    assert tensors["x"].dtype == torch.float32 and list(tensors["x"].shape) == [N_ROWS, 2 * N]
    # Real layout: all real parts, then all imaginary parts.
    torch.testing.assert_close(tensors["x"][:, :N], dataset.x.real)
    torch.testing.assert_close(tensors["y"][:, N:], dataset.y.imag)
    meta = json.loads(checkpoint.read_metadata(saved)[cd.METADATA_KEY])
    assert set(meta) == set(cd.METADATA_FIELDS)
    assert meta["format_version"] == 1 and meta["source"] == "simulation: pa" and meta["seed"] == 5
    assert meta["batch_size"] == 128 and meta["ebn0_db"] == 3.0 and meta["sample_rate"] == 0.0


def test_optional_tensors_may_be_absent(tmp_path):
    ds = ChannelDataset(x=np.ones((3, 2), np.complex64), y=np.zeros((3, 2), np.complex64), M=4, n=2,
                        source="flowgraph test")
    back = cd.load_dataset(cd.save_dataset(tmp_path / "d.safetensors", ds))
    assert back.messages is None and back.batch_index is None and back.seed is None
    assert sorted(st_load(open(tmp_path / "d.safetensors", "rb").read())) == ["x", "y"]


def _rewrite(src, dst, tensors=None, meta=None, drop=()):
    """dst: src's file with tensors replaced, metadata fields replaced or dropped."""
    data = open(src, "rb").read()
    t = st_load(data)
    t.update(tensors or {})
    m = json.loads(checkpoint.read_metadata(src)[cd.METADATA_KEY])
    m.update(meta or {})
    for k in drop:
        m.pop(k)
    open(dst, "wb").write(st_save(t, metadata={cd.METADATA_KEY: json.dumps(m)}))
    return str(dst)


def test_damaged_files_are_refused_naming_the_file(tmp_path, saved, dataset):
    good = open(saved, "rb").read()
    cases = {}
    p = tmp_path / "truncated.safetensors"
    p.write_bytes(good[: len(good) // 2])
    cases[str(p)] = "truncated"
    p = tmp_path / "text.safetensors"
    p.write_bytes(b"not a dataset at all\n" * 8)
    cases[str(p)] = "not a safetensors file"
    p = tmp_path / "pickle.pt"
    torch.save({"x": torch.zeros(2, 2)}, p)
    cases[str(p)] = "pickled"
    cases[str(tmp_path / "missing.safetensors")] = "no such file"
    nan_y = dataset.y_real.clone()
    nan_y[3, 1] = float("nan")
    cases[_rewrite(saved, tmp_path / "nan.safetensors", {"y": nan_y})] = "y holds NaN"
    cases[_rewrite(saved, tmp_path / "shape.safetensors", {"y": dataset.y_real[:, :10].contiguous()})] = \
        r"y has shape \[300, 10\], expected \[N, 14\]"
    cases[_rewrite(saved, tmp_path / "rows.safetensors", {"y": dataset.y_real[:10].contiguous()})] = \
        "y has 10 rows, x has 300"
    cases[_rewrite(saved, tmp_path / "dtype.safetensors", {"x": dataset.x_real.double()})] = "x has dtype torch.float64"
    cases[_rewrite(saved, tmp_path / "msg.safetensors", {"messages": dataset.messages[:5].clone()})] = \
        r"messages must have shape \[300\]"
    cases[_rewrite(saved, tmp_path / "range.safetensors", {"messages": dataset.messages + 16})] = \
        r"messages must lie in \[0, 16\)"
    empty = {"x": torch.zeros(0, 2 * N), "y": torch.zeros(0, 2 * N)}
    cases[_rewrite(saved, tmp_path / "empty.safetensors", empty)] = "no rows"
    cases[_rewrite(saved, tmp_path / "lacks.safetensors", drop=("created",))] = r"lacking \['created'\]"
    cases[_rewrite(saved, tmp_path / "unknown.safetensors", meta={"colour": "red"})] = \
        r"unknown metadata fields \['colour'\]"
    cases[_rewrite(saved, tmp_path / "version.safetensors", meta={"format_version": 9})] = "format_version 9"
    cases[_rewrite(saved, tmp_path / "n.safetensors", meta={"n": 6})] = r"x has shape \[300, 14\], expected \[N, 12\]"
    cases[_rewrite(saved, tmp_path / "mode.safetensors", meta={"mode": "iq"})] = "mode must be one of"
    t = st_load(good)
    (tmp_path / "nometa.safetensors").write_bytes(st_save(t))
    cases[str(tmp_path / "nometa.safetensors")] = "no 'gr_e2e_channel_dataset' metadata"
    (tmp_path / "badjson.safetensors").write_bytes(st_save(t, metadata={cd.METADATA_KEY: "{oops"}))
    cases[str(tmp_path / "badjson.safetensors")] = "not valid JSON"
    enc, dec = models.build(config.LinkConfig(M=16, n=N), seed=0)
    cases[checkpoint.save_link(tmp_path / "link.safetensors", config.LinkConfig(M=16, n=N), enc, dec)] = \
        "is a gr-e2e checkpoint"
    for path, reason in cases.items():
        with pytest.raises(DatasetError, match=reason) as e:
            cd.load_dataset(path)
        assert str(e.value).startswith(f"{path}: "), str(e.value)
        assert isinstance(e.value, ValueError)


def test_expect_mismatch_names_both_values(saved):
    with pytest.raises(DatasetError, match=r"has n=7 but n=4 was expected"):
        cd.load_dataset(saved, expect={"n": 4})
    with pytest.raises(ValueError, match="not a channel dataset field"):
        cd.load_dataset(saved, expect={"width": 4})


@pytest.mark.parametrize("kwargs, match", [
    (dict(y=np.ones((4, 3), np.complex64)), "y has 3 symbols per row, n is 2"),
    (dict(x=np.ones((4, 2), np.float32)), "x must be complex"),
    (dict(x=np.full((4, 2), np.nan, np.complex64)), "x holds NaN"),
    (dict(messages=np.array([0, 1, 2, 4])), r"messages must lie in \[0, 4\)"),
    (dict(messages=np.array([0.0, 1, 2, 3])), "messages must hold integers"),
    (dict(batch_index=np.array([0, -1, 0, 0])), "batch_index holds negative"),
    (dict(M=1), "M must"), (dict(mode="iq"), "mode must"), (dict(sample_rate=-1.0), "sample_rate must"),
    (dict(batch_size=0), "batch_size must"), (dict(seed=-2), "seed must"),
])
def test_construction_refuses_bad_fields(kwargs, match):
    args = dict(x=np.ones((4, 2), np.complex64), y=np.ones((4, 2), np.complex64), M=4, n=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ChannelDataset(**args)


def test_simulation_with_an_encoder_records_what_training_would_send(dataset, encoder):
    assert len(dataset) == N_ROWS and dataset.batch_size == 128
    assert dataset.batch_index.tolist() == [i // 128 for i in range(N_ROWS)]
    for b in range(3):
        rows = dataset.batch_index == b
        expected = prng.batch_messages(5, b, 128, 16)[: int(rows.sum())]
        assert dataset.messages[rows].tolist() == expected.tolist()
    with torch.no_grad():
        torch.testing.assert_close(dataset.x, models.real_to_complex(encoder(dataset.messages)))
    # y is the 'pa' channel of x at the dataset's N0, reproducible from the seed.
    again = cd.simulate_dataset("pa", N, 3.0, N_ROWS, encoder=encoder, seed=5, batch_size=128)
    assert torch.equal(again.y, dataset.y)
    assert not torch.equal(cd.simulate_dataset("pa", N, 3.0, N_ROWS, encoder=encoder, seed=6, batch_size=128).y,
                           dataset.y)


def test_simulation_without_an_encoder_draws_unit_energy_gaussian_symbols():
    ds = cd.simulate_dataset(channels.AWGN(), N, 3.0, 4000, seed=1)
    assert ds.messages is None and ds.batch_index is None and ds.M == 16 and ds.source == "simulation: AWGN"
    values = 4000 * N
    energy = float(ds.x.abs().pow(2).mean())
    # Es = 1: the sample mean of |x|^2 (Exp(1), sd 1) within 5 standard errors.
    assert abs(energy - 1.0) < 5 / values ** 0.5
    noise = torch.view_as_real(ds.y - ds.x).double()
    half_n0 = snr.n0_from_ebn0_db(3.0, 16, N) / 2
    # Per-real-dimension variance N0/2 within 5 standard errors (sd of a sample variance: s^2 sqrt(2/k)).
    assert abs(float(noise.pow(2).mean()) / half_n0 - 1) < 5 * (2 / (2 * values)) ** 0.5


def test_simulation_refuses_mismatched_sizes(encoder):
    with pytest.raises(ValueError, match="the encoder has M=16, n=7"):
        cd.simulate_dataset("awgn", 5, 3.0, 10, encoder=encoder)
    with pytest.raises(ValueError, match="count must"):
        cd.simulate_dataset("awgn", N, 3.0, 0)
    with pytest.raises(ValueError, match="channel must be one of"):
        cd.simulate_dataset("cable", N, 3.0, 10)


def test_split_is_disjoint_reproducible_and_complete(dataset):
    train, held = cd.split(dataset, 0.25, seed=2)
    assert (len(train), len(held)) == (225, 75)
    rows = torch.cat([train.x, held.x])
    assert sorted(map(tuple, rows.view(torch.float64).tolist())) == \
        sorted(map(tuple, dataset.x.view(torch.float64).tolist()))
    train2, held2 = cd.split(dataset, 0.25, seed=2)
    assert torch.equal(held.y, held2.y) and torch.equal(held.messages, held2.messages)
    assert not torch.equal(cd.split(dataset, 0.25, seed=3)[1].y, held.y)
    assert held.metadata() == dataset.metadata()
    with pytest.raises(ValueError, match="fraction must"):
        cd.split(dataset, 1.0)
