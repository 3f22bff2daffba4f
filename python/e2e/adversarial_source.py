"""adversarial_source: an attacker's perturbation stream, to be added into a channel (GNU Radio block).

    tx -> [channel] -> add -> receiver
     |                  ^
     +-> adversarial_source

The attacks themselves (the universal perturbation, its scaling to a PSR,
the perturbation generator) live in core.attacks, core.perturbation and
core.adversary; this block loads or crafts one at start and plays it out in
step with the transmitted stream.
"""
import collections
import os
import threading
import time

import numpy as np
import pmt
import torch
from gnuradio import gr

from .block_common import METRICS_PORT, dict_message, keep_alive, pmt_kind, validate_sizes
from .core import adversary, attacks, baselines, checkpoint, perturbation, prng, validate
from .core.models import complex_to_real, real_to_complex

MODES = ("universal", "black-box", "generative", "jamming", "off")
FILE_MODES = ("universal", "black-box", "generative")  # the modes that read `source`
JAMMING_MODES = ("complex", "real")
ENABLE_PORT = "enable"
# `source` naming the classical receiver: universal / black-box modes craft on
# the differentiable stand-in of Hamming (7,4)'s soft ML decoder.
HAMMING74_SOURCE = "hamming74"
# What writes the gr-e2e example's attack files (examples/README.md).
ATTACK_FILES_COMMAND = ("`make bench-adversarial`, in the gr-e2e checkout, writes runs/adversarial/regular.safetensors "
                        "(the attacked link), defended.safetensors (a receiver trained against attacks) and "
                        "universal.safetensors (a universal perturbation crafted on the regular link)")


# What work() plays; setters replace the whole tuple (one assignment), and work()
# takes a new one up at the next message boundary.
Settings = collections.namedtuple("Settings", "mode enabled psr_db offset p")


def _missing_hint(mode, M, n):
    """The commands that make a missing `source`, in words (the error when the block cannot start)."""
    if mode == "generative":
        return ("mode 'generative' reads an adversary checkpoint (a perturbation generator, as "
                "core.adversary.save_adversary writes, e.g. the adversary of GAN-based robust training)")
    link = f"`gr_e2e train --M {M} --n {n} --out DIR` writes a link to DIR/checkpoint.safetensors"
    if mode == "black-box":
        return (f"mode 'black-box' reads the attacker's substitute link (crafting on it at start): {link}; "
                "train it with another seed than the attacked link")
    return (f"mode 'universal' reads a perturbation file or a link to craft one on at start: "
            f"{ATTACK_FILES_COMMAND}; or {link}")


def require_attack_files(*paths):
    """Refuse to start a flowgraph whose attack files are missing, naming the command that writes them.

    paths : str, files the flowgraph reads (its checkpoint parameters).
    Raises checkpoint.CheckpointError (a ValueError) '<absolute path>: no such
    file. <command>' for the first missing one; returns None when all exist.
    Used by the adversarial example flowgraphs before their blocks are built,
    so a missing link names `make bench-adversarial` rather than a training
    command.
    """
    for path in paths:
        path = validate.path("path", path, allow_empty=False)
        if not os.path.exists(path):
            raise checkpoint.CheckpointError(os.path.abspath(path), f"no such file. {ATTACK_FILES_COMMAND}")


def parse_enable_message(msg):
    """`enable` message -> bool; ValueError saying what the message was instead.

    Accepted: a PMT bool; a dict with key 'enabled' holding a bool; a pair
    (key . bool) such as GNU Radio's QT toggle buttons send.
    """
    value, what = msg, "a "
    if pmt.is_dict(msg):
        value = pmt.dict_ref(msg, pmt.intern("enabled"), pmt.PMT_NIL)
        what = "a dict whose 'enabled' is a "
    elif pmt.is_pair(msg):
        value, what = pmt.cdr(msg), "a pair whose cdr is a "
    if not pmt.is_bool(value):
        raise ValueError(f"enable message must be a PMT bool, a dict {{enabled: bool}} or a pair "
                         f"(key . bool), got {what}{pmt_kind(value) if value is not pmt.PMT_NIL else 'nothing'}")
    return pmt.to_bool(value)


class adversarial_source(gr.sync_block):
    """An attacker: the transmitted stream in, the perturbation to add to the received stream out.

    Stream alignment. Input item i is symbol i mod n of message i // n (the
    stream is message-aligned at item 0, as nn_encoder's output is). With
    symbol_offset s the perturbation stream is delayed by s symbols with
    respect to the message boundaries:

        universal / black-box:  out[i] = p[(i - s) mod n]
            (message k receives roll(p, s), roll(p, s)[j] = p[(j - s) mod n],
            exactly what core.attacks.Perturbed(base, p, shift=s) adds);
        generative:             out[i] = g[i - s], with g the concatenated
            per-message perturbations G(x_k) (zero for i < s);
        jamming:                i.i.d. Gaussian, the offset changes nothing.

    With s = 0, adding the output to the channel output is exactly the
    offline channel core.attacks.Perturbed(AWGN(), p) on the same messages.

    Parameters
    ----------
    mode : str, what the attacker sends:
        'universal'  one input-agnostic perturbation p (complex [n]) for every
            message (Sadeghi & Larsson), white-box: `source` is a perturbation
            file (kind 'perturbation', core.perturbation), or a link checkpoint
            (kind 'autoencoder'), on whose own encoder and decoder a universal
            perturbation is crafted at start (attacks.universal_perturbation
            over AWGN at craft_ebn0_db on craft_messages messages), or
            'hamming74': crafted on the Hamming (7,4) soft decoder
            (attacks.hamming_soft_decoder, real mode, M = 16, n = 7);
        'black-box'  the same, crafted on the attacker's substitute link
            (`source`), which is not the attacked one; with shift_invariant
            the perturbation is crafted for every cyclic shift;
        'generative' `source` is an adversary checkpoint (core.adversary): its
            PerturbationGenerator turns each message's n transmitted symbols
            (the input) into that message's perturbation;
        'jamming'    Gaussian noise of the same PSR (`source` not read);
        'off'        zeros (`source` not read).
    source : str, the file the mode reads (above); '' for jamming / off. A
        file that cannot be read, is damaged, is of a kind the mode does not
        take, or holds other M or n is refused (checkpoint.CheckpointError,
        a ValueError naming the file and the reason; a missing file's error
        names the command that writes it).
    M : int in [2, 256], messages of the attacked link; n : int >= 1,
        symbols per message. Checked against the file.
    psr_db : float in [-60, 20], perturbation-to-signal ratio
        ||p||^2 / (n Es) per message block in dB (Es = 1): each n-symbol
        message block of the output has energy exactly n 10^(psr_db/10)
        (universal, black-box, generative; jamming: on average). A
        perturbation crafted or stored at another PSR keeps its direction
        and is rescaled. Settable while running: set_psr_db.
    symbol_offset : int in [0, n-1], the delay above. Settable while running.
    seed : int >= 0, seeds the crafting (prng.ATTACK: the attacker's
        messages, noise and shuffling) and the jamming (prng.JAMMING).
    shift_invariant : bool, craft the perturbation to work under every cyclic
        shift (an attacker not symbol-aligned); only when crafting.
    craft_ebn0_db : float, Eb/N0 in dB of the attacker's examples when crafting.
    craft_messages : int >= 1, how many examples the crafting uses.
    jamming_mode : 'complex' (CN(0, 10^(psr_db/10)) per symbol) or 'real'
        (N(0, 10^(psr_db/10)) on the real parts only, for a real-mode link
        such as Hamming (7,4) on BPSK, whose receiver ignores the imaginary
        parts). Only for mode 'jamming'.
    enabled : bool, the attack is on at start (the `enable` port and
        set_enabled switch it while running).
    report_every : int >= 0; > 0 publishes a metrics message every that many
        messages, and at each change of psr_db, offset, mode or enabled.

    Ports
    -----
    in 0 : complex64 stream, the transmitted symbols (read in mode
        'generative'; the other modes only count items).
    out 0 : complex64 stream, the perturbation, one item per input item.
    enable (message in) : PMT bool, dict {enabled: bool} or pair (key . bool):
        switches the attack on and off while running (off: zeros out). A
        malformed message is logged as an error and dropped.
    metrics (message out) : PMT dict {mode: symbol, psr_db: double,
        enabled: bool, symbol_offset: long, messages: long (message blocks
        perturbed so far)}.

    Run-time changes (set_mode, set_psr_db, set_symbol_offset, set_enabled
    and the enable port) take effect at the next message boundary (an item
    index that is a multiple of n), so every message block is played under
    one setting from its first symbol to its last. The setters (GRC
    callbacks) never raise: a bad value is logged as an error, the current
    one stays, and they return False (True on success).
    """

    def __init__(self, mode, source, M, n, psr_db=-6.0, symbol_offset=0, seed=0, shift_invariant=False,
                 craft_ebn0_db=8.0, craft_messages=2000, jamming_mode="complex", enabled=True, report_every=0):
        mode = validate.choice("mode", mode, MODES)
        self.source = validate.path("source", source)
        self.M, self.n = validate_sizes(M, n)
        psr_db = validate.real("psr_db", psr_db, *attacks.PSR_RANGE_DB)
        symbol_offset = validate.integer("symbol_offset", symbol_offset, 0, self.n - 1)
        self.seed = validate.integer("seed", seed, 0)
        self.shift_invariant = validate.boolean("shift_invariant", shift_invariant)
        self.craft_ebn0_db = validate.db("craft_ebn0_db", craft_ebn0_db)
        self.craft_messages = validate.integer("craft_messages", craft_messages, 1)
        self.jamming_mode = validate.choice("jamming_mode", jamming_mode, JAMMING_MODES)
        enabled = validate.boolean("enabled", enabled)
        self.report_every = validate.integer("report_every", report_every, 0)
        # What `source` gave: a perturbation direction (universal, black-box) or a generator.
        self.loaded_mode = None  # the file mode prepared at construction, None for jamming / off
        self.signal_mode = self.jamming_mode  # 'complex' or 'real': the attacked link's
        self._direction = None   # complex64 [n]
        self._generator = None   # PerturbationGenerator
        self.crafted = None      # description of how the perturbation was obtained
        if mode in FILE_MODES:
            self._prepare(mode, psr_db)
        gr.sync_block.__init__(self, name="adversarial_source", in_sig=[np.complex64], out_sig=[np.complex64])
        keep_alive(self)  # GNU Radio holds Python blocks by a weak handle (block_common)
        if mode == "generative":
            # Whole messages per call: work() applies G to each message's n symbols.
            self.set_output_multiple(self.n)
        self._lock = threading.Lock()  # setters come from GUI threads and the message handler
        self._settings = Settings(mode, enabled, psr_db, symbol_offset, self._scaled(psr_db))
        self._active = self._settings  # what work() plays now
        self._jam_rng = prng.numpy_rng(self.seed, prng.JAMMING)
        self._tail = np.zeros(self.n, dtype=np.complex64)  # generative: the last message's perturbation
        self._perturbed_items = 0
        self._next_report = self.report_every
        self.message_port_register_in(pmt.intern(ENABLE_PORT))
        self.set_msg_handler(pmt.intern(ENABLE_PORT), self._on_enable)
        self.message_port_register_out(pmt.intern(METRICS_PORT))
        if self.crafted:
            self.logger.info(self.crafted)

    # --- loading and crafting -------------------------------------------------------

    def _prepare(self, mode, psr_db):
        if not self.source:
            raise ValueError(f"source must name a file for mode {mode!r}, got an empty path")
        expect = {"M": self.M, "n": self.n}
        if mode == "generative":
            config, generator = self._load(lambda: adversary.load_adversary(self.source, expect=expect), mode)
            self._generator, self.signal_mode = generator, config.mode
            self.crafted = (f"perturbation generator from {self.source} ({config.architecture}, "
                            f"trained at PSR {config.psr_db:g} dB)")
        elif self.source == HAMMING74_SOURCE:
            if (self.M, self.n) != (16, 7):
                raise ValueError(f"source {HAMMING74_SOURCE!r} is Hamming (7,4): it needs M=16 and n=7, "
                                 f"got M={self.M}, n={self.n}")
            codebook = baselines.hamming74_link("hard").codebook
            self._craft(attacks.hamming_soft_decoder(), codebook, "real", "the Hamming (7,4) soft decoder", psr_db)
        else:
            found = self._load(lambda: checkpoint.load(self.source, kinds_allowed=("perturbation", "autoencoder"),
                                                       expect=expect), mode)
            if found.kind == "perturbation":
                config, p = perturbation.load_perturbation(self.source, expect=expect)
                self._direction, self.signal_mode = np.asarray(p, dtype=np.complex64), config.mode
                self.crafted = (f"universal perturbation from {self.source} ({config.method}, crafted at "
                                f"PSR {config.psr_db:g} dB, played at {psr_db:g} dB)")
            else:
                self._craft(found.networks["decoder"], found.networks["encoder"], found.config.mode, self.source,
                            psr_db)
        self.loaded_mode = mode

    def _load(self, load, mode):
        try:
            return load()
        except checkpoint.CheckpointError as e:
            if e.reason != "no such file":
                raise
            path = os.path.abspath(e.source)
            raise checkpoint.CheckpointError(path, f"no such file. {_missing_hint(mode, self.M, self.n)}") from None

    def _craft(self, decoder, codebook, signal_mode, what, psr_db):
        """A universal perturbation crafted on (codebook, decoder) from the attacker's own examples."""
        t0 = time.monotonic()
        labels = torch.from_numpy(prng.numpy_rng(self.seed, prng.ATTACK, 0).integers(
            0, self.M, size=self.craft_messages, dtype=np.int64))
        y = attacks.received_signals(codebook, labels, self.craft_ebn0_db,
                                     prng.torch_generator(self.seed, prng.ATTACK, 1))
        p = attacks.universal_perturbation(decoder, y, labels, psr_db, mode=signal_mode,
                                           shift_invariant=self.shift_invariant,
                                           generator=prng.torch_generator(self.seed, prng.ATTACK, 2))
        self._direction, self.signal_mode = p.numpy().astype(np.complex64), signal_mode
        self.crafted = (f"universal perturbation crafted on {what} at PSR {psr_db:g} dB "
                        f"({self.craft_messages} messages at Eb/N0 {self.craft_ebn0_db:g} dB"
                        f"{', shift-invariant' if self.shift_invariant else ''}) in {time.monotonic() - t0:.1f} s")

    def _scaled(self, psr_db):
        """The universal perturbation at psr_db: complex64 [n], energy exactly budget(psr_db, n); None if none."""
        if self._direction is None:
            return None
        return attacks.scale_to_psr(torch.from_numpy(self._direction), psr_db).numpy()

    # --- the stream -----------------------------------------------------------------

    def work(self, input_items, output_items):
        out, x = output_items[0], input_items[0]
        k = len(out)
        start = self.nitems_written(0)
        settings = self._settings  # one read: a setter mid-call cannot mix two settings
        if settings is not self._active:
            # New settings from the next message boundary on, so every message block
            # is played with one PSR, offset and on/off state from start to end.
            b = min(k, (-start) % self.n)
            self._play(out[:b], x[:b], start, self._active)
            self._active = settings
            self._play(out[b:], x[b:k], start + b, settings)
        else:
            self._play(out, x[:k], start, settings)
        self._report()
        return k

    def _play(self, out, x, start, st):
        """Fill out (items start, start+1, ...) with the perturbation under settings st."""
        k = len(out)
        if st.mode == "jamming":
            # One standard complex normal per item from a NumPy stream, drawn on or off: the
            # output is a function of (seed, item index), however the buffers are cut.
            w = self._jam_rng.standard_normal((k, 2))
        if not st.enabled or st.mode == "off":
            out[:] = 0
            self._tail[:] = 0
            return
        if st.mode == "jamming":
            var = 10.0 ** (st.psr_db / 10.0)  # per symbol: budget(psr_db, n) / n
            if self.jamming_mode == "real":
                out[:] = np.sqrt(var) * w[:, 0]
            else:
                out.real[:], out.imag[:] = np.sqrt(var / 2) * w[:, 0], np.sqrt(var / 2) * w[:, 1]
        elif st.mode == "generative":
            out[:] = self._generated(x, st.psr_db, st.offset)
        else:  # universal, black-box
            out[:] = st.p[(start - st.offset + np.arange(k)) % self.n]
        self._perturbed_items += k

    def _generated(self, x, psr_db, offset):
        """Generative mode: k = len(x) (a multiple of n) items of the delayed perturbation stream."""
        n = self.n
        if not len(x):
            return x
        with torch.inference_mode():
            xr = torch.from_numpy(complex_to_real(x.reshape(-1, n)).astype(np.float32))
            g = attacks.scale_to_psr(real_to_complex(self._generator(xr)), psr_db).numpy().reshape(-1)
        stream = np.concatenate([self._tail, g])
        self._tail = g[-n:].copy()
        return stream[n - offset: n - offset + len(x)]

    # --- run-time control -------------------------------------------------------------

    def _on_enable(self, msg):
        try:
            self.set_enabled(parse_enable_message(msg))
        except Exception as e:  # a bad message must never stop the flowgraph
            self.logger.error(f"dropped enable message: {e}")

    def _update(self, **changes):
        with self._lock:
            self._settings = self._settings._replace(**changes)
        self._publish()
        return True

    def set_enabled(self, enabled):
        """Switch the attack on (True) or off (False: zeros out) from the next message on; GRC callback."""
        try:
            enabled = validate.boolean("enabled", enabled)
        except ValueError as e:
            self.logger.error(f"set_enabled refused: {e}")
            return False
        return self._update(enabled=enabled)

    def set_psr_db(self, psr_db):
        """New PSR in dB, within [-60, 20], from the next message on; rescaled exactly; GRC callback."""
        try:
            psr_db = validate.real("psr_db", psr_db, *attacks.PSR_RANGE_DB)
        except ValueError as e:
            self.logger.error(f"set_psr_db refused, keeping {self.psr_db():g} dB: {e}")
            return False
        return self._update(psr_db=psr_db, p=self._scaled(psr_db))

    def set_symbol_offset(self, symbol_offset):
        """New delay of the perturbation in symbols, in [0, n-1], from the next message on; GRC callback."""
        try:
            symbol_offset = validate.integer("symbol_offset", symbol_offset, 0, self.n - 1)
        except ValueError as e:
            self.logger.error(f"set_symbol_offset refused, keeping {self.symbol_offset()}: {e}")
            return False
        return self._update(offset=symbol_offset)

    def set_mode(self, mode):
        """Switch between 'off', 'jamming' and the mode whose source was loaded at start; GRC callback.

        Another file mode would need its source loaded (or a perturbation
        crafted) inside a GUI callback: refused and logged.
        """
        try:
            mode = validate.choice("mode", mode, MODES)
            if mode in FILE_MODES and mode != self.loaded_mode:
                loaded = f"'{self.loaded_mode}' (from {self.source})" if self.loaded_mode else "no source"
                raise ValueError(f"mode {mode!r} needs its source loaded at start; this block loaded {loaded}, "
                                 "so it can switch to that, 'jamming' or 'off'")
        except ValueError as e:
            self.logger.error(f"set_mode refused, keeping {self.mode!r}: {e}")
            return False
        return self._update(mode=mode)

    # --- what it reports --------------------------------------------------------------

    @property
    def mode(self):
        """The attack played now (the last one set)."""
        return self._settings.mode

    def psr_db(self):
        return self._settings.psr_db

    def symbol_offset(self):
        return self._settings.offset

    def enabled(self):
        return self._settings.enabled

    def perturbation(self):
        """The universal perturbation at the current PSR, before the offset: complex64 [n].

        None when no universal perturbation was loaded or crafted (generative,
        jamming and off at start).
        """
        p = self._settings.p
        return None if p is None else p.copy()

    def messages_perturbed(self):
        """Message blocks (n items) sent with the attack on so far."""
        return self._perturbed_items // self.n

    def counters(self):
        """{mode, psr_db, enabled, symbol_offset, messages}: what the metrics port publishes."""
        st = self._settings
        return {"mode": st.mode, "psr_db": st.psr_db, "enabled": st.enabled, "symbol_offset": st.offset,
                "messages": self.messages_perturbed()}

    def metric(self, name):
        """One value of counters(), e.g. for a GRC Function Probe; KeyError names the ones there are."""
        counters = self.counters()
        if name not in counters:
            raise KeyError(f"adversarial_source has no metric {name!r}; it has {sorted(counters)}")
        return counters[name]

    def _report(self):
        # One message at each multiple of report_every, whatever the buffer sizes.
        if not self.report_every:
            return
        done = self.messages_perturbed()
        for total in range(self._next_report, done + 1, self.report_every):
            self._publish(messages=total)
        if done >= self._next_report:
            self._next_report = (done // self.report_every + 1) * self.report_every

    def _publish(self, **override):
        if self.report_every:
            self.message_port_pub(pmt.intern(METRICS_PORT), dict_message({**self.counters(), **override}))
