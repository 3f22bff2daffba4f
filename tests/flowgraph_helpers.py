"""Blocks for flowgraph tests: channel faults and messages posted at a known point of a stream.

sample_faults(faults): a complex64 block that loses or repeats chunks of
    samples. faults: list of (input offset, count): count > 0 drops `count`
    samples starting at that input offset; count < 0 repeats the -count
    samples starting there (a duplicated chunk). Stream tags stay on the
    samples they were attached to (a dropped sample's tags are lost with
    it), as over a radio link that loses or repeats samples.
post_at(dtype, at_item, target, port, messages): a pass-through block that
    posts `messages` to `target`'s message port when item `at_item` passes.
    Put it downstream of the target: the target has then produced at least
    at_item items, and handles the messages before its next work() call, so
    they act after that point, and at most a buffer later. A finite
    flowgraph so tests a mid-run message without polling a clock.
call_at(dtype, at_item, fn): a pass-through block that calls fn() once when
    item `at_item` passes (a setter mid-stream, without polling a clock).
compile_examples(root, names): an examples/ folder under root holding the
    scripts grcc generates from the repository's examples/NAME.grc.
run_gui_offscreen(script, kwargs, result, ...): a generated QT flowgraph run
    headless in a fresh process; returns a JSON value read from its top block.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pmt
from gnuradio import gr


class sample_faults(gr.basic_block):
    def __init__(self, faults):
        gr.basic_block.__init__(self, name="sample_faults", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self._faults = sorted((int(o), int(c)) for o, c in faults)
        self.dropped = self.repeated = 0

    def forecast(self, noutput_items, ninputs):
        return [1] * ninputs

    def general_work(self, input_items, output_items):
        x, out = input_items[0], output_items[0]
        start = self.nitems_read(0)
        # Work up to the next fault (or the end of the window), then apply it alone.
        fault = next(((o, c) for o, c in self._faults if o >= start), None)
        if fault is None or fault[0] >= start + len(x):
            k = min(len(x), len(out))
            self._copy(x, out, 0, k, start)
            self.consume(0, k)
            return k
        offset, count = fault
        if offset > start:
            k = min(offset - start, len(out))
            self._copy(x, out, 0, k, start)
            self.consume(0, k)
            return k
        if count > 0:  # drop: consume without producing
            k = min(count, len(x))
            self.dropped += k
            self._faults.remove(fault)
            if k < count:
                self._faults.append((offset + k, count - k))
                self._faults.sort()
            self.consume(0, k)
            return 0
        k = min(-count, len(x), len(out))  # repeat: produce without consuming
        out[:k] = x[:k]
        self.repeated += k
        self._faults.remove(fault)
        return k

    def _copy(self, x, out, lo, hi, start):
        out[lo:hi] = x[lo:hi]
        written = self.nitems_written(0)
        for t in self.get_tags_in_window(0, lo, hi):
            self.add_item_tag(0, written + t.offset - start, t.key, t.value, t.srcid)


class call_at(gr.sync_block):
    def __init__(self, dtype, at_item, fn):
        gr.sync_block.__init__(self, name="call_at", in_sig=[dtype], out_sig=[dtype])
        self._at, self._fn, self.called = int(at_item), fn, False

    def work(self, input_items, output_items):
        k = len(output_items[0])
        output_items[0][:] = input_items[0][:k]
        start = self.nitems_read(0)
        if not self.called and start <= self._at < start + k:
            self._fn()
            self.called = True
        return k


def compile_examples(root, names):
    """root/examples/ with the scripts grcc writes from the repository's examples/NAME (each a .grc); returns root."""
    repo_examples = pathlib.Path(__file__).resolve().parents[1] / "examples"
    (root / "examples").mkdir(exist_ok=True)
    for name in names:
        subprocess.run(["grcc", "-o", str(root / "examples"), str(repo_examples / name)],
                       check=True, capture_output=True, timeout=100)
    return root


class post_at(gr.sync_block):
    def __init__(self, dtype, at_item, target, port, messages):
        gr.sync_block.__init__(self, name="post_at", in_sig=[dtype], out_sig=[dtype])
        self._at, self._target, self._port, self._messages = int(at_item), target, pmt.intern(port), list(messages)
        self.posted = False

    def work(self, input_items, output_items):
        k = len(output_items[0])
        output_items[0][:] = input_items[0][:k]
        start = self.nitems_read(0)
        if not self.posted and start <= self._at < start + k:
            for msg in self._messages:
                self._target._post(self._port, msg)
            self.posted = True
        return k


def run_gui_offscreen(script, kwargs, result, until="True", close=False, timeout=150):
    """Run a grcc-generated QT flowgraph to its end in a fresh process with QT_QPA_PLATFORM=offscreen.

    script: the generated .py (its class has the file's name); kwargs: the
    top block's parameters (Python literals). After the flowgraph ends, Qt
    events are processed until the expression `until` (on `tb`) holds, 10 s
    at most, so probes and labels catch up. `result`: an expression on `tb`
    whose JSON value is returned. close: close the window (which runs the
    flowgraph's stop snippets) instead of only stopping the top block.
    """
    name = pathlib.Path(script).stem
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    driver = f"""
import importlib.util, json, sys, time
from PyQt5 import Qt
app = Qt.QApplication(sys.argv)
spec = importlib.util.spec_from_file_location({name!r}, {str(script)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = module.{name}({args})
tb.start()
tb.show()
tb.wait()
t0 = time.time()
while not ({until}) and time.time() - t0 < 10:
    app.processEvents()
    time.sleep(0.05)
print("RESULT " + json.dumps({result}))
if {close!r}:
    tb.close()
else:
    tb.stop()
    tb.wait()
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0].replace("NaN", "null"))


# --- two flowgraph processes on loopback (the ZMQ examples) ---------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def run_process_pair(rx_cmd, tx_cmd, loss_port, rx_timeout, log_dir):
    """Run a receiver script until it exits by itself, with a transmitter beside it stopped by SIGTERM.

    The transmitter starts once the receiver has bound its loss socket
    (`loss_port`, in its constructor): a throttle that starts before anyone
    listens bursts to catch up, and the transmitter batches of the burst
    expire before their losses come back. Both must exit 0.
    Returns (receiver output, transmitter output, seconds from the
    transmitter's start to the receiver's exit).
    """
    import signal
    import time
    rx_log, tx_log = open(log_dir / "rx.log", "w+"), open(log_dir / "tx.log", "w+")
    rx = subprocess.Popen(rx_cmd, stdout=rx_log, stderr=subprocess.STDOUT)
    tx = None
    try:
        deadline = time.monotonic() + 60
        while not port_open(loss_port):
            assert rx.poll() is None and time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.1)
        t0 = time.monotonic()
        tx = subprocess.Popen(tx_cmd, stdout=tx_log, stderr=subprocess.STDOUT)
        assert rx.wait(rx_timeout) == 0
        elapsed = time.monotonic() - t0
        assert tx.poll() is None, "the transmitter ended before it was told to"
        tx.send_signal(signal.SIGTERM)
        assert tx.wait(30) == 0
    finally:
        _kill(rx)
        if tx is not None:
            _kill(tx)
    rx_log.seek(0)
    tx_log.seek(0)
    return rx_log.read(), tx_log.read(), elapsed
