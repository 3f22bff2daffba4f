"""gr-e2e: end-to-end learned physical layers for GNU Radio.

Blocks (thin adapters over the pure PyTorch/NumPy code in ``core``):
  nn_encoder           uint8 message index -> n complex64 symbols (learned
                       transmitter: lookup in the trained symbol table)
  nn_decoder           n complex64 symbols -> uint8 decided message (learned
                       receiver), optionally float32[M] message probabilities
  training_source      deterministic training messages (seed, batch index) in
                       tagged batches, for live model-free training
  block_error_counter  sent vs decided uint8 messages -> running BLER (float32),
                       bit errors, and a `metrics` message port

nn_encoder and nn_decoder take a gr-e2e .safetensors checkpoint and accept
new weights at run time on their `weights` message port. With training=True
they train live, model-free (Aoudia & Hoydis): the decoder feeds per-example
losses back to the encoder over the `loss` message port.
"""
from .block_error_counter import block_error_counter
from .nn_decoder import nn_decoder
from .nn_encoder import nn_encoder
from .training_source import training_source
