"""Checkpoints: one .safetensors file, the LinkConfig JSON in its metadata.

Loading never unpickles. It checks the container, the config, and every
tensor key and shape against the network the config describes, and raises
CheckpointError naming the source (file path or 'weights message') and the
reason. Saving is atomic: a crash mid-save leaves the previous file intact.
"""
import json
import os
import struct
import tempfile

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import LinkConfig
from .models import Decoder, Encoder

CONFIG_KEY = "gr_e2e_config"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save (zip container)
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint (file or weights message) was refused; the message says why."""

    def __init__(self, source, reason):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


def to_bytes(config, encoder=None, decoder=None, metadata=None):
    """Serialise a link's networks to safetensors bytes (also the weights-port payload)."""
    tensors = {}
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        if module is not None:
            for k, v in module.state_dict().items():
                tensors[prefix + k] = v.detach().to("cpu", torch.float32).contiguous()
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta[CONFIG_KEY] = config.to_json()
    return st_save(tensors, metadata=meta)


def save(path, config, encoder=None, decoder=None, metadata=None):
    """Atomically write the checkpoint: temporary file in the same folder, fsync, rename."""
    data = to_bytes(config, encoder, decoder, metadata)
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


def _check_tensors(source, module, tensors, prefix):
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


def from_bytes(data, source="weights message", need=("encoder", "decoder"), expect=None):
    """Validate and load safetensors bytes.

    need:   which networks must be present ('encoder', 'decoder').
    expect: dict of config fields the caller requires, e.g. {'M': 16, 'n': 7};
            a mismatch is refused with both values named.
    Returns (config, encoder or None, decoder or None).
    """
    metadata, tensors = _parse(data, source)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(source, f"has no '{CONFIG_KEY}' metadata (not a gr-e2e checkpoint)")
    try:
        config = LinkConfig.from_json(metadata[CONFIG_KEY])
    except (ValueError, TypeError) as e:
        raise CheckpointError(source, f"has an invalid config: {e}") from None
    for key, value in (expect or {}).items():
        if not hasattr(config, key):
            raise ValueError(f"expect names {key!r}, which is not a LinkConfig field")
        if getattr(config, key) != value:
            raise CheckpointError(source, f"has {key}={getattr(config, key)!r} but {value!r} was "
                                          f"expected (the block's {key} parameter)")
    encoder = decoder = None
    if "encoder" in need:
        encoder = Encoder(config)
        _check_tensors(source, encoder, tensors, "encoder.")
        encoder.eval()
    if "decoder" in need:
        decoder = Decoder(config)
        _check_tensors(source, decoder, tensors, "decoder.")
        decoder.eval()
    return config, encoder, decoder


def load(path, need=("encoder", "decoder"), expect=None):
    """Load a checkpoint file; see from_bytes. Errors name the file."""
    return from_bytes(_read(path), source=os.fspath(path), need=need, expect=expect)


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


def read_metadata(path):
    """The checkpoint's metadata (config JSON and anything saved alongside), validated."""
    return _parse(_read(path), os.fspath(path))[0]
