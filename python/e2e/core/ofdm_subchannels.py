"""The subchannel families of core.subchannels on OFDM: multipath whose response repeats every N carriers.

core.subchannels draws the gains of N subchannels as the N-point DFT of a
tapped delay line, h_i = sum_t g_t exp(-j 2 pi i t / N). Put the same taps
g_t at delays t S samples of an OFDM signal, S = fft_len / N:

    H[k] = sum_t g_t exp(-j 2 pi k t S / fft_len) = sum_t g_t exp(-j 2 pi k t / N) = h_(k mod N),

so carrier k sees subchannel (k mod N)'s gain. A layout whose messages sit
on N consecutive carriers starting at a multiple of N (aligned_carriers,
mapping 'symbol', n = N) gives every message the same N gains: one set of
precoder coefficients fits every message of a frame. The receiver's FFT
window starts where its synchronisation puts it, a few samples off the
true start; that delay turns carrier k by a phase linear in k, which
differs between messages by one common phase per message and leaves the
magnitudes |h_i| (all that the attention iteration of core.mpa reads)
alike.

What is drawn is a function of the seed and the position in the stream:
    taps of realisation r:   prng.torch_generator(seed, prng.MPA, TAPS_PATH, r), the
        draw of SubchannelChannel(N, family).draw_gains, so the gains are
        subchannel_fading's realisation_gains(seed, r, N, family);
    noise of sample chunk c: prng.torch_generator(seed, prng.MPA, NOISE_PATH, c),
        CN(0, 1) [CHUNK_SAMPLES] scaled by sqrt(N0).
"""
import collections

import numpy as np
import torch

from . import prng, subchannels, validate

TAPS_PATH = 0    # prng path under prng.MPA: the same as subchannel_fading's gains
NOISE_PATH = 2   # prng path under prng.MPA: the noise of each chunk of samples (1 is subchannel_fading's)
CHUNK_SAMPLES = 8192


def tap_spacing(N, fft_len):
    """S = fft_len / N: the delay in samples between two taps (int); fft_len must be a multiple of N."""
    N, fft_len = validate.integer("N", N, 1), validate.integer("fft_len", fft_len, 1)
    if fft_len % N:
        raise ValueError(f"fft_len must be a multiple of N={N} (the response repeats every N carriers), "
                         f"got {fft_len}")
    return fft_len // N


def realisation_taps(seed, r, N, family):
    """Taps g of realisation r: complex128 [taps] (family's profile); g @ dft gives the N subchannel gains."""
    channel = subchannels.SubchannelChannel(N, family)
    gen = prng.torch_generator(seed, prng.MPA, TAPS_PATH, r)
    g = torch.randn((1, channel.powers.numel()), generator=gen, dtype=torch.complex128)
    return (g * channel.powers.sqrt())[0].numpy()


def taps_gains(taps, N):
    """The N subchannel gains h_i = sum_t g_t exp(-j 2 pi i t / N) of taps g complex [P]: complex128 [N]."""
    taps = np.asarray(taps, dtype=np.complex128)
    t = np.arange(taps.size)[:, None]
    return taps @ np.exp(-2j * np.pi * np.arange(N)[None, :] * t / N)


def aligned_carriers(N, fft_len, pilots=4):
    """(data carriers, pilot carriers) of a layout whose every run of N data carriers starts at a multiple of N.

    Data: carriers N b + i, i = 0 .. N-1, for every b with the run inside
    (-fft_len/2, fft_len/2) and off DC: b = -(B-1) .. -1, 1 .. B-1 with
    B = fft_len / (2 N), in that order, so message slot s of an OFDM symbol
    (mapping 'symbol', n = N) sits on carriers N b_s .. N b_s + N - 1 and
    its symbol i on a carrier = i (mod N). Pilots: `pilots` carriers taken
    alternately from the two runs left free (1 .. N-1 beside DC, and the
    band edge -fft_len/2 .. -fft_len/2 + N - 1).
    """
    S = tap_spacing(N, fft_len)
    B = fft_len // (2 * N)
    if B < 2 or S < 1:
        raise ValueError(f"fft_len={fft_len} leaves no run of N={N} carriers off DC")
    data = tuple(N * b + i for b in list(range(-(B - 1), 0)) + list(range(1, B)) for i in range(N))
    free_centre = [k for k in range(1, N)]
    free_edge = [k for k in range(-fft_len // 2 + 1, -fft_len // 2 + N)]
    pool = [c for pair in zip(free_edge[1::2], free_centre[1::2]) for c in pair]
    pilots = validate.integer("pilots", pilots, 0, len(pool))
    return data, tuple(sorted(pool[:pilots]))


class BlockFadingFilter:
    """Streaming FIR with P taps g_t at delays t S: the taps of realisation floor(sample / period).

    spacing: S; period: samples per realisation (>= 1); length: P;
    taps_of(r) -> the taps of realisation r (complex [P]), called once per
    realisation. The delay line carries over between calls and
    realisations: each output sample uses the taps of its own realisation
    on the inputs before it, whichever realisation they belonged to.
    """

    def __init__(self, spacing, period, length, taps_of):
        self.spacing = validate.integer("spacing", spacing, 1)
        self.period = validate.integer("period", period, 1)
        self.length = validate.integer("length", length, 1)
        self._taps_of = taps_of
        self._r, self._taps = -1, None
        self._history = np.zeros((self.length - 1) * self.spacing, dtype=np.complex128)  # the last inputs
        self.started = 0  # realisations started
        self.realisations = collections.deque(maxlen=10000)  # (r, taps) of the last realisations started

    def _taps_for(self, r):
        if r != self._r:
            taps = np.asarray(self._taps_of(r), dtype=np.complex128).reshape(-1)
            if taps.size != self.length:
                raise ValueError(f"taps of realisation {r} must hold {self.length} values, got {taps.size}")
            self._r, self._taps = r, taps
            self.realisations.append((r, taps.copy()))
            self.started += 1
        return self._taps

    def __call__(self, x, start):
        """x: complex [K], the inputs from absolute sample `start` on (calls follow each other) -> y complex128 [K]."""
        x = np.asarray(x, dtype=np.complex128)
        K, H = len(x), len(self._history)
        ext = np.concatenate([self._history, x])
        y = np.zeros(K, dtype=np.complex128)
        j = 0
        while j < K:
            r = (start + j) // self.period
            end = min(K, (r + 1) * self.period - start)
            for t, g in enumerate(self._taps_for(r)):
                d = t * self.spacing
                y[j:end] += g * ext[H - d + j:H - d + end]
            j = end
        if H:
            self._history = ext[len(ext) - H:]
        return y


def unit_noise(seed, c):
    """CN(0, 1) noise of sample chunk c: complex64 [CHUNK_SAMPLES] (sample c * CHUNK_SAMPLES + i)."""
    gen = prng.torch_generator(seed, prng.MPA, NOISE_PATH, c)
    return torch.randn(CHUNK_SAMPLES, generator=gen, dtype=torch.complex64).numpy()


def frame_errors(sent, decided, frames, messages_per_frame):
    """Block errors of the frames a receiver delivered, aligned by frame number, not by position.

    sent: int [F * messages_per_frame], every message sent, frame f's at
        f * messages_per_frame; decided: int [D], the receiver's decisions in
        the order it delivered them; frames: [(position in decided, frame
        number)] of each delivered frame's first message.
    Returns {frame number: errors in that frame} of the frames delivered
    whole (a frame past the end of `sent` or of `decided` is left out).
    """
    sent, decided = np.asarray(sent), np.asarray(decided)
    S = validate.integer("messages_per_frame", messages_per_frame, 1)
    out = {}
    for pos, f in frames:
        pos, f = int(pos), int(f)
        if pos + S > len(decided) or (f + 1) * S > len(sent):
            continue
        out[f] = int(np.count_nonzero(decided[pos:pos + S] != sent[f * S:(f + 1) * S]))
    return out


class FrameGains:
    """A frame's channel estimate (one value per data carrier) -> the gains each of its messages sees.

    layout: core.ofdm.OfdmLayout of the link. smoother: None (use the raw
    estimate) or a core.ofdm.ChannelSmoother over the layout's data
    carriers, the fit to a response inside the cyclic prefix that
    ofdm_e2e_rx's 'tracking' equaliser also applies.

    The estimate comes as ofdm_e2e_rx's `csi` PDU holds it: the data
    carriers in layout order, from the unnormalised FFT, so sqrt(fft_len)
    times the gain the payload symbols saw (ofdm_e2e_tx scales by
    1/sqrt(fft_len)); __call__ divides that out.
    """

    def __init__(self, layout, smoother=None):
        self.layout = layout
        self.smoother = smoother
        self._index = np.asarray(layout.data_carriers) + layout.fft_len // 2  # FFT-shifted
        carrier_slot = {c: j for j, c in enumerate(layout.data_carriers)}
        self._of_message = np.vectorize(carrier_slot.get)(layout.carrier_of_message())  # [messages, n]

    def __call__(self, estimate):
        """estimate: complex [D] -> complex64 [messages_per_frame, n], the gains of each message's symbols."""
        est = np.asarray(estimate, dtype=np.complex64).reshape(-1)
        if est.size != len(self._index):
            raise ValueError(f"estimate must hold one value per data carrier ({len(self._index)}), got {est.size}")
        if self.smoother is not None:
            full = np.zeros(self.layout.fft_len, dtype=np.complex64)
            full[self._index] = est
            est = self.smoother(full)[self._index]
        return (est[self._of_message] / np.float32(np.sqrt(self.layout.fft_len))).astype(np.complex64)


def common_gains(gains):
    """One set of N gains for every message: sqrt of the mean |h_i|^2 over messages, complex64 [n] (real, >= 0).

    gains: complex [messages, n]. On an aligned layout over this channel the
    messages' gains differ only by a phase per message, so the mean of the
    powers is each subchannel's power with less estimation noise; the
    attention iteration (core.mpa) reads |h_i| alone.
    """
    g = np.asarray(gains)
    return np.sqrt(np.mean(np.abs(g) ** 2, axis=0)).astype(np.complex64)


def feedback_lags(csi_frames, update_items, N, messages_per_frame):
    """Frames from each measured frame to the first frame sent with the coefficients computed from it: [int].

    csi_frames: frame numbers of the csi messages the precoder received, in
    order (update u came from csi_frames[u - 1]); update_items: the
    precoder's [(update, first output item sent with it)] (an update
    superseded before any of its symbols went out has no entry and no lag).
    """
    S = int(N) * int(messages_per_frame)
    frames = list(csi_frames)
    return [int(item) // S - int(frames[u - 1]) for u, item in update_items if 1 <= u <= len(frames)]


def link_report(sent, links, messages_per_frame):
    """BLER of each link over the frames its OFDM receiver delivered, and over the frames all of them delivered.

    sent: int [frames * messages_per_frame], every message sent;
    links: {name: (decisions, frame_positions, counters)} with decisions
    int [D] in delivery order, frame_positions [(position, frame number)]
    of each delivered frame's first message, counters the ofdm_e2e_rx
    counters dict. Returns {name: {bler, errors, messages, frames,
    bler_common, errors_common, counters}, 'common_frames': int}: the
    '_common' figures count only the frames every link delivered (on the
    same channel and noise the same frames are usually lost), a paired
    comparison.
    """
    per = {name: frame_errors(sent, d, pos, messages_per_frame) for name, (d, pos, _) in links.items()}
    common = set.intersection(*(set(e) for e in per.values())) if per else set()
    out = {"common_frames": len(common)}
    for name, errors in per.items():
        e, m = sum(errors.values()), len(errors) * messages_per_frame
        ec = sum(errors[f] for f in common)
        out[name] = {"bler": e / m if m else float("nan"), "errors": e, "messages": m, "frames": len(errors),
                     "bler_common": ec / (len(common) * messages_per_frame) if common else float("nan"),
                     "errors_common": ec, "counters": dict(links[name][2])}
    return out


def format_report(report, lags, family, ebn0_db, frames_per_channel, frames_sent):
    """The lines the mpa_ofdm example prints (str)."""
    names = [k for k in report if k != "common_frames"]
    lines = [f"{family} family over OFDM, Eb/N0 {ebn0_db:g} dB per data carrier, new taps every "
             f"{frames_per_channel} frames, {frames_sent} frames sent:"]
    for name in names:
        r = report[name]
        c = r["counters"]
        lines.append(f"  {name:8s} BLER {r['bler']:.4g} ({r['errors']} errors in {r['messages']} messages, "
                     f"{r['frames']} frames; lost {c.get('frames_lost', 0)}, headers failed "
                     f"{c.get('headers_failed', 0)})")
    lines.append(f"  on the {report['common_frames']} frames all delivered: " + ", ".join(
        f"{name} {report[name]['bler_common']:.4g}" for name in names))
    if lags:
        lines.append(f"  feedback lag: a measurement reached the channel {float(np.median(lags)):.0f} frames later "
                     f"(median; max {max(lags)}, {len(lags)} updates sent)")
    return "\n".join(lines)
