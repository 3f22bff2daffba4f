"""Channel datasets: observed (x, y) pairs a learned channel model is fitted to.

A dataset is what a channel did to what was sent: per message, the n
transmitted symbols x and the n received symbols y. It comes from a
simulation (simulate_dataset) or from a running flowgraph (the
channel_capture block), and a conditional GAN (core.channel_gan) learns
p(y | x) from it.

File format (version 1): one .safetensors file, never a pickle, written
atomically (checkpoint.write_atomic). Tensors:

  x             float32 [N, 2n]  transmitted symbols, real layout (all real
                                 parts, then all imaginary parts; DESIGN.md)
  y             float32 [N, 2n]  received symbols, same layout
  messages      int64 [N]        optional: the message of each row, in [0, M)
  batch_index   int64 [N]        optional: the training batch each row belongs to

and one metadata entry, METADATA_KEY, holding a JSON object with exactly:

  format_version  1
  M               int >= 2: messages of the link; with n it fixes the rate
                  R = log2(M)/n and so what an Eb/N0 means (N0 = 1/(R Eb/N0))
  n               int >= 1: complex channel uses per message (x.shape[1] / 2)
  mode            'complex' or 'real' (real: imaginary parts of x are zero)
  sample_rate     float >= 0, samples per second of the captured stream (0: unknown)
  source          free text: 'simulation: pa', 'flowgraph ...'
  ebn0_db         float or null: the Eb/N0 of the channel, if known
  seed            int or null: the seed the rows were drawn or sent with
  batch_size      int or null: messages per training batch (with seed and
                  batch_index, prng.batch_messages regenerates the messages)
  created         ISO 8601 time of creation

Loading validates everything (container, metadata, shapes, dtypes, finite
values, message range) and raises DatasetError naming the file and the
reason.
"""
import dataclasses
import datetime
import json
import math
import typing

import numpy as np
import torch

from . import channels, checkpoint, prng, snr, validate
from .models import complex_to_real, real_to_complex

FORMAT_VERSION = 1
METADATA_KEY = "gr_e2e_channel_dataset"
TENSOR_NAMES = ("x", "y", "messages", "batch_index")
METADATA_FIELDS = ("format_version", "M", "n", "mode", "sample_rate", "source", "ebn0_db", "seed",
                   "batch_size", "created")
# simulate_dataset draws the channel in chunks of this many rows when no batch size is given.
SIMULATION_CHUNK = 10_000


class DatasetError(checkpoint.CheckpointError):
    """A channel dataset file was refused: '<file>: <reason>' (a ValueError, as CheckpointError)."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _complex_rows(name, value, n=None):
    """value (torch or NumPy, complex) as a complex64 tensor [N, n]; ValueError naming it."""
    t = torch.as_tensor(value)
    if not t.is_complex():
        raise ValueError(f"{name} must be complex [N, n], got dtype {t.dtype}")
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name} must have shape [N, n] with N >= 1, got {list(t.shape)}")
    if n is not None and t.shape[1] != n:
        raise ValueError(f"{name} has {t.shape[1]} symbols per row, n is {n}")
    t = t.detach().to("cpu", torch.complex64).contiguous()
    if not torch.isfinite(torch.view_as_real(t)).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _index_rows(name, value, rows, high=None):
    """None, or value as an int64 tensor [rows] in [0, high); ValueError naming it."""
    if value is None:
        return None
    t = torch.as_tensor(value)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    t = t.detach().to("cpu", torch.int64).contiguous()
    if tuple(t.shape) != (rows,):
        raise ValueError(f"{name} must have shape [{rows}] (one per row of x), got {list(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} holds negative values (min {int(t.min())})")
    if high is not None and t.numel() and int(t.max()) >= high:
        raise ValueError(f"{name} must lie in [0, {high}), got max {int(t.max())}")
    return t


@dataclasses.dataclass
class ChannelDataset:
    """Observed channel pairs and what is known about them (module docstring: the file format).

    x:           complex64 tensor [N, n], transmitted symbols (Es = 1 per use)
    y:           complex64 tensor [N, n], received symbols
    M, n, mode:  the link the rows belong to (n must equal x.shape[1])
    messages:    int64 tensor [N] in [0, M), or None
    batch_index: int64 tensor [N] >= 0, or None
    sample_rate: samples per second of a captured stream, 0.0 if unknown
    source:      free text saying where the rows come from
    ebn0_db, seed, batch_size: float / int / int, or None if unknown
    created:     ISO 8601 time; None at construction means now

    NumPy arrays are accepted and converted; everything is validated at
    construction (ValueError naming the field).
    """

    x: typing.Any
    y: typing.Any
    M: int
    n: int
    mode: str = "complex"
    messages: typing.Any = None
    batch_index: typing.Any = None
    sample_rate: float = 0.0
    source: str = ""
    ebn0_db: typing.Optional[float] = None
    seed: typing.Optional[int] = None
    batch_size: typing.Optional[int] = None
    created: typing.Optional[str] = None

    def __post_init__(self):
        self.M, self.n = validate.sizes(self.M, self.n)
        validate.mode(self.mode)
        self.x = _complex_rows("x", self.x, self.n)
        self.y = _complex_rows("y", self.y, self.n)
        if self.y.shape != self.x.shape:
            raise ValueError(f"y has shape {list(self.y.shape)}, x has {list(self.x.shape)}: one y row per x row")
        rows = self.x.shape[0]
        self.messages = _index_rows("messages", self.messages, rows, self.M)
        self.batch_index = _index_rows("batch_index", self.batch_index, rows)
        self.sample_rate = validate.real("sample_rate", self.sample_rate, 0)
        if not isinstance(self.source, str):
            raise ValueError(f"source must be a str, got {self.source!r}")
        self.ebn0_db = None if self.ebn0_db is None else validate.db("ebn0_db", self.ebn0_db)
        self.seed = None if self.seed is None else validate.integer("seed", self.seed, 0)
        self.batch_size = None if self.batch_size is None else validate.integer("batch_size", self.batch_size, 1)
        if self.created is None:
            self.created = _now()
        elif not isinstance(self.created, str):
            raise ValueError(f"created must be an ISO 8601 str, got {self.created!r}")

    def __len__(self):
        return self.x.shape[0]

    @property
    def x_real(self):
        """x as float32 [N, 2n], the networks' real layout."""
        return complex_to_real(self.x)

    @property
    def y_real(self):
        """y as float32 [N, 2n], the networks' real layout."""
        return complex_to_real(self.y)

    def metadata(self):
        """The JSON-ready metadata object stored under METADATA_KEY."""
        return {"format_version": FORMAT_VERSION, "M": self.M, "n": self.n, "mode": self.mode,
                "sample_rate": self.sample_rate, "source": self.source, "ebn0_db": self.ebn0_db,
                "seed": self.seed, "batch_size": self.batch_size, "created": self.created}

    def subset(self, rows):
        """A dataset of the given rows (int64 index tensor), same metadata."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        pick = (lambda t: None if t is None else t[rows])
        return dataclasses.replace(self, x=self.x[rows], y=self.y[rows], messages=pick(self.messages),
                                   batch_index=pick(self.batch_index))


def to_bytes(dataset):
    """The dataset as safetensors bytes (the file format of the module docstring)."""
    from safetensors.torch import save as st_save
    tensors = {"x": dataset.x_real.contiguous(), "y": dataset.y_real.contiguous()}
    for name in ("messages", "batch_index"):
        if getattr(dataset, name) is not None:
            tensors[name] = getattr(dataset, name).contiguous()
    return st_save(tensors, metadata={METADATA_KEY: json.dumps(dataset.metadata(), sort_keys=True)})


def save_dataset(path, dataset):
    """Atomically write `dataset` (a ChannelDataset) to path; returns the path."""
    if not isinstance(dataset, ChannelDataset):
        raise TypeError(f"save_dataset needs a ChannelDataset, got {type(dataset).__name__}")
    return checkpoint.write_atomic(validate.path("path", path, allow_empty=False), to_bytes(dataset))


def _parse_metadata(source, metadata):
    if METADATA_KEY not in metadata:
        if checkpoint.CONFIG_KEY in metadata:
            raise DatasetError(source, "is a gr-e2e checkpoint (networks), not a channel dataset")
        raise DatasetError(source, f"has no '{METADATA_KEY}' metadata (not a gr-e2e channel dataset)")
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise DatasetError(source, f"has metadata that is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(source, "has metadata that is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(source, f"has format_version {meta.get('format_version')!r}, "
                                   f"this gr-e2e reads {FORMAT_VERSION}")
    missing = [f for f in METADATA_FIELDS if f not in meta]
    if missing:
        raise DatasetError(source, f"has metadata lacking {missing}")
    unknown = sorted(set(meta) - set(METADATA_FIELDS))
    if unknown:
        raise DatasetError(source, f"has unknown metadata fields {unknown}")
    return meta


def _real_rows(source, name, t, n):
    if t.dtype != torch.float32:
        raise DatasetError(source, f"tensor {name} has dtype {t.dtype}, expected float32")
    if t.dim() != 2 or t.shape[1] != 2 * n:
        raise DatasetError(source, f"tensor {name} has shape {list(t.shape)}, expected [N, {2 * n}] (n={n})")
    if not torch.isfinite(t).all():
        raise DatasetError(source, f"tensor {name} holds NaN or infinite values")
    return real_to_complex(t)


def from_bytes(data, source="channel dataset", expect=None):
    """Validate safetensors bytes and return the ChannelDataset; see load_dataset."""
    try:
        metadata, tensors = checkpoint._parse(data, source)
    except checkpoint.CheckpointError as e:
        raise DatasetError(e.source, e.reason) from None
    meta = _parse_metadata(source, metadata)
    for key, value in (expect or {}).items():
        if key not in METADATA_FIELDS:
            raise ValueError(f"expect names {key!r}, which is not a channel dataset field {METADATA_FIELDS}")
        if meta[key] != value:
            raise DatasetError(source, f"has {key}={meta[key]!r} but {key}={value!r} was expected")
    unexpected = sorted(set(tensors) - set(TENSOR_NAMES))
    if unexpected:
        raise DatasetError(source, f"has unexpected tensors {unexpected}")
    missing = [k for k in ("x", "y") if k not in tensors]
    if missing:
        raise DatasetError(source, f"lacks tensors {missing}")
    try:
        n = validate.integer("n", meta["n"], 1)
    except ValueError as e:
        raise DatasetError(source, f"has invalid metadata: {e}") from None
    x = _real_rows(source, "x", tensors["x"], n)
    y = _real_rows(source, "y", tensors["y"], n)
    if x.shape[0] < 1:
        raise DatasetError(source, "holds no rows (N = 0)")
    if y.shape != x.shape:
        raise DatasetError(source, f"tensor y has {y.shape[0]} rows, x has {x.shape[0]}")
    for name in ("messages", "batch_index"):
        if name in tensors and tensors[name].dtype != torch.int64:
            raise DatasetError(source, f"tensor {name} has dtype {tensors[name].dtype}, expected int64")
    fields = {k: v for k, v in meta.items() if k != "format_version"}
    try:
        return ChannelDataset(x=x, y=y, messages=tensors.get("messages"), batch_index=tensors.get("batch_index"),
                              **fields)
    except (ValueError, TypeError) as e:
        raise DatasetError(source, f"is invalid: {e}") from None


def load_dataset(path, expect=None):
    """Load and validate a channel dataset file.

    expect: {metadata field: value} the caller requires, e.g. {'n': 7, 'M': 16};
            a mismatch raises DatasetError naming both values.
    Returns a ChannelDataset. Every failure (missing, truncated, corrupt or
    pickled file, a checkpoint instead of a dataset, missing or incomplete
    metadata, wrong shapes or dtypes, NaN) raises DatasetError (a ValueError)
    whose message starts with the file's path and says why.
    """
    path = validate.path("path", path)
    try:
        data = checkpoint._read(path)
    except checkpoint.CheckpointError as e:
        raise DatasetError(e.source, e.reason.replace("checkpoint file", "dataset file")) from None
    return from_bytes(data, source=path, expect=expect)


def simulate_dataset(channel, n, ebn0_db, count, *, M=None, encoder=None, seed=0, batch_size=None,
                     source=None):
    """Pairs (x, y) of a simulated channel: the dataset a channel model learns from.

    channel:  core.channels interface (complex [B, n] -> complex [B, n]) or a
              name of channels.by_name ('awgn', 'pa', ...)
    n:        complex channel uses per message
    ebn0_db:  Eb/N0 in dB of the channel's noise: N0 = 1/(R Eb/N0), R = log2(M)/n
    count:    rows N
    M:        messages of the link (sets the rate); default the encoder's M, or 16
    encoder:  models.Encoder, or None. With an encoder, x = encoder(messages)
              for the messages of prng.batch_messages(seed, b, batch_size, M),
              batch b = 0, 1, ... (batch_size default 1000), recorded in
              `messages` and `batch_index`: what a link sends while training.
              With None, x is i.i.d. CN(0, 1) per symbol (Es = 1): it covers the
              input space, which a channel model that must serve any
              transmitter has to learn; messages and batch_index are None.
    seed:     x (without an encoder) and the channel's draws come from stream
              prng.CAPTURE of this seed
    Returns a ChannelDataset (source 'simulation: <channel>' unless given).
    """
    if isinstance(channel, str):
        name, channel = channel, channels.by_name(channel)
    else:
        name = type(channel).__name__
    n = validate.integer("n", n, 1)
    count = validate.integer("count", count, 1)
    ebn0_db = validate.db("ebn0_db", ebn0_db)
    seed = validate.integer("seed", seed, 0)
    if encoder is not None:
        c = encoder.config
        if c.n != n or (M is not None and c.M != M):
            raise ValueError(f"the encoder has M={c.M}, n={c.n}, the dataset asks for M={M}, n={n}")
        M, mode = c.M, c.mode
        batch_size = 1000 if batch_size is None else validate.integer("batch_size", batch_size, 1)
    else:
        M, mode = (16 if M is None else M), "complex"
        batch_size = None if batch_size is None else validate.integer("batch_size", batch_size, 1)
    M, n = validate.sizes(M, n)
    channels.check_mode(channel, mode)
    n0 = snr.n0_from_ebn0_db(ebn0_db, M, n)
    symbols = prng.torch_generator(seed, prng.CAPTURE, 0)
    draws = prng.torch_generator(seed, prng.CAPTURE, 1)
    chunk = batch_size or SIMULATION_CHUNK
    xs, ys, ms, bs = [], [], [], []
    with torch.no_grad():
        for b in range(math.ceil(count / chunk)):
            rows = min(chunk, count - b * chunk)
            if encoder is None:
                x = torch.randn((rows, n), generator=symbols, dtype=torch.complex64)
            else:
                m = prng.batch_messages(seed, b, batch_size, M)[:rows]
                x = real_to_complex(encoder(torch.from_numpy(m))).to(torch.complex64)
                ms.append(m)
                bs.append(np.full(rows, b, dtype=np.int64))
            xs.append(x)
            ys.append(channel(x, n0, draws).to(torch.complex64))
    return ChannelDataset(
        x=torch.cat(xs), y=torch.cat(ys), M=M, n=n, mode=mode,
        messages=np.concatenate(ms) if ms else None, batch_index=np.concatenate(bs) if bs else None,
        source=source if source is not None else f"simulation: {name}", ebn0_db=ebn0_db, seed=seed,
        batch_size=batch_size)


def split(dataset, fraction, seed=0):
    """(train, held_out): a random share `fraction` of the rows is held out.

    fraction: in (0, 1), the held-out share (rounded, at least one row each side).
    Rows are permuted with stream prng.CAPTURE of `seed`, so a split is reproducible.
    """
    fraction = validate.real("fraction", fraction, 0, 1, low_open=True, high_open=True)
    N = len(dataset)
    held = min(N - 1, max(1, round(fraction * N)))
    if N < 2:
        raise ValueError(f"a dataset of {N} row cannot be split in two")
    order = torch.from_numpy(prng.numpy_rng(validate.integer("seed", seed, 0), prng.CAPTURE, 2).permutation(N))
    return dataset.subset(order[held:]), dataset.subset(order[:held])
