"""gr-e2e: end-to-end learned physical layers for GNU Radio.

Blocks (thin adapters over the pure PyTorch/NumPy code in ``core``):

inference
  nn_encoder           uint8 message index -> n complex64 symbols (learned
                       transmitter: lookup in the trained symbol table)
  nn_decoder           n complex64 symbols -> uint8 decided message (learned
                       receiver), optionally float32[M] message probabilities
  adversarial_source   transmitted complex64 symbols -> an attacker's
                       perturbation (universal, black-box, generative,
                       jamming) at a set PSR, added into the channel
  learned_channel      transmitted complex64 symbols -> y = G(x, z) of a
                       learned channel model (GAN generator), n per message
  mpa_precoder         uint8 message index -> N complex64 subchannel symbols
                       through the attention precoder, re-adapted on each
                       `csi` message (channel gains)
  csi_decoder          N complex64 symbols + `csi` stream tags -> uint8
                       decided message (a receiver that knows the channel)
channels and datasets
  simulated_channel    complex64 symbols through a core channel (awgn,
                       rayleigh, phase, pa) at a set Eb/N0, per message,
                       keeping every sample and tag
  subchannel_fading    complex64 symbols through N frequency-selective
                       block-fading subchannels; genie CSI as `csi` tags and
                       messages
  channel_capture      transmitted and received complex64 symbols -> a
                       channel dataset file of (x, y) pairs per message
live training (model-free, Aoudia & Hoydis)
  training_source      deterministic training messages (seed, batch index) in
                       tagged batches
  model_free_tx        transmitter trained from fed-back losses (`loss` in)
  model_free_rx        receiver trained on regenerated messages, framing
                       batches by their tags; sends losses back (`loss` out)
OFDM (hier blocks of GNU Radio's own OFDM, sync and header blocks)
  ofdm_e2e_tx          message symbols -> OFDM frames with a header carrying the frame number
  ofdm_e2e_rx          OFDM frames -> message symbols tagged with frame and batch; csi port
  ofdm_csi_tagger      ofdm_e2e_rx's symbols + csi PDUs -> y = h x + w with a `csi` tag per
                       message (for csi_decoder) and per-frame gains for mpa_precoder
  ofdm_subchannel_fading  OFDM samples through block-fading multipath whose response repeats
                       every N carriers (the subchannel families on OFDM), plus noise
measurement
  block_error_counter  sent vs decided uint8 messages -> running BLER (float32),
                       bit errors, and a `metrics` message port
  metric_history       one metric of a `metrics` message stream -> its recent
                       history as a PDU, which a stock QT time sink plots

Tables for a Hamming (7,4) BPSK baseline from stock blocks:
hamming74_symbol_table() (chunks_to_symbols, D = 7) and
hamming74_decoding_table() (map_bb after pack_k_bits_bb(7)).

Every network block takes a gr-e2e .safetensors checkpoint; the inference
blocks accept new weights at run time on their `weights` message port, and
the training blocks publish theirs on a `weights` output.
"""
from .adversarial_source import adversarial_source
from .block_error_counter import block_error_counter
from .channel_capture import channel_capture
from .csi_decoder import csi_decoder
from .hamming74_tables import hamming74_decoding_table, hamming74_symbol_table
from .learned_channel import learned_channel
from .metric_history import metric_history
from .model_free_rx import model_free_rx
from .model_free_tx import model_free_tx
from .mpa_precoder import mpa_precoder
from .nn_decoder import nn_decoder
from .nn_encoder import nn_encoder
from .ofdm_csi_tagger import ofdm_csi_tagger
from .ofdm_e2e_rx import ofdm_e2e_rx
from .ofdm_e2e_tx import ofdm_e2e_tx
from .ofdm_subchannel_fading import ofdm_subchannel_fading
from .simulated_channel import simulated_channel
from .subchannel_fading import subchannel_fading
from .training_source import training_source

__all__ = ["adversarial_source", "block_error_counter", "channel_capture", "csi_decoder", "hamming74_decoding_table",
           "hamming74_symbol_table", "learned_channel", "metric_history", "model_free_rx", "model_free_tx",
           "mpa_precoder", "nn_decoder", "nn_encoder", "ofdm_csi_tagger", "ofdm_e2e_rx", "ofdm_e2e_tx",
           "ofdm_subchannel_fading", "simulated_channel",
           "subchannel_fading", "training_source"]
