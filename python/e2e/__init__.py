"""gr-e2e: end-to-end learned physical layers for GNU Radio.

Blocks (thin adapters over the pure PyTorch/NumPy code in ``core``):
  nn_encoder, nn_decoder, block_error_counter
"""
