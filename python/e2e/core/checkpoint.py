"""Checkpoints: one .safetensors file, the config JSON (with its kind) in its metadata.

A file holds the networks of one kind (core.kinds): a whole link
('autoencoder'), one role ('transmitter', 'receiver') or, as the project
grows, generators, adversaries and precoders. Loading never unpickles. It
checks the container, the config, and every tensor key, shape, dtype and
value against the networks the kind and config describe, whichever network
the caller needs, and raises CheckpointError naming the source (file path or
'weights message') and the reason. Saving is atomic: a crash mid-save leaves
the previous file intact.
"""
import dataclasses
import json
import os
import struct
import tempfile
import typing

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import kinds, validate
from .config import merge_configs

CONFIG_KEY = "gr_e2e_config"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save (zip container)
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint (file or weights message) was refused; the message says why."""

    def __init__(self, source, reason):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


def to_bytes(kind, config, networks, metadata=None):
    """Serialise the networks of a `kind` checkpoint to safetensors bytes (also the weights-port payload).

    networks: {network name: torch.nn.Module}, exactly the kind's networks.
    metadata: {str: anything str() can write}, stored beside the config.
    """
    spec = kinds.get(kind)
    if set(networks) != set(spec.networks) or any(m is None for m in networks.values()):
        raise ValueError(f"a {kind} checkpoint holds exactly {sorted(spec.networks)}, "
                         f"got {sorted(k for k, m in networks.items() if m is not None)}")
    tensors = {}
    for name, module in networks.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().to("cpu", torch.float32).contiguous()
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta[CONFIG_KEY] = kinds.config_json(kind, config)
    return st_save(tensors, metadata=meta)


def save(path, kind, config, networks, metadata=None):
    """Atomically write a checkpoint: temporary file in the same folder, fsync, rename."""
    return write_atomic(path, to_bytes(kind, config, networks, metadata))


def save_link(path, config, encoder, decoder, metadata=None):
    """save() of a whole link (kind 'autoencoder')."""
    return save(path, "autoencoder", config, {"encoder": encoder, "decoder": decoder}, metadata)


def write_atomic(path, data):
    """Write bytes to path so that a crash at any point leaves the previous file intact."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        # mkstemp creates 0600; a checkpoint should be as readable as any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _is_pickle(data):
    """torch.save zip, or a pickle of protocol 2..5 (PROTO opcode 0x80, then the protocol).

    A safetensors file starts with its header length as a little-endian u64,
    whose low byte is 0x80 for 1 header length in 32 (headers are padded to 8
    bytes); its JSON header then opens at byte 8, where a pickle never has '{'.
    """
    if data[:4] == _ZIP_MAGIC:
        return True
    return data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and data[8:9] != b"{"


def _parse(data, source):
    """bytes -> (metadata dict, tensors dict), refusing anything but safetensors."""
    if _is_pickle(data):
        raise CheckpointError(source, "is a pickled (torch.save) file; gr-e2e only loads safetensors "
                                      "checkpoints and never unpickles")
    if len(data) < 8:
        raise CheckpointError(source, f"is {len(data)} bytes, too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER or header_len < 2:
        raise CheckpointError(source, "is not a safetensors file (implausible header length)")
    if len(data) < 8 + header_len:
        raise CheckpointError(source, f"is truncated: header needs {8 + header_len} bytes, file has {len(data)}")
    try:
        header = json.loads(data[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(source, "is not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(source, "is not a safetensors file (header is not a JSON object)")
    ends = []
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offsets = v.get("data_offsets") if isinstance(v, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(type(o) is int and o >= 0 for o in offsets)):
            raise CheckpointError(source, f"is a corrupt safetensors file (tensor {k!r} has no valid "
                                          f"data_offsets)")
        ends.append(offsets[1])
    if ends and len(data) < 8 + header_len + max(ends):
        raise CheckpointError(source, f"is truncated: tensors need {8 + header_len + max(ends)} bytes, "
                                      f"file has {len(data)}")
    try:
        tensors = st_load(bytes(data))
    except Exception as e:  # safetensors raises its own error type for corrupt buffers
        raise CheckpointError(source, f"is a corrupt safetensors file ({e})") from None
    return header.get("__metadata__") or {}, tensors


@dataclasses.dataclass
class Checkpoint:
    """A validated checkpoint: its kind, config, networks (eval mode) and metadata."""

    kind: str
    config: typing.Any
    networks: dict
    metadata: dict
    source: str

    def network(self, name):
        """The network called name; CheckpointError if this kind holds none."""
        if name not in self.networks:
            raise CheckpointError(self.source, f"is a {self.kind} checkpoint, which holds "
                                               f"{sorted(self.networks)} but no {name}")
        return self.networks[name]


def _check_tensors(source, name, module, tensors):
    prefix = name + "."
    expected = {prefix + k: v.shape for k, v in module.state_dict().items()}
    got = {k: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        raise CheckpointError(source, f"missing tensors {missing}")
    if unexpected:
        raise CheckpointError(source, f"unexpected tensors {unexpected}")
    for k, shape in expected.items():
        if tuple(got[k].shape) != tuple(shape):
            raise CheckpointError(source, f"tensor {k} has shape {list(got[k].shape)}, "
                                          f"the config needs {list(shape)}")
        if got[k].dtype != torch.float32:
            raise CheckpointError(source, f"tensor {k} has dtype {got[k].dtype}, expected float32")
        if not torch.isfinite(got[k]).all():
            raise CheckpointError(source, f"tensor {k} holds NaN or infinite values")
    module.load_state_dict({k[len(prefix):]: v for k, v in got.items()})


def from_bytes(data, source="weights message", kinds_allowed=None, expect=None):
    """Validate and load safetensors bytes into a Checkpoint.

    kinds_allowed: kind names the caller accepts (None: any); another kind is
            refused with both named.
    expect: {config field: value} the caller requires, e.g. {'M': 16, 'n': 7};
            a mismatch is refused with both values named.
    Every tensor of the file is checked against every network of its kind.
    """
    metadata, tensors = _parse(data, source)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(source, f"has no '{CONFIG_KEY}' metadata (not a gr-e2e checkpoint)")
    try:
        kind, config = kinds.parse_config_json(metadata[CONFIG_KEY])
    except (ValueError, TypeError) as e:
        raise CheckpointError(source, f"has an invalid config: {e}") from None
    if kinds_allowed is not None and kind.name not in kinds_allowed:
        raise CheckpointError(source, f"is a {kind.name} checkpoint; expected {' or '.join(sorted(kinds_allowed))}")
    for key, value in (expect or {}).items():
        if not hasattr(config, key):
            raise ValueError(f"expect names {key!r}, which is not a {type(config).__name__} field")
        if getattr(config, key) != value:
            raise CheckpointError(source, f"has {key}={getattr(config, key)!r} but {key}={value!r} "
                                          f"was expected")
    prefixes = {k.split(".", 1)[0] for k in tensors}
    stray = sorted(prefixes - set(kind.networks))
    if stray:
        raise CheckpointError(source, f"unexpected tensors of {stray}: a {kind.name} checkpoint holds "
                                      f"only {sorted(kind.networks)}")
    networks = kind.build(config)
    for name, module in networks.items():
        _check_tensors(source, name, module, tensors)
        module.eval()
    extra = {k: v for k, v in metadata.items() if k != CONFIG_KEY}
    return Checkpoint(kind.name, config, networks, extra, source)


def load(path, kinds_allowed=None, expect=None):
    """Load a checkpoint file; see from_bytes. Errors name the file."""
    return from_bytes(_read(path), source=os.fspath(path), kinds_allowed=kinds_allowed, expect=expect)


def load_link(path, expect=None):
    """(config, encoder, decoder) of a whole-link ('autoencoder') checkpoint file."""
    c = load(path, kinds_allowed=("autoencoder",), expect=expect)
    return c.config, c.networks["encoder"], c.networks["decoder"]


def load_network(path_or_bytes, network, expect=None, source=None):
    """(config, module) of one network from any kind that holds it; the whole file is validated.

    path_or_bytes: a file path, or bytes (a weights message; source names it).
    """
    allowed = kinds.holding(network)
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        c = from_bytes(bytes(path_or_bytes), source or "weights message", allowed, expect)
    else:
        c = load(validate.path("checkpoint", path_or_bytes), allowed, expect)
    return c.config, c.networks[network]


def merge(transmitter, receiver):
    """A whole link from the encoder of one checkpoint and the decoder of another.

    transmitter, receiver: Checkpoint (any kinds holding an encoder and a
    decoder respectively: a transmitter and a receiver file, or two links).
    Returns (config, encoder, decoder); CheckpointError if they cannot pair.
    """
    encoder, decoder = transmitter.network("encoder"), receiver.network("decoder")
    try:
        config = merge_configs(transmitter.config, receiver.config)
    except ValueError as e:
        raise CheckpointError(f"{transmitter.source} + {receiver.source}", str(e)) from None
    return config, encoder, decoder


def _read(path):
    path = os.fspath(path)
    if not path:
        raise CheckpointError("checkpoint", "no checkpoint file given")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except IsADirectoryError:
        raise CheckpointError(path, "is a directory, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})") from None




def merge_files(transmitter_path, receiver_path, out_path):
    """Write a link checkpoint from the encoder of one file and the decoder of another.

    The usual pair is what live training writes: model_free_tx's transmitter
    file and model_free_rx's receiver file. The link's metadata records both
    sources and their metadata (steps trained). Returns
    (out_path, transmitter Checkpoint, receiver Checkpoint).
    """
    tx, rx = load(transmitter_path), load(receiver_path)
    config, encoder, decoder = merge(tx, rx)
    meta = {"merged_from": json.dumps({"transmitter": os.path.abspath(transmitter_path),
                                       "receiver": os.path.abspath(receiver_path)})}
    meta.update({f"transmitter.{k}": v for k, v in tx.metadata.items()})
    meta.update({f"receiver.{k}": v for k, v in rx.metadata.items()})
    return save_link(out_path, config, encoder, decoder, metadata=meta), tx, rx


def read_metadata(path):
    """The checkpoint's metadata (config JSON and anything saved alongside), container checked."""
    return _parse(_read(path), os.fspath(path))[0]
