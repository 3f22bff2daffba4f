#!/usr/bin/env python3
"""Where nn_decoder's time goes, in the same chain as bench/throughput.py.

Three measurements, each with one torch thread:
  1. the decoder network alone (no GNU Radio), batch after batch, at several
     batch sizes: the compute ceiling;
  2. a no-op Python decim block in the flowgraph: the cost GNU Radio's Python
     gateway and scheduler put on every work() call, whatever it computes;
  3. nn_decoder in the flowgraph, instrumented: messages per work() call and
     the share of wall time spent inside work().

Usage: python bench/profile_decoder.py [--checkpoint X] [--messages 2e6]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from gnuradio import blocks, digital, gr

from gnuradio import e2e
from gnuradio.e2e.core import checkpoint
from gnuradio.e2e.core.models import decide, interleaved_decoder, received_tensor
from gnuradio.e2e.nn_decoder import network_decoder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput import train_quick  # noqa: E402  (bench/ is not a package)


class NoopDecim(gr.decim_block):
    """Consumes n symbols per output byte and computes nothing."""

    def __init__(self, n):
        gr.decim_block.__init__(self, "noop_decim", [np.complex64], [np.uint8], n)
        self.calls = 0

    def work(self, input_items, output_items):
        self.calls += 1
        return len(output_items[0])


def timed_decoder(checkpoint, M, n, batch_messages, input_buffer=True):
    """nn_decoder (or, input_buffer=False, its network block alone) whose network block records
    messages per work() call (.sizes) and seconds inside work() (.busy)."""
    block = e2e.nn_decoder(checkpoint, M, n, batch_messages=batch_messages) if input_buffer else \
        network_decoder(checkpoint, M, n, batch_messages=batch_messages)
    network = block.network if input_buffer else block
    block.sizes, block.busy, work = [], 0.0, network.work

    def timed_work(input_items, output_items):
        t0 = time.perf_counter()
        k = work(input_items, output_items)
        block.busy += time.perf_counter() - t0
        block.sizes.append(k)
        return k
    network.work = timed_work
    return block


def chain(table, n, messages, decoder):
    tb = gr.top_block()
    src = blocks.vector_source_b(np.resize(np.arange(len(table) // n, dtype=np.uint8), 1 << 16).tolist(), True)
    tb.connect(src, blocks.head(gr.sizeof_char, messages), digital.chunks_to_symbols_bc(table, n),
               decoder, blocks.null_sink(gr.sizeof_char))
    t0 = time.perf_counter()
    tb.run()
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="", help="default: train a (16,7) link with a (16,) decoder")
    p.add_argument("--messages", type=float, default=2e6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ckpt = args.checkpoint or train_quick(os.path.join(tempfile.mkdtemp(), "link.safetensors"), (16,))
    cfg, enc, dec = checkpoint.load_link(ckpt)
    n, msgs = cfg.n, int(args.messages)
    table = enc.symbol_table().reshape(-1).tolist()

    print(f"decoder {cfg.decoder_hidden}, M={cfg.M}, n={n}")
    fast = interleaved_decoder(dec)
    print("1. network alone, as nn_decoder runs it (complex64 buffer read in place, forward, decide):")
    rng = np.random.default_rng(0)
    for k in (512, 1024, 4096, 16384):
        y = (rng.standard_normal((k, n)) + 1j * rng.standard_normal((k, n))).astype(np.complex64)
        reps = max(3, 200_000 // k)
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(reps):
                decide(fast(torch.from_numpy(y.view(np.float32))) if fast else dec(received_tensor(y))).numpy()
            dt = (time.perf_counter() - t0) / reps
        print(f"   batch {k:6d}: {dt * 1e6:8.0f} us per batch, {k * n / dt / 1e6:6.1f} Msym/s")

    print("2. no-op Python decim block in the chain (pure per-call cost):")
    for batch in (1, 4096, 16384):
        noop = NoopDecim(n)
        if batch > 1:
            noop.set_output_multiple(batch)
        m = msgs // batch * batch
        dt = chain(table, n, m, noop)
        print(f"   output multiple {batch:6d}: {m * n / dt / 1e6:6.1f} Msym/s, {noop.calls} calls, "
              f"{dt / noop.calls * 1e6:.0f} us per call, {m / noop.calls:.0f} messages per call")

    print("3. nn_decoder in the chain (and its network block alone, behind the default buffer):")
    for batch, input_buffer in ((1, False), (1, True), (16384, True)):
        d = timed_decoder(ckpt, cfg.M, n, batch, input_buffer)
        m = msgs // batch * batch
        dt = chain(table, n, m, d)
        label = "nn_decoder" if input_buffer else "network block alone"
        print(f"   {label:19s} batch_messages {batch:6d}: {m * n / dt / 1e6:6.1f} Msym/s, median "
              f"{int(np.median(d.sizes))} (max {max(d.sizes)}) messages per call, "
              f"{100 * d.busy / dt:.0f}% of wall time in work()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
