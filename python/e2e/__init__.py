"""gr-e2e: end-to-end learned physical layers for GNU Radio.

Blocks (thin adapters over the pure PyTorch/NumPy code in ``core``):
  nn_encoder           uint8 message index -> n complex64 symbols (learned
                       transmitter: lookup in the trained symbol table)
  nn_decoder           n complex64 symbols -> uint8 decided message (learned
                       receiver), optionally float32[M] message probabilities
  block_error_counter  sent vs decided uint8 messages -> running BLER (float32),
                       bit errors, and a `metrics` message port

nn_encoder and nn_decoder take a gr-e2e .safetensors checkpoint and accept
new weights at run time on their `weights` message port.
"""
from .block_error_counter import block_error_counter
from .nn_decoder import nn_decoder
from .nn_encoder import nn_encoder
