#!/usr/bin/env python3
"""Throughput of nn_decoder against the stock C++ chain, in the same run.

  learned:  vector_source -> head -> chunks_to_symbols(learned table, D=n)
            -> e2e.nn_decoder -> null_sink
  stock:    vector_source -> head -> chunks_to_symbols(QPSK)
            -> digital.constellation_decoder_cb(QPSK) -> null_sink

Both are timed alternately, several trials each; the figure of merit is the
ratio of decoded complex symbols per second (learned / stock), because
absolute rates on a shared machine are noise. One torch thread.

Decoders measured: nn_decoder at its defaults; nn_decoder tuned
(batch_messages=16384); and its network block alone, straight behind
chunks_to_symbols' default buffer (what nn_decoder was before it had an
input buffer). Every run also counts the decided messages of a finite
stream whose length is no multiple of anything, and the roofline: the
decoder network's own compute rate (no GNU Radio), in the same run.
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
from gnuradio.e2e.core.models import decide, interleaved_decoder, received_tensor
from gnuradio.e2e.nn_decoder import FORWARD_MESSAGES, network_decoder


def train_quick(path, decoder_hidden):
    cfg = LinkConfig(M=16, n=7, mode="complex", decoder_hidden=decoder_hidden)
    enc, dec, _ = training.fit_link(cfg, channels.AWGN(), (0.0, 8.0), steps=500, batch_size=1000)
    return checkpoint.save_link(path, cfg, enc, dec)


DECODERS = {  # name -> (block factory, batch_messages)
    "nn_decoder (defaults)": (e2e.nn_decoder, 1),
    "nn_decoder, batch_messages=16384": (e2e.nn_decoder, 16384),
    "network block alone (no input buffer)": (network_decoder, 1),
}


def learned_chain(ckpt, messages, buffer_items, decoder, sink=None):
    """messages (uint8 [count], repeated) -> learned symbols -> decoder -> sink; (top block, symbols)."""
    cfg, enc = checkpoint.load_network(ckpt, "encoder")
    make, batch_messages = DECODERS[decoder]
    tb = gr.top_block()
    src = blocks.vector_source_b(messages.tolist(), True)
    head = blocks.head(gr.sizeof_char, len(messages))
    c2s = digital.chunks_to_symbols_bc(enc.symbol_table().reshape(-1).tolist(), cfg.n)
    dec = make(ckpt, cfg.M, cfg.n, batch_messages=batch_messages)
    if buffer_items:
        c2s.set_min_output_buffer(buffer_items)
    tb.connect(src, head, c2s, dec, sink or blocks.null_sink(gr.sizeof_char))
    return tb, len(messages) * cfg.n


def decoded_of_finite_stream(ckpt, messages, decoder):
    """How many of a finite stream's messages come out decided, and whether they are right (noiseless)."""
    sink = blocks.vector_sink_b()
    tb, _ = learned_chain(ckpt, messages, 0, decoder, sink)
    tb.run()
    out = np.array(sink.data(), dtype=np.uint8)
    return len(out), bool(np.array_equal(out, messages[:len(out)]))


def network_rate(ckpt, batch, seconds=1.0):
    """Symbols per second of the decoder network alone, as nn_decoder runs it, without GNU Radio."""
    cfg, dec = checkpoint.load_network(ckpt, "decoder")
    fast = interleaved_decoder(dec)
    rng = np.random.default_rng(1)
    y = (rng.standard_normal((batch, cfg.n)) + 1j * rng.standard_normal((batch, cfg.n))).astype(np.complex64)
    done, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - t0 < seconds:
            decide(fast(torch.from_numpy(y.view(np.float32))) if fast else dec(received_tensor(y))).numpy()
            done += batch
    return done * cfg.n / (time.perf_counter() - t0)


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
    p.add_argument("--decoder", action="append", default=[], choices=sorted(DECODERS),
                   help="decoders to bench (repeatable); default: all")
    p.add_argument("--finite-messages", type=int, default=1_000_003,
                   help="length of the finite stream whose decided messages are counted")
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
        finite = rng.integers(0, cfg.M, args.finite_messages).astype(np.uint8)
        n_msg = n_sym // cfg.n // 16384 * 16384  # whole batches, so every decoder decodes the whole timed run
        for decoder in args.decoder or list(DECODERS):
            learned, stock, roof = [], [], []
            for _ in range(args.trials):  # alternate so all see the same machine load
                stock.append(timed(lambda: stock_chain(stock_syms, n_sym, args.buffer)))
                learned.append(timed(lambda: learned_chain(ckpt, np.resize(messages, n_msg), args.buffer, decoder)))
                roof.append(network_rate(ckpt, FORWARD_MESSAGES))
            decoded, correct = decoded_of_finite_stream(ckpt, finite, decoder)
            r = {"checkpoint": ckpt, "M": cfg.M, "n": cfg.n, "decoder_hidden": list(cfg.decoder_hidden),
                 "decoder": decoder, "batch_messages": DECODERS[decoder][1],
                 "learned_msym_per_s": statistics.median(learned) / 1e6,
                 "stock_msym_per_s": statistics.median(stock) / 1e6,
                 "network_alone_msym_per_s": statistics.median(roof) / 1e6,
                 "finite_stream_messages": len(finite), "finite_stream_decoded": decoded,
                 "finite_stream_decisions_correct": correct}
            r["ratio"] = r["learned_msym_per_s"] / r["stock_msym_per_s"]
            r["roofline_ratio"] = r["network_alone_msym_per_s"] / r["stock_msym_per_s"]
            results.append(r)
            print(f"decoder hidden {cfg.decoder_hidden}, {decoder}: {r['learned_msym_per_s']:.1f} Msym/s, "
                  f"stock QPSK chain {r['stock_msym_per_s']:.1f} Msym/s, ratio {r['ratio']:.2f} "
                  f"(network alone {r['network_alone_msym_per_s']:.1f} Msym/s: ceiling {r['roofline_ratio']:.2f}); "
                  f"finite stream: {decoded} of {len(finite)} messages decoded"
                  f"{'' if correct else ', WRONG DECISIONS'}", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
