#!/usr/bin/env python3
"""Throughput of nn_decoder against the stock C++ chain, in the same run.

  learned:  vector_source -> head -> chunks_to_symbols(learned table, D=n)
            -> e2e.nn_decoder -> null_sink
  stock:    vector_source -> head -> chunks_to_symbols(QPSK)
            -> digital.constellation_decoder_cb(QPSK) -> null_sink

Both are timed alternately, several trials each; the figure of merit is the
ratio of decoded complex symbols per second (learned / stock), because
absolute rates on a shared machine are noise. One torch thread.
The learned transmitter is the encoder exported as a lookup table for the
stock chunks_to_symbols block: the fast C++ path for a trained encoder.

Usage: python bench/throughput.py [--checkpoint X] [--symbols 2e7] [--trials 3]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from gnuradio import blocks, digital, gr

from gnuradio import e2e
from gnuradio.e2e.core import channels, checkpoint, training
from gnuradio.e2e.core.config import LinkConfig


def train_quick(path, decoder_hidden):
    cfg = LinkConfig(M=16, n=7, mode="complex", decoder_hidden=decoder_hidden)
    enc, dec, _ = training.fit_link(cfg, channels.AWGN(), (0.0, 8.0), steps=500, batch_size=1000)
    return checkpoint.save_link(path, cfg, enc, dec)


def learned_chain(ckpt, messages, buffer_items, batch_messages):
    cfg, enc = checkpoint.load_network(ckpt, "encoder")
    tb = gr.top_block()
    src = blocks.vector_source_b(messages.tolist(), True)
    head = blocks.head(gr.sizeof_char, len(messages))
    c2s = digital.chunks_to_symbols_bc(enc.symbol_table().reshape(-1).tolist(), cfg.n)
    dec = e2e.nn_decoder(ckpt, cfg.M, cfg.n, batch_messages=batch_messages)
    if buffer_items:
        c2s.set_min_output_buffer(buffer_items)
    sink = blocks.null_sink(gr.sizeof_char)
    tb.connect(src, head, c2s, dec, sink)
    return tb, len(messages) * cfg.n


def stock_chain(symbols, n_symbols, buffer_items):
    qpsk = digital.constellation_qpsk()
    tb = gr.top_block()
    src = blocks.vector_source_b(symbols.tolist(), True)
    head = blocks.head(gr.sizeof_char, n_symbols)
    c2s = digital.chunks_to_symbols_bc(qpsk.points(), 1)
    if buffer_items:
        c2s.set_min_output_buffer(buffer_items)
    dec = digital.constellation_decoder_cb(qpsk.base())
    sink = blocks.null_sink(gr.sizeof_char)
    tb.connect(src, head, c2s, dec, sink)
    return tb, n_symbols


def timed(build):
    tb, symbols = build()
    t0 = time.perf_counter()
    tb.run()
    return symbols / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[],
                   help="checkpoint(s) to bench; default: train (16,7) links with decoders (16,) and (64,64)")
    p.add_argument("--symbols", type=float, default=2e7, help="complex symbols per trial")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--buffer", type=int, default=0,
                   help="min output buffer (items) of chunks_to_symbols; 0 = GNU Radio's default")
    p.add_argument("--batch", type=int, action="append", default=[],
                   help="nn_decoder batch_messages to try (repeatable); default: 1, 4096, 16384")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="e2e-bench-")
    ckpts = args.checkpoint or [train_quick(os.path.join(tmp, f"dec{h}.safetensors"), h)
                                for h in ((16,), (64, 64))]
    n_sym = int(args.symbols)
    stock_syms = rng.integers(0, 4, 1 << 16).astype(np.uint8)
    results = []
    for ckpt in ckpts:
        cfg = checkpoint.load_network(ckpt, "encoder")[0]
        messages = rng.integers(0, cfg.M, 1 << 16).astype(np.uint8)
        for batch in args.batch or [1, 4096, 16384]:
            # Whole batches only, so a batch > 1 decodes every message of the run.
            n_msg = (n_sym // cfg.n) // batch * batch
            learned, stock = [], []
            for _ in range(args.trials):  # alternate so both see the same machine load
                stock.append(timed(lambda: stock_chain(stock_syms, n_sym, args.buffer)))
                learned.append(timed(lambda: learned_chain(ckpt, np.resize(messages, n_msg), args.buffer, batch)))
            r = {"checkpoint": ckpt, "M": cfg.M, "n": cfg.n, "decoder_hidden": list(cfg.decoder_hidden),
                 "batch_messages": batch, "learned_msym_per_s": statistics.median(learned) / 1e6,
                 "stock_msym_per_s": statistics.median(stock) / 1e6}
            r["ratio"] = r["learned_msym_per_s"] / r["stock_msym_per_s"]
            results.append(r)
            print(f"decoder hidden {cfg.decoder_hidden}, batch_messages {batch}: "
                  f"nn_decoder {r['learned_msym_per_s']:.2f} Msym/s, stock QPSK constellation_decoder "
                  f"{r['stock_msym_per_s']:.2f} Msym/s, ratio {r['ratio']:.3f}", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
