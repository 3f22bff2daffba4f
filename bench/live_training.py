#!/usr/bin/env python3
"""Live model-free training in the flowgraph against the offline trainer, same run.

  live:     examples/model_free_awgn_headless.grc (compiled by grcc):
            training_source -> model_free_tx -> noise -> model_free_rx, loss port
            back to the transmitter, simulation (blocking) mode
  offline:  core.model_free.train_model_free over core.channels.AWGN, the
            same recipe (ModelFreeParams), batch size and starting weights

Both train from the same freshly initialised (M, n) link for the same number
of batches. Printed: batches/s of each and the flowgraph's overhead ratio
(offline / live), the BLER of each trained link at the training Eb/N0
(core evaluation.evaluate_bler, Wilson 95% interval), and whether the live
link got below --target BLER within --budget-s seconds of wall time (the
issue's "quick config" bar). One torch thread.

Usage: python bench/live_training.py [--ebn0-db 6] [--batches 3000] [--batch-size 500]
                                     [--json out.json]
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch

from gnuradio.e2e import grc_runner
from gnuradio.e2e.core import channels, checkpoint, config, evaluation, learned, model_free, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bler(enc, dec, ebn0_db, blocks):
    p = evaluation.evaluate_bler(learned.LearnedLink(enc, dec), [ebn0_db], min_errors=10 ** 9,
                                 max_blocks=blocks, seed=11)[0]
    return p["bler"], p["bler_ci95"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--ebn0-db", type=float, default=6.0)
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-blocks", type=int, default=200_000)
    ap.add_argument("--target", type=float, default=1e-2)
    ap.add_argument("--budget-s", type=float, default=120.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = config.LinkConfig(M=a.M, n=a.n, mode="complex")
    params = model_free.ModelFreeParams(batch_size=a.batch_size, lr=a.lr, seed=a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, f"{k}.safetensors") for k in ("start", "tx", "rx", "link")}
        checkpoint.save_link(paths["start"], cfg, *models.build(cfg, seed=a.seed))
        top = grc_runner.compile_and_load(os.path.join(ROOT, "examples", "model_free_awgn_headless.grc"), tmp)
        tb = top(checkpoint=paths["start"], tx_out=paths["tx"], rx_out=paths["rx"], link_out=paths["link"],
                 ebn0_db=a.ebn0_db, num_batches=a.batches, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                 M=a.M, n=a.n)
        tb.msg_disconnect((tb.e2e_model_free_rx_0, "metrics"), (tb.blocks_message_debug_0, "print"))
        t0 = time.perf_counter()
        tb.run()
        live_s = time.perf_counter() - t0
        _, enc, dec = checkpoint.load_link(checkpoint.merge_files(paths["tx"], paths["rx"], paths["link"])[0])
        live_bler, live_ci = bler(enc, dec, a.ebn0_db, a.eval_blocks)

        _, enc, dec = checkpoint.load_link(paths["start"])
        t0 = time.perf_counter()
        model_free.train_model_free(enc, dec, channels.AWGN(), a.ebn0_db, params, batches=a.batches)
        offline_s = time.perf_counter() - t0
        offline_bler, offline_ci = bler(enc, dec, a.ebn0_db, a.eval_blocks)
    result = {
        "M": a.M, "n": a.n, "ebn0_db": a.ebn0_db, "batches": a.batches, "batch_size": a.batch_size,
        "live_s": live_s, "live_batches_per_s": a.batches / live_s,
        "offline_s": offline_s, "offline_batches_per_s": a.batches / offline_s,
        "overhead_ratio": live_s / offline_s,
        "live_bler": live_bler, "live_bler_ci95": live_ci,
        "offline_bler": offline_bler, "offline_bler_ci95": offline_ci,
        "transmitter_steps": tb.e2e_model_free_tx_0.training_counters()["transmitter_steps"],
        "quick_config_bar": bool(live_bler < a.target and live_s < a.budget_s),
    }
    print(f"live flowgraph: {result['live_batches_per_s']:.0f} batches/s ({live_s:.1f} s), "
          f"BLER {live_bler:.2e} [{live_ci[0]:.2e}, {live_ci[1]:.2e}]")
    print(f"offline trainer: {result['offline_batches_per_s']:.0f} batches/s ({offline_s:.1f} s), "
          f"BLER {offline_bler:.2e} [{offline_ci[0]:.2e}, {offline_ci[1]:.2e}]")
    print(f"flowgraph overhead ratio (live time / offline time): {result['overhead_ratio']:.2f}")
    print(f"quick config (BLER < {a.target:g} within {a.budget_s:g} s at {a.ebn0_db:g} dB): "
          f"{'met' if result['quick_config_bar'] else 'NOT met'}")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["quick_config_bar"] else 1


if __name__ == "__main__":
    sys.exit(main())
