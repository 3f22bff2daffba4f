"""A trained encoder/decoder pair seen through the evaluator's link interface.

Link interface (see baselines.py): attributes M, n, mode, name;
transmit(messages int64 [B]) -> complex [B, n];
receive(y complex [B, n], n0) -> int64 [B].
"""
import numpy as np
import torch

from . import validate
from .baselines import ml_detect, ml_detect_block_fading
from .models import decide, received_tensor


class LearnedLink:
    """Learned constellation, detected by the neural decoder or by ML.

    detector='nn': the trained Decoder (what the nn_decoder block runs).
    detector='ml': minimum-distance detection on the learned codebook, the
    optimum the neural decoder is measured against on AWGN.
    detector='ml-rbf': maximum likelihood on Rayleigh block fading without
    channel knowledge (baselines.ml_detect_block_fading), the optimum for a
    receiver that is not told h (complex mode only).
    """

    def __init__(self, encoder, decoder=None, detector="nn", name=None, chunk=65536):
        validate.choice("detector", detector, ("nn", "ml", "ml-rbf"))
        if detector == "nn" and decoder is None:
            raise ValueError("detector='nn' needs a decoder")
        c = encoder.config
        self.M, self.n, self.mode = c.M, c.n, c.mode
        if detector == "ml-rbf" and c.mode != "complex":
            raise ValueError(f"detector 'ml-rbf' needs a complex-mode link, got mode={c.mode!r}")
        self.codebook = encoder.symbol_table().astype(np.complex128)
        self.decoder, self.detector, self.chunk = decoder, detector, chunk
        self.name = name or f"learned ({detector})"

    def transmit(self, messages):
        return self.codebook[messages]

    @torch.no_grad()
    def receive(self, y, n0):
        if self.detector == "ml":
            return ml_detect(y, self.codebook, self.mode)
        if self.detector == "ml-rbf":
            return ml_detect_block_fading(y, self.codebook, n0)
        out = np.empty(len(y), dtype=np.int64)
        for i in range(0, len(y), self.chunk):
            out[i:i + self.chunk] = decide(self.decoder(received_tensor(y[i:i + self.chunk]))).numpy()
        return out
