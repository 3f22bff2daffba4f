"""Every gr-e2e block runs when the script keeps no reference to it (blocks built inline in connect).

GNU Radio 3.10.5 holds a Python block by a non-owning handle; without
block_common.keep_alive such a block is garbage-collected while the
scheduler calls it and the process segfaults (it did, in about 4 runs of 5,
for nn_encoder -> ofdm_e2e_tx built inline). Each flowgraph runs in its own
process, after a forced garbage collection, so a crash fails one test
instead of killing pytest.
"""
import subprocess
import sys

import pytest

INFERENCE = """
import gc, numpy as np
from gnuradio import blocks, e2e, gr
tb = gr.top_block()
messages = blocks.vector_source_b(np.random.default_rng(0).integers(0, 16, 192 * 30).tolist(), False)
sent = blocks.vector_source_b(np.random.default_rng(0).integers(0, 16, 192 * 29).tolist(), False)
counter = e2e.block_error_counter()
tb.connect(messages, e2e.nn_encoder(CKPT, 16, 7), e2e.ofdm_e2e_tx(7, 192), e2e.ofdm_e2e_rx(7, 192),
           e2e.nn_decoder(CKPT, 16, 7), (counter, 1))
tb.connect(sent, (counter, 0))
tb.connect(counter, blocks.null_sink(gr.sizeof_float))
gc.collect()
tb.run()
print("RESULT", counter.blocks(), counter.bler())
"""

TRAINING = """
import gc
from gnuradio import analog, blocks, e2e, gr
tb = gr.top_block()
add = blocks.add_cc()
rx = e2e.model_free_rx(CKPT, 16, 7, batch_size=100)
tx = e2e.model_free_tx(CKPT, 16, 7, batch_size=100)
tb.connect(e2e.training_source(16, 100, 0, num_batches=40), tx, add, rx, blocks.null_sink(gr.sizeof_char))
tb.connect(analog.noise_source_c(analog.GR_GAUSSIAN, 0.3, 1), (add, 1))
tb.msg_connect(rx, "loss", tx, "loss")
del rx, tx
gc.collect()
tb.run()
print("RESULT", 40)
"""

CHANNELS = """
import gc, os, tempfile
from gnuradio import e2e, gr
from gnuradio.e2e.core import channel_dataset, channel_gan
folder = tempfile.mkdtemp()
model, pairs = os.path.join(folder, "channel_model.safetensors"), os.path.join(folder, "pairs.safetensors")
cfg = channel_gan.ChannelModelConfig(n=7)
channel_gan.save_channel_model(model, cfg, *channel_gan.build_channel_model(cfg, seed=0))
tb = gr.top_block()
enc = e2e.nn_encoder(CKPT, 16, 7)
capture = e2e.channel_capture(pairs, 16, 7, batch_size=100)
tb.connect(e2e.training_source(16, 100, 0, num_batches=30), enc, (capture, 0))
tb.connect(enc, e2e.simulated_channel("pa", 16, 7, 6.0), e2e.learned_channel(model, 16, 7), (capture, 1))
del enc, capture
gc.collect()
tb.run()
print("RESULT", len(channel_dataset.load_dataset(pairs)))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", [INFERENCE, TRAINING, CHANNELS], ids=["inference_and_ofdm", "training", "channels"])
def test_blocks_built_inline_survive_garbage_collection(script, tiny_link):
    code = f"CKPT = {tiny_link.path!r}\n" + script
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    result = proc.stdout.split("RESULT", 1)[1].split()
    if script is INFERENCE:
        # 29 frames of 192 messages decided (the receiver holds the last), through a noiseless channel.
        assert int(result[0]) == 29 * 192 and float(result[1]) == 0.0, result
    if script is CHANNELS:
        assert int(result[0]) == 30 * 100, result  # every message of every batch recorded
