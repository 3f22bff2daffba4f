#!/usr/bin/env python3
"""The learned OFDM link against GNU Radio's stock OFDM link on the same simulated radio channel, one run.

Channel (both links, stock blocks): 3-path FIR with a fractional timing
offset (core.ofdm.multipath_taps), a carrier frequency offset (rotator_cc),
AWGN from noise_source_c (which does not repeat). Eb/N0 is per payload bit
with Es = 1 per payload resource element for both links: the stock QPSK
points have energy 4, so the stock transmitter is scaled by 1/2 (its sync
and header symbols, BPSK of energy 1, then sit 6 dB below its payload;
ours carry the payload's energy).

Same spectral efficiency: the stock link sends 96-byte packets (+ CRC32) in
QPSK, 4 payload OFDM symbols; the learned link M = 16, n = 2 (2 bits per
resource element), 192 messages (768 bits) per frame, the same 4 payload
symbols; both have two sync symbols, one header symbol, the same pilots.

  1. stock sweep: examples/ofdm_stock_reference_headless.grc over an Eb/N0
     grid; the Eb/N0 where its frame error rate crosses --target-fer
     (log-linear interpolation) is the operating point.
  2. training 6 dB below that point (--train-offset-db: at the point itself
     a batch holds about one error to learn from), from the same untrained
     link: live model-free
     over the OFDM flowgraph (examples/ofdm_loopback_sim_headless.grc),
     its running BLER against wall time from the receiver's metrics port;
     and offline model-aware through core.ofdm_channel.OfdmCarrierChannel
     (the same channel as the messages see it), BLER on held-out messages
     against training time. One plot.
  3. message and frame error rates over the OFDM flowgraph (ofdm_e2e_tx ->
     channel -> ofdm_e2e_rx) at the operating point for: the live link (its
     decoder, and ML detection on its constellation), the model-aware link,
     uncoded Gray QPSK (the classical scheme at the same rate, through the
     same receiver), all with the same noise; a lost frame counts all its messages
     wrong. The stock link's frame error rate at the same point. Sync counts
     of every run: frames detected, lost, false (delivered with a wrong or
     repeated number).
  4. throughput: the shipped inference chain (nn_encoder -> ofdm_e2e_tx ->
     channel -> ofdm_e2e_rx -> nn_decoder) against stock ofdm_tx -> the same
     channel -> ofdm_rx, same run, samples on the air per second; a
     frame-size sweep of the learned chain; per-block time in the receiver
     (GNU Radio's performance counters, in a subprocess).

Usage: python bench/ofdm_link.py [--quick] [--json bench/out/ofdm_link.json] [--plot bench/out/ofdm_link.png]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M, N_SYM, MPF, FRAMES_PER_BATCH = 16, 2, 192, 2
PACKET_BYTES = MPF * 4 // 8  # the same 768 payload bits per frame
CFO, TIMING = 0.3, 0.37


def log(msg):
    print(msg, flush=True)


# --- flowgraph pieces ---------------------------------------------------------------------------

def channel_chain(tb, noise_amplitude, seed):
    """The simulated radio channel as a list of blocks to chain (the noise enters the last one's port 1)."""
    from gnuradio import analog, blocks, filter as grfilter
    from gnuradio.e2e.core import ofdm
    add = blocks.add_cc()
    tb.connect(analog.noise_source_c(analog.GR_GAUSSIAN, noise_amplitude, seed), (add, 1))
    return [grfilter.fir_filter_ccc(1, ofdm.multipath_taps(fractional_delay=TIMING).tolist()),
            blocks.rotator_cc(ofdm.cfo_phase_increment(CFO, 128)), add]


def air_samples_per_frame(layout, gap_symbols=1):
    return layout.frame_samples + gap_symbols * (layout.fft_len + layout.cp_len)


def errors_over_ofdm(link, frames, ebn0_db, seed=0, mpf=MPF, equalizer="tracking"):
    """Send `frames` frames of random messages of `link` through the OFDM flowgraph; count errors.

    link: object with M, n, transmit(messages [B]) -> complex [B, n] and
    receive(y [B, n], n0) -> messages [B] (core.learned / core.baselines).
    Returns a dict: frames, messages, message_errors, mer, frames_in_error
    (lost, or any message wrong), fer, and the receiver's counters.
    """
    from gnuradio import blocks, e2e, gr
    import pmt
    from gnuradio.e2e.core import snr, theory
    rng = np.random.default_rng(seed)
    sent = rng.integers(0, link.M, (frames + 1, mpf))  # one more frame: the receiver holds a stream's last
    x = np.asarray(link.transmit(sent.reshape(-1)), dtype=np.complex64).reshape(-1)
    tb = gr.top_block()
    tx, rx = e2e.ofdm_e2e_tx(link.n, mpf), e2e.ofdm_e2e_rx(link.n, mpf, equalizer=equalizer)
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(x, False), tx,
               *channel_chain(tb, snr.noise_amplitude(ebn0_db, link.M, link.n), seed + 1), rx, sink)
    tb.run()
    per_frame = mpf * link.n
    y = np.asarray(sink.data(), dtype=np.complex64)
    numbers = [pmt.to_python(t.value) for t in sink.tags() if pmt.symbol_to_string(t.key) == "frame_number"]
    y = y[:len(numbers) * per_frame].reshape(len(numbers), mpf, link.n)
    good = [i for i, f in enumerate(numbers) if 0 <= f < frames]
    false_frames = len(numbers) - len(good) - sum(1 for f in numbers if f == frames)  # the flush frame is real
    distinct = sorted({numbers[i] for i in good})
    false_frames += len(good) - len(distinct)  # a number delivered twice
    first = {}
    for i in good:
        first.setdefault(numbers[i], i)
    idx = [first[f] for f in distinct]
    decided = np.asarray(link.receive(y[idx].reshape(-1, link.n), snr.n0_from_ebn0_db(ebn0_db, link.M, link.n)))
    wrong = (decided.reshape(len(idx), mpf) != sent[distinct]).sum(axis=1)
    lost = frames - len(distinct)
    message_errors = int(wrong.sum()) + lost * mpf
    frames_in_error = int((wrong > 0).sum()) + lost
    c = rx.counters()
    return {"frames": frames, "messages": frames * mpf, "message_errors": message_errors,
            "mer": message_errors / (frames * mpf),
            "mer_ci95": list(theory.wilson_interval(message_errors, frames * mpf, 0.95)),
            "frames_in_error": frames_in_error, "fer": frames_in_error / frames,
            "fer_ci95": list(theory.wilson_interval(frames_in_error, frames, 0.95)),
            "frames_delivered": len(distinct), "frames_lost": lost, "false_frames": false_frames,
            "frames_detected": c["frames_detected"], "headers_failed": c["headers_failed"]}


# --- 1. stock sweep -----------------------------------------------------------------------------

def stock_point(script, ebn0_db, packets, seed):
    out = subprocess.run([sys.executable, script, "-e", str(ebn0_db), "-N", str(packets), "-s", str(seed),
                          "-b", str(PACKET_BYTES)], capture_output=True, text=True, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed at {ebn0_db} dB:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def crossing(points, target):
    """Eb/N0 where the error rate crosses `target`, interpolating log10(rate) linearly between grid points."""
    pts = sorted((p["ebn0_db"], p["fer"]) for p in points)
    for (e0, f0), (e1, f1) in zip(pts, pts[1:]):
        if f0 >= target > f1:
            if f1 <= 0:
                return e1
            a = (math.log10(f0) - math.log10(target)) / (math.log10(f0) - math.log10(f1))
            return e0 + a * (e1 - e0)
    raise RuntimeError(f"the stock frame error rate does not cross {target:g} on the grid: {pts}")


# --- 2. training --------------------------------------------------------------------------------

def train_live(tmp, start, ebn0_db, batches, lr, seed):
    """Live model-free training over the shipped OFDM example; (link path, [(seconds, metrics)], seconds)."""
    import pmt
    from gnuradio import gr
    from gnuradio.e2e import grc_runner
    from gnuradio.e2e.core import checkpoint
    top = grc_runner.compile_and_load(os.path.join(ROOT, "examples", "ofdm_loopback_sim_headless.grc"), tmp)
    paths = {k: os.path.join(tmp, f"{k}.safetensors") for k in ("tx", "rx", "link")}
    tb = top(checkpoint=start, tx_out=paths["tx"], rx_out=paths["rx"], link_out=paths["link"], ebn0_db=ebn0_db,
             num_batches=batches, M=M, n=N_SYM, messages_per_frame=MPF, frames_per_batch=FRAMES_PER_BATCH,
             lr=lr, seed=seed, equalizer="tracking")
    rx = tb.e2e_model_free_rx_0
    seen = []

    class MetricsClock(gr.basic_block):
        """Timestamps each metrics message."""

        def __init__(self):
            gr.basic_block.__init__(self, "metrics_clock", None, None)
            self.message_port_register_in(pmt.intern("in"))
            self.set_msg_handler(pmt.intern("in"), self.handle)

        def handle(self, msg):
            seen.append((time.perf_counter(), pmt.to_python(msg)))

    clock = MetricsClock()
    tb.msg_disconnect((rx, "metrics"), (tb.blocks_message_debug_0, "print"))  # quiet: the curve has them
    tb.msg_connect((rx, "metrics"), (clock, "in"))
    t0 = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - t0
    link = checkpoint.merge_files(paths["tx"], paths["rx"], paths["link"])[0]
    curve = [(t - t0, m) for t, m in seen]
    return link, curve, seconds, tb.e2e_ofdm_e2e_rx_0.counters()


def train_offline(start, channel, ebn0_db, steps, chunks, eval_blocks):
    """Model-aware training through `channel` in chunks; (encoder, decoder, [(train seconds, bler)])."""
    from gnuradio.e2e.core import checkpoint, training
    _, enc, dec = checkpoint.load_link(start)
    untrained = training.validation_errors(enc, dec, channel, ebn0_db, blocks=eval_blocks) / eval_blocks
    curve, spent = [(0.0, untrained)], 0.0
    per_chunk = max(1, steps // chunks)
    for k in range(chunks):
        t0 = time.perf_counter()
        training.train_model_aware(enc, dec, channel, ebn0_db, steps=per_chunk, batch_size=MPF * FRAMES_PER_BATCH,
                                   lr_schedule="constant", seed=1000 + k)
        spent += time.perf_counter() - t0
        errors = training.validation_errors(enc, dec, channel, ebn0_db, blocks=eval_blocks, seed=k)
        curve.append((spent, errors / eval_blocks))
    return enc, dec, curve


def plot_training(path, curves, references, ebn0_db, train_db):
    """curves: {label: ([(seconds, error rate)], messages per estimate)}; references: {label: level}.

    An estimate with no error is drawn as an open triangle at its 95% upper
    bound (3 / messages, the rule of three), not at zero.
    """
    from gnuradio.e2e.core import plots  # noqa: F401  (sets the non-interactive backend)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    for (label, (points, messages)), color in zip(curves.items(), ("C0", "C1")):
        t = [max(x, 0.01) for x, _ in points]
        bound = 3.0 / messages
        y = [b if b > 0 else bound for _, b in points]
        ax.plot(t, y, "-", color=color, label=label)
        ax.plot([a for a, (_, b) in zip(t, points) if b > 0], [b for _, b in points if b > 0], "o", ms=3,
                color=color)
        ax.plot([a for a, (_, b) in zip(t, points) if b == 0], [bound] * sum(b == 0 for _, b in points), "v",
                ms=5, mfc="none", color=color)
    for (label, value), (style, color) in zip(references.items(), (("--", "C0"), ("--", "C1"), ("-.", "C2"),
                                                                  (":", "black"))):
        ax.axhline(value, ls=style, color=color, alpha=0.6, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time of training (s, log)")
    ax.set_ylabel("message error rate")
    ax.set_title(f"M={M}, n={N_SYM}, {MPF} messages/frame, trained at {train_db:.1f} dB, error rates at "
                 f"{ebn0_db:.1f} dB, 3-path + CFO + timing\n"
                 "(open triangles: no error in the estimate's sample, drawn at its 95% bound)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- 4. throughput ------------------------------------------------------------------------------

def learned_chain_rate(link_path, mpf, frames, equalizer="tracking"):
    """Samples on the air per second through the shipped inference chain."""
    from gnuradio import blocks, e2e, gr
    from gnuradio.e2e.core import ofdm
    tb = gr.top_block()
    msgs = np.random.default_rng(0).integers(0, M, mpf * (frames + 1)).astype(np.uint8)
    rx = e2e.ofdm_e2e_rx(N_SYM, mpf, equalizer=equalizer)
    tb.connect(blocks.vector_source_b(msgs, False), e2e.nn_encoder(link_path, M, N_SYM), e2e.ofdm_e2e_tx(N_SYM, mpf),
               *channel_chain(tb, 0.05, 1), rx, e2e.nn_decoder(link_path, M, N_SYM), blocks.null_sink(1))
    t0 = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - t0
    air = (frames + 1) * air_samples_per_frame(ofdm.OfdmLayout(n=N_SYM, messages_per_frame=mpf))
    return {"messages_per_frame": mpf, "equalizer": equalizer, "frames": frames, "seconds": seconds,
            "msps": air / seconds / 1e6,
            "frames_per_s": frames / seconds, "frames_out": rx.counters()["frames_out"]}


def stock_chain_rate(frames):
    """The same with stock ofdm_tx / ofdm_rx (QPSK, PACKET_BYTES packets), the same channel."""
    from gnuradio import blocks, digital, gr
    from gnuradio.e2e.core import ofdm
    data, pilots = ofdm.default_carriers(128)
    tb = gr.top_block()
    payload = np.random.RandomState(0).randint(0, 256, (frames + 1) * PACKET_BYTES).astype(np.uint8)
    common = dict(fft_len=128, cp_len=16, occupied_carriers=(list(data),), pilot_carriers=(list(pilots),),
                  pilot_symbols=((1, 1, 1, -1),), bps_header=1, bps_payload=2, scramble_bits=False)
    tx = digital.ofdm_tx(packet_length_tag_key="packet_len", rolloff=0, **common)
    rx = digital.ofdm_rx(frame_length_tag_key="frame_len", packet_length_tag_key="rx_len", **common)
    sink = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(payload, False),
               blocks.stream_to_tagged_stream(1, 1, PACKET_BYTES, "packet_len"), tx,
               blocks.multiply_const_cc(0.5 / np.sqrt(128)),  # payload Es = 1: the stock QPSK points have energy 4
               digital.burst_shaper_cc([], 0, 144, False, "packet_len"), *channel_chain(tb, 0.05, 1), rx, sink)
    t0 = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - t0
    symbols = 3 + math.ceil((PACKET_BYTES + 4) * 8 / 2 / len(data)) + 1  # sync, header, payload, gap
    air = (frames + 1) * symbols * 144
    return {"packet_bytes": PACKET_BYTES, "frames": frames, "seconds": seconds, "msps": air / seconds / 1e6,
            "frames_per_s": frames / seconds, "packets_out": len(sink.data()) // PACKET_BYTES}


def profile_receiver(mpf, frames):
    """Worker (own process, performance counters on): time inside each block of the learned receiver chain."""
    from gnuradio import blocks, e2e, gr
    recorded = []
    connect = gr.hier_block2.connect

    def recording(self, *args):  # the hier blocks keep no list of their members: note them as they connect
        for a in args:
            b = a[0] if isinstance(a, tuple) else a
            if b is not self and all(b is not r for r in recorded):
                recorded.append(b)
        return connect(self, *args)

    gr.hier_block2.connect = recording
    link = os.environ["E2E_BENCH_LINK"]
    msgs = np.random.default_rng(0).integers(0, M, mpf * (frames + 1)).astype(np.uint8)
    tb = gr.top_block()
    air = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_b(msgs, False), e2e.nn_encoder(link, M, N_SYM), e2e.ofdm_e2e_tx(N_SYM, mpf), air)
    tb.run()
    recorded.clear()
    tb = gr.top_block()
    rx, dec = e2e.ofdm_e2e_rx(N_SYM, mpf), e2e.nn_decoder(link, M, N_SYM)
    members = list(recorded) + [dec]
    samples = np.asarray(air.data(), dtype=np.complex64)
    tb.connect(blocks.vector_source_c(samples, False), rx, dec, blocks.null_sink(1))
    t0 = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - t0
    per_block = {}
    for b in members:
        try:
            name = b.name() if hasattr(b, "name") else type(b).__name__
            per_block[name] = per_block.get(name, 0.0) + b.pc_work_time_total() / 1e9
        except (AttributeError, RuntimeError):
            continue
    print("PROFILE " + json.dumps({"messages_per_frame": mpf, "frames": frames, "seconds": seconds,
                                   "frames_per_s": frames / seconds, "block_seconds": per_block}))


def run_profile(link, mpf, frames):
    env = dict(os.environ, GR_CONF_PERFCOUNTERS_ON="True", GR_CONF_PERFCOUNTERS_EXPORT="False",
               E2E_BENCH_LINK=link)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--profile-worker", str(mpf), str(frames)],
                         capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("PROFILE ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"profile worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("PROFILE "):])


# --- main ---------------------------------------------------------------------------------------

SIZES = {  # full run, and --quick (the tests: the same code, small)
    "full": dict(grid=(20.0, 22.0, 23.0, 24.0, 25.0, 26.0), stock_packets=5000, batches=3000, offline_steps=3000,
                 offline_eval=50_000, eval_frames=10_000, tp_frames=4000, sweep=(192, 555, 1110),
                 profile_frames=2000),
    "quick": dict(grid=(18.0, 22.0, 26.0), stock_packets=300, batches=200, offline_steps=200,
                  offline_eval=2000, eval_frames=200, tp_frames=300, sweep=(192,), profile_frames=200),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (what the tests run)")
    ap.add_argument("--target-fer", type=float, default=1e-2)
    ap.add_argument("--ebn0-db", type=float, default=None, help="operating point (default: from the stock sweep)")
    ap.add_argument("--lr", type=float, default=5e-3, help="live training's learning rate")
    ap.add_argument("--train-offset-db", type=float, default=-6.0,
                    help="train at the operating point plus this (dB): below it, errors are frequent enough to "
                         "learn from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "out", "ofdm_link.json"))
    ap.add_argument("--plot", default=os.path.join(ROOT, "bench", "out", "ofdm_link.png"))
    ap.add_argument("--profile-worker", nargs=2, type=int, metavar=("MPF", "FRAMES"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.profile_worker:
        profile_receiver(*a.profile_worker)
        return 0

    import torch
    from gnuradio.e2e import grc_runner
    from gnuradio.e2e.core import baselines, checkpoint, config, learned, models, ofdm, ofdm_channel, training
    torch.set_num_threads(1)
    size = SIZES["quick" if a.quick else "full"]
    layout = ofdm.OfdmLayout(n=N_SYM, messages_per_frame=MPF)
    result = {"M": M, "n": N_SYM, "messages_per_frame": MPF, "packet_bytes": PACKET_BYTES,
              "payload_symbols": layout.frame_symbols, "bits_per_occupied_element": layout.efficiency(4),
              "cfo_carrier_spacings": CFO, "timing_offset_samples": TIMING, "equalizer": "tracking"}
    with tempfile.TemporaryDirectory() as tmp:
        # 1. the stock link's operating point
        grc_runner.compile_and_load(os.path.join(ROOT, "examples", "ofdm_stock_reference_headless.grc"), tmp)
        script = os.path.join(tmp, "ofdm_stock_reference_headless.py")
        stock = []
        for e in size["grid"]:
            r = stock_point(script, e, size["stock_packets"], a.seed)
            stock.append({"ebn0_db": e, "fer": r["packet_error_rate"], "packets": r["packets_sent"],
                          "intact": r["packets_intact"]})
            log(f"stock OFDM QPSK {e:5.1f} dB: frame error rate {stock[-1]['fer']:.4f} "
                f"({r['packets_intact']} of {r['packets_sent']} intact)")
        ebn0 = a.ebn0_db if a.ebn0_db is not None else round(crossing(stock, a.target_fer), 2)
        at_point = stock_point(script, ebn0, size["stock_packets"] * 2, a.seed + 7)
        result["stock_sweep"], result["ebn0_db"] = stock, ebn0
        result["stock_at_point"] = {"fer": at_point["packet_error_rate"], "packets": at_point["packets_sent"]}
        log(f"operating point {ebn0:.2f} dB: stock frame error rate {at_point['packet_error_rate']:.4f} "
            f"over {at_point['packets_sent']} packets")

        # 2. training
        cfg = config.LinkConfig(M=M, n=N_SYM)
        start = os.path.join(tmp, "start.safetensors")
        checkpoint.save_link(start, cfg, *models.build(cfg, seed=a.seed))
        train_db = ebn0 + a.train_offset_db
        result["train_ebn0_db"] = train_db
        live_link, live_curve, live_s, live_rx = train_live(tmp, start, train_db, size["batches"], a.lr, a.seed)
        log(f"live training: {size['batches']} batches in {live_s:.1f} s; OFDM receiver {live_rx}")
        channel = ofdm_channel.OfdmCarrierChannel(layout, ofdm.multipath_taps(fractional_delay=TIMING))
        enc, dec, offline_curve = train_offline(start, channel, train_db, size["offline_steps"], 20,
                                                eval_blocks=size["offline_eval"])
        log(f"offline model-aware: {size['offline_steps']} steps in {offline_curve[-1][0]:.1f} s")
        offline_link = os.path.join(tmp, "offline.safetensors")
        checkpoint.save_link(offline_link, cfg, enc, dec)

        # 3. error rates over the OFDM flowgraph at the operating point
        qpsk = baselines.uncoded_link(4, "qpsk")
        live_enc, live_dec = checkpoint.load_link(live_link)[1:]
        links = {"live model-free": (learned.LearnedLink(live_enc, live_dec), "tracking"),
                 "live model-free, ML detection": (learned.LearnedLink(live_enc, detector="ml"), "tracking"),
                 "offline model-aware": (learned.LearnedLink(enc, dec), "tracking"),
                 "uncoded Gray QPSK": (qpsk, "tracking"),
                 "uncoded Gray QPSK, static one-tap": (qpsk, "one-tap")}
        over = {}
        for name, (link, equalizer) in links.items():
            # One seed for all: the same noise, so the same frames meet the same sync and estimates (paired).
            over[name] = errors_over_ofdm(link, size["eval_frames"], ebn0, seed=a.seed + 100, equalizer=equalizer)
            r = over[name]
            log(f"{name:>34}: MER {r['mer']:.2e} [{r['mer_ci95'][0]:.1e}, {r['mer_ci95'][1]:.1e}]  "
                f"FER {r['fer']:.2e}  frames lost {r['frames_lost']}/{r['frames']}  false {r['false_frames']}")
        ch_bler = {name: training.validation_errors(*pair, channel, train_db, blocks=200_000, seed=99) / 200_000
                   for name, pair in (("live model-free", checkpoint.load_link(live_link)[1:]),
                                      ("offline model-aware", (enc, dec)))}
        result.update(live_seconds=live_s, live_receiver=live_rx, over_ofdm=over, carrier_channel_bler=ch_bler,
                      live_curve=[(t, m.get("bler")) for t, m in live_curve], offline_curve=offline_curve)
        log(f"the trained links through OfdmCarrierChannel at the training Eb/N0 (200000 messages): {ch_bler}")
        live_points = [(t, m["bler"]) for t, m in live_curve if m.get("bler") is not None
                       and not math.isnan(m["bler"])]
        window = 10 * MPF * FRAMES_PER_BATCH  # model_free_rx's running BLER: its last 10 receiver batches
        plot_training(a.plot, {
            "live model-free over the OFDM flowgraph (running BLER)": (live_points, window),
            "offline model-aware through OfdmCarrierChannel (held-out BLER)": (offline_curve, size["offline_eval"]),
        }, {f"{name} over the OFDM flowgraph ({over[name]['mer']:.1e})": over[name]["mer"]
            for name in ("live model-free", "offline model-aware", "uncoded Gray QPSK")}
           | {f"stock ofdm_rx frame error rate ({at_point['packet_error_rate']:.1e})":
              at_point["packet_error_rate"]}, ebn0, train_db)

        # 4. throughput, same run
        learned_tp = [learned_chain_rate(live_link, mpf, max(200, size["tp_frames"] * MPF // mpf))
                      for mpf in size["sweep"]]
        learned_tp.append(learned_chain_rate(live_link, MPF, size["tp_frames"], equalizer="one-tap"))
        stock_tp = stock_chain_rate(size["tp_frames"])
        ratio = learned_tp[0]["msps"] / stock_tp["msps"]
        for r in learned_tp:
            log(f"learned chain, {r['messages_per_frame']} messages/frame, {r['equalizer']}: {r['msps']:.2f} MS/s, "
                f"{r['frames_per_s']:.0f} frames/s")
        log(f"stock chain, {PACKET_BYTES}-byte packets: {stock_tp['msps']:.2f} MS/s, "
            f"{stock_tp['frames_per_s']:.0f} frames/s; learned / stock at the same frame size: {ratio:.2f}")
        profile = run_profile(live_link, MPF, size["profile_frames"])
        top = sorted(profile["block_seconds"].items(), key=lambda kv: -kv[1])[:6]
        log(f"receiver chain alone: {profile['frames_per_s']:.0f} frames/s; time in blocks over "
            f"{profile['seconds']:.2f} s wall: " + ", ".join(f"{k} {v:.2f} s" for k, v in top))
        result.update(throughput={"learned": learned_tp, "stock": stock_tp, "ratio": ratio}, profile=profile)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
