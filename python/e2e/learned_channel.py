"""learned_channel: a trained channel model (GAN generator) played back on a symbol stream (GNU Radio block).

The model (core.channel_gan) was fitted to observed (x, y) pairs of a
channel; this block draws y = G(x, z) for each message of the stream, a
stand-in for that channel in a flowgraph.
"""
import os

import numpy as np
import torch
from gnuradio import gr

from .block_common import keep_alive, validate_sizes
from .core import channel_gan, checkpoint, prng, validate
from .core.models import complex_to_real, real_to_complex

# Messages per chunk of generator noise: message j's z is row j % CHUNK_MESSAGES of
# the noise drawn for chunk j // CHUNK_MESSAGES (noise_generator).
CHUNK_MESSAGES = 1024
# What writes the example's files (examples/README.md, learned_channel).
LEARNED_CHANNEL_FILES_COMMAND = (
    "`make bench-learned-channel`, in the gr-e2e checkout, writes runs/learned_channel/link.safetensors "
    "(a link) and channel_model.safetensors (a channel model learned from the 'pa' channel)")


def noise_generator(seed, chunk):
    """The torch.Generator of the generator noise z of message chunk `chunk` (prng stream CHANNEL_GAN)."""
    return prng.torch_generator(seed, prng.CHANNEL_GAN, chunk)


def require_learned_channel_files(*paths):
    """Refuse to start a flowgraph whose files are missing, naming the command that writes them.

    paths : str, files the flowgraph reads (a link, a channel model).
    Raises checkpoint.CheckpointError (a ValueError) '<absolute path>: no such
    file. <command>' for the first missing one; returns None when all exist.
    The learned-channel examples call it before their blocks are built, so a
    missing link names `make bench-learned-channel` rather than a training
    command.
    """
    for path in paths:
        path = validate.path("path", path, allow_empty=False)
        if not os.path.exists(path):
            raise checkpoint.CheckpointError(os.path.abspath(path), f"no such file. {LEARNED_CHANNEL_FILES_COMMAND}")


def load_channel_model(path, n):
    """(config, generator) of a 'channel_model' checkpoint with this n; a missing file's error names the command."""
    path = validate.path("checkpoint", path, allow_empty=False)
    try:
        config, generator, _ = channel_gan.load_channel_model(path, expect={"n": n})
    except checkpoint.CheckpointError as e:
        if e.reason != "no such file":
            raise
        raise checkpoint.CheckpointError(
            os.path.abspath(e.source),
            f"no such file. A channel model (kind 'channel_model') is written by "
            f"core.channel_gan.save_channel_model after training; {LEARNED_CHANNEL_FILES_COMMAND}") from None
    return config, generator


class learned_channel(gr.sync_block):
    """A learned channel: transmitted symbols in, y = G(x, z) out, n symbols per message.

    G is the generator of a channel model checkpoint (core.channel_gan:
    residual y = x + G_R(x, z) or plain y = G(x, z)), z ~ N(0, I) of the
    model's noise_dim per message. The model's noise level is learned from
    the data it was fitted to (its config's ebn0_db says at which Eb/N0), so
    this block has no Eb/N0 parameter.

    Reproducible: message j's z is row j % CHUNK_MESSAGES of
    generator.noise(CHUNK_MESSAGES, noise_generator(seed, j // CHUNK_MESSAGES)),
    whatever the buffer sizes; so the output equals
    core.channel_gan.LearnedChannel(generator) applied offline to each chunk
    of CHUNK_MESSAGES messages with noise_generator(seed, chunk) (to float
    rounding).

    Parameters
    ----------
    checkpoint : str, path of a gr-e2e checkpoint of kind 'channel_model'
        (save_channel_model); refused at construction
        (checkpoint.CheckpointError, a ValueError naming the file and the
        reason) if it cannot be read, is damaged, is of another kind, or its
        n differs from the parameter below. A missing file's error names the
        command that writes the example's files.
    M : int in [2, 256], messages of the link. The model's config records
        the M its Eb/N0 refers to; a different M is allowed (the model's
        noise does not depend on it) and logged as a warning.
    n : int >= 1, symbols per message (must be the model's n).
    seed : int >= 0, seeds the generator noise (prng stream CHANNEL_GAN).

    Ports
    -----
    in 0 : complex64 stream, n symbols per message, message-aligned at item 0.
    out 0 : complex64 stream, one item per input item; tags stay on their
        items. Whole messages only (output multiple n).
    """

    def __init__(self, checkpoint, M, n, seed=0):
        self.M, self.n = validate_sizes(M, n)
        self.seed = validate.integer("seed", seed, 0)
        self.checkpoint = checkpoint
        self.config, self._generator = load_channel_model(checkpoint, self.n)
        gr.sync_block.__init__(self, name="learned_channel", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        self.set_output_multiple(self.n)
        self._z_index, self._z = None, None  # the chunk whose noise _z holds
        if self.config.M != self.M:
            self.logger.warn(f"{checkpoint}: the channel model's Eb/N0 ({self.config.ebn0_db} dB) refers to "
                             f"M={self.config.M}; this link has M={self.M} (the model's noise is what it learned)")

    def _noise(self, chunk):
        if chunk != self._z_index:
            self._z = self._generator.noise(CHUNK_MESSAGES, noise_generator(self.seed, chunk))
            self._z_index = chunk
        return self._z

    def work(self, input_items, output_items):
        out = output_items[0]
        k = len(out) // self.n
        x = input_items[0][:k * self.n].reshape(k, self.n)
        first = self.nitems_written(0) // self.n
        j = 0
        with torch.inference_mode():
            while j < k:
                c, r = divmod(first + j, CHUNK_MESSAGES)
                take = min(CHUNK_MESSAGES - r, k - j)
                z = self._noise(c)[r:r + take]
                y = self._generator(torch.from_numpy(complex_to_real(x[j:j + take])).to(torch.float32), z)
                out[j * self.n:(j + take) * self.n] = real_to_complex(y).numpy().reshape(-1)
                j += take
        return k * self.n

    def model_ebn0_db(self):
        """The Eb/N0 (dB) of the channel the model was learned from (its config), or None if not recorded."""
        return self.config.ebn0_db
