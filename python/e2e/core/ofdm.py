"""OFDM framing of learned messages: resource layout, message mapping, header fields, frame counting.

Pure NumPy; the ofdm_e2e_tx / ofdm_e2e_rx hier blocks build GNU Radio's
stock OFDM chain (carrier allocator, IFFT, cyclic prefix, Schmidl & Cox,
header/payload demux, channel estimation, one-tap equaliser) around it.

A frame carries `messages_per_frame` messages of n complex symbols on the
data carriers of `frame_symbols` payload OFDM symbols, after two sync
symbols and one header symbol. Two mappings of a message to resource
elements:

  'subcarrier'  message k sits on one data carrier across n consecutive OFDM
                symbols (the model-free training paper's choice: on a channel
                that is flat over n symbols a message sees one complex gain,
                as in block fading). Messages fill the D data carriers of a
                block of n OFDM symbols, then the next block.
  'symbol'      message k takes n consecutive data carriers of one OFDM
                symbol; messages do not straddle two OFDM symbols.

Resource elements no message uses are padding (zeros) at the end of the
frame. The stock header (digital.packet_header_ofdm, 32 bits: 12-bit length,
12-bit frame number, 8-bit CRC) carries the frame number, which
FrameCounter unwraps, and a length from which the receiver recovers the
number of payload OFDM symbols; with frames_per_batch frames per training
batch, frame f carries batch f // frames_per_batch (batch_of_frame).
"""
import dataclasses
import math

import numpy as np

from . import validate

MAPPINGS = ("subcarrier", "symbol")
HEADER_BITS = 32              # packet_header_default: 12 + 12 + 8
FRAME_NUMBER_BITS = 12        # the stock header's frame counter
HEADER_BITS_PER_PAYLOAD_SYMBOL = 1  # packet_header_ofdm's unit: the length field counts 8 payload symbols
MAX_LENGTH_FIELD = 4095


def default_carriers(fft_len=128, guard=6, pilot_carriers=None):
    """(data carriers, pilot carriers) of the paper's layout: all but `guard` carriers at each edge and DC.

    Carriers are signed indices in [-fft_len/2, fft_len/2). The default
    pilots are 4, at +-0.67 and +-0.23 of half the FFT (for fft_len 128:
    -43, -15, 15, 43; for 64: GNU Radio's and 802.11a's -21, -7, 7, 21), for
    the one-tap equaliser's tracking.
    """
    fft_len = validate.integer("fft_len", fft_len, 8)
    guard = validate.integer("guard", guard, 0, fft_len // 2 - 2)
    half = fft_len // 2
    active = [k for k in range(-half + guard, half - guard + (fft_len % 2)) if k != 0]
    if pilot_carriers is None:
        outer, inner = round(0.67 * half), round(0.23 * half)
        pilot_carriers = [-outer, -inner, inner, outer]
        pilot_carriers = [p if p != 0 else 1 for p in pilot_carriers]
    pilots = tuple(int(p) for p in pilot_carriers)
    return interleaved(tuple(k for k in active if k not in pilots)), pilots


def interleaved(carriers, header_bits=HEADER_BITS):
    """The carriers in an order that spreads any run of consecutive ones across the band.

    The order of data carriers is the order the header's bits and the message
    slots fill them (carrier allocator, serializer, csi). Sorted, the header's
    32 bits would sit on the lowest 32 carriers, one band edge, and fail with
    it in a frequency-selective fade; stepping through the sorted carriers by
    about len / 32 (coprime with len) spreads them across the whole band.
    """
    carriers = sorted(carriers)
    D = len(carriers)
    step = max(1, D // header_bits)
    while math.gcd(step, D) != 1:
        step += 1
    return tuple(carriers[(i * step) % D] for i in range(D))


@dataclasses.dataclass(frozen=True)
class OfdmLayout:
    """Where a frame's messages go; validated on construction.

    n : complex symbols per message.
    messages_per_frame : messages carried by one frame.
    fft_len, cp_len : FFT size and cyclic prefix (samples), cp_len < fft_len.
    data_carriers, pilot_carriers : signed carrier indices; disjoint, within
        the band, without DC. None: default_carriers(fft_len). The order of
        data_carriers is the order the header's bits and the messages fill
        them (see interleaved).
    pilot_symbols : one value per pilot carrier (unit modulus), same on every
        OFDM symbol. None: all 1 but the last, -1.
    mapping : 'subcarrier' or 'symbol' (module docstring).
    """

    n: int
    messages_per_frame: int
    fft_len: int = 128
    cp_len: int = 16
    data_carriers: tuple = None
    pilot_carriers: tuple = None
    pilot_symbols: tuple = None
    mapping: str = "subcarrier"

    def __post_init__(self):
        set_ = self._set
        set_("n", validate.integer("n", self.n, 1))
        set_("messages_per_frame", validate.integer("messages_per_frame", self.messages_per_frame, 1))
        set_("fft_len", validate.integer("fft_len", self.fft_len, 8))
        set_("cp_len", validate.integer("cp_len", self.cp_len, 0))
        if self.cp_len >= self.fft_len:
            raise ValueError(f"cp_len must be shorter than fft_len={self.fft_len}, got {self.cp_len}")
        validate.choice("mapping", self.mapping, MAPPINGS)
        data, pilots = default_carriers(self.fft_len)
        if self.data_carriers is not None:
            data = self._carriers("data_carriers", self.data_carriers)
        if self.pilot_carriers is not None:
            pilots = self._carriers("pilot_carriers", self.pilot_carriers)
        elif self.data_carriers is not None:
            pilots = tuple(p for p in pilots if p not in data)
        overlap = sorted(set(data) & set(pilots))
        if overlap:
            raise ValueError(f"data_carriers and pilot_carriers must be disjoint, both hold {overlap}")
        set_("data_carriers", data)
        set_("pilot_carriers", pilots)
        symbols = self.pilot_symbols
        if symbols is None:
            symbols = tuple([1.0] * (len(pilots) - 1) + [-1.0]) if pilots else ()
        symbols = tuple(complex(s) for s in symbols)
        if len(symbols) != len(pilots):
            raise ValueError(f"pilot_symbols must hold one value per pilot carrier ({len(pilots)}), "
                             f"got {len(symbols)}")
        set_("pilot_symbols", symbols)
        if len(data) < HEADER_BITS:
            raise ValueError(f"data_carriers must hold at least {HEADER_BITS} carriers (the header's bits "
                             f"on one OFDM symbol), got {len(data)}")
        if self.mapping == "symbol" and self.n > len(data):
            raise ValueError(f"n={self.n} symbols do not fit on the {len(data)} data carriers of one OFDM "
                             "symbol (mapping 'symbol')")
        if self.length_field > MAX_LENGTH_FIELD:
            raise ValueError(f"messages_per_frame={self.messages_per_frame} needs {self.frame_symbols} payload "
                             f"OFDM symbols; the header's length field holds at most "
                             f"{MAX_LENGTH_FIELD * 8 // len(data)}")

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # frozen: store the canonical value

    def _carriers(self, name, carriers):
        if isinstance(carriers, (str, bytes)) or not hasattr(carriers, "__iter__"):
            raise ValueError(f"{name} must be a list of carrier indices, got {carriers!r}")
        carriers = tuple(validate.integer(name, c) for c in carriers)
        half = self.fft_len // 2
        bad = [c for c in carriers if c == 0 or not -half <= c < half]
        if bad:
            raise ValueError(f"{name} must lie in [-{half}, {half}) without DC (0), got {bad}")
        if len(set(carriers)) != len(carriers):
            raise ValueError(f"{name} must not repeat a carrier, got {list(carriers)}")
        return carriers

    # --- sizes ---------------------------------------------------------------------------

    @property
    def carriers_per_symbol(self):
        """D: data carriers of one OFDM symbol."""
        return len(self.data_carriers)

    @property
    def messages_per_block(self):
        """Messages on one block: D (subcarrier mapping, a block is n OFDM symbols) or D // n (symbol mapping)."""
        D = self.carriers_per_symbol
        return D if self.mapping == "subcarrier" else D // self.n

    @property
    def frame_symbols(self):
        """Payload OFDM symbols per frame (header and sync symbols not counted)."""
        blocks = math.ceil(self.messages_per_frame / self.messages_per_block)
        return blocks * self.n if self.mapping == "subcarrier" else blocks

    @property
    def payload_elements(self):
        """Data resource elements of a frame's payload: frame_symbols * D."""
        return self.frame_symbols * self.carriers_per_symbol

    @property
    def message_symbols(self):
        """Complex symbols of a frame's messages: messages_per_frame * n."""
        return self.messages_per_frame * self.n

    @property
    def length_field(self):
        """The header's length field: floor(payload_elements / 8), so that the stock parser finds frame_symbols.

        packet_header_ofdm (bits_per_payload_sym = 1) reads the field as
        8 * field payload symbols and counts the OFDM symbols they fill; any
        value in ((frame_symbols - 1) D, frame_symbols D] gives frame_symbols.
        """
        return self.payload_elements // 8

    @property
    def frame_samples(self):
        """Samples of one frame on the air: (2 sync + 1 header + payload) OFDM symbols with their CP."""
        return (3 + self.frame_symbols) * (self.fft_len + self.cp_len)

    def efficiency(self, bits_per_message):
        """Bits per occupied resource element, sync, header and pilot elements counted alike."""
        active = self.carriers_per_symbol + len(self.pilot_carriers)
        return bits_per_message * self.messages_per_frame / ((3 + self.frame_symbols) * active)

    # --- mapping -------------------------------------------------------------------------

    def _order(self):
        """Index into the payload elements (OFDM symbol major, data carrier minor) of each message symbol."""
        D, n = self.carriers_per_symbol, self.n
        k = np.arange(self.messages_per_frame)
        j = np.arange(n)
        if self.mapping == "subcarrier":
            block, carrier = np.divmod(k, D)
            symbol = block[:, None] * n + j[None, :]
            return symbol * D + carrier[:, None]
        per = self.messages_per_block
        block, slot = np.divmod(k, per)
        return block[:, None] * D + slot[:, None] * n + j[None, :]

    def to_payload(self, symbols):
        """Message symbols [messages_per_frame, n] (or flat) -> payload elements [payload_elements], zero padded."""
        symbols = np.asarray(symbols).reshape(self.messages_per_frame, self.n)
        out = np.zeros(self.payload_elements, dtype=np.result_type(symbols, np.complex64))
        out[self._order()] = symbols
        return out

    def from_payload(self, elements):
        """Payload elements [payload_elements] -> message symbols [messages_per_frame, n]."""
        return np.asarray(elements).reshape(self.payload_elements)[self._order()]

    def carrier_of_message(self):
        """The data carrier (signed index) each message's symbols sit on: [messages_per_frame, n]."""
        return np.asarray(self.data_carriers)[self._order() % self.carriers_per_symbol]


class FrameCounter:
    """Unwraps the header's 12-bit frame counter into absolute frame numbers.

    The transmitter numbers its frames 0, 1, 2, ... and sends them modulo
    4096. Frames arrive in order, some lost: the absolute number of the next
    frame is the smallest one after the last that has the received value
    modulo 4096. A run of 4096 or more lost frames is ambiguous and is read
    as fewer. The first frame seen is taken to be below 4096 (start the
    receiver before, or with, the transmitter).
    """

    MODULUS = 1 << FRAME_NUMBER_BITS

    def __init__(self):
        self.last = None
        self.lost = 0        # frames skipped between consecutive received frames
        self.repeated = 0    # frames whose number equals the last one (refused)

    def push(self, value):
        """Absolute frame number of a received 12-bit value; None for a repeat of the last frame."""
        value = validate.integer("frame number", value, 0, self.MODULUS - 1)
        if self.last is None:
            self.last = value
            self.lost += value
            return value
        step = (value - self.last) % self.MODULUS
        if step == 0:
            self.repeated += 1
            return None
        self.lost += step - 1
        self.last += step
        return self.last


def batch_of_frame(frame_number, frames_per_batch, messages_per_frame, n):
    """(batch index, sample offset of the frame's first symbol in its batch) for frame f."""
    batch, k = divmod(int(frame_number), int(frames_per_batch))
    return batch, k * messages_per_frame * n


def sync_words(fft_len, active_carriers, seed=42):
    """The two Schmidl & Cox preamble symbols, frequency domain, FFT-shifted: (word1, word2) complex [fft_len].

    The rule and the sequence of GNU Radio's ofdm_tx: BPSK on the active
    carriers from a generator seeded with 42; word 1 uses every second
    carrier only (two identical halves in time, for timing and fine
    frequency), scaled by sqrt 2 to keep the energy; word 2 uses them all
    (coarse frequency and the channel estimate). DC is always zero. A local
    generator: NumPy's global random state is left alone.
    """
    active = {c % fft_len for c in active_carriers}
    rng = np.random.RandomState(seed)
    w1 = [(np.sqrt(2) if rng.randint(2) == 0 else -np.sqrt(2)) if (x in active and x % 2) else 0
          for x in range(fft_len)]
    rng = np.random.RandomState(seed)
    w2 = [(1 if rng.randint(2) == 0 else -1) if x in active else 0 for x in range(fft_len)]
    w2[0] = 0
    return (np.fft.fftshift(np.asarray(w1, dtype=np.complex128)),
            np.fft.fftshift(np.asarray(w2, dtype=np.complex128)))


# A simulated radio channel for the OFDM flowgraphs and tests: 3 paths within the
# paper's 16-sample cyclic prefix, as (delay in samples, complex gain).
DEFAULT_PATHS = ((0, 1.0), (2, 0.5 * np.exp(0.8j)), (5, 0.25 * np.exp(-2.1j)))


def multipath_taps(paths=DEFAULT_PATHS, fractional_delay=0.0, half_length=4):
    """FIR taps of a multipath channel seen with a fractional timing offset; unit energy.

    paths: (delay in whole samples >= 0, complex gain) pairs.
    fractional_delay: a timing offset in [0, 1) sample, applied by a
        Hamming-windowed sinc of 2 half_length + 1 taps (so the taps start
        half_length samples early: a bulk delay the receiver's sync absorbs).
        The default keeps the whole response (5 + 9 = 14 taps) inside the
        paper's 16-sample cyclic prefix: longer, and OFDM symbols interfere.
    Returns complex128 [max delay + 2 half_length + 1].
    """
    fractional_delay = validate.real("fractional_delay", fractional_delay, 0, 1, high_open=True)
    half_length = validate.integer("half_length", half_length, 0)
    span = max(int(validate.integer("path delay", d, 0)) for d, _ in paths) + 1
    profile = np.zeros(span, dtype=np.complex128)
    for d, g in paths:
        profile[d] += complex(g)
    k = np.arange(-half_length, half_length + 1)
    interpolator = np.sinc(k - fractional_delay) * np.hamming(2 * half_length + 1) if half_length else np.ones(1)
    taps = np.convolve(profile, interpolator)
    return taps / np.linalg.norm(taps)


def cfo_phase_increment(carrier_spacings, fft_len):
    """Phase step per sample (radians) of a frequency offset given in subcarrier spacings (rotator_cc's argument)."""
    return 2 * np.pi * validate.real("cfo", carrier_spacings) / validate.integer("fft_len", fft_len, 1)


def header_copies(carriers_per_symbol, header_bits=HEADER_BITS):
    """Copies of the header's bits that fit on one OFDM symbol (the stock header uses only the first 32)."""
    return max(1, carriers_per_symbol // header_bits)


def repeat_header(bits, header_bits=HEADER_BITS):
    """Header bits [D] (32 used, the rest zero) -> the 32 repeated on every whole 32-slot of the symbol.

    With the interleaved carrier order the copies sit far apart in
    frequency, so a fade rarely takes all of a bit's copies.
    """
    bits = np.array(bits, copy=True)
    for k in range(1, header_copies(len(bits), header_bits)):
        bits[k * header_bits:(k + 1) * header_bits] = bits[:header_bits]
    return bits


def combine_header(symbols, gains=None, header_bits=HEADER_BITS):
    """Equalised header symbols [D] -> the same with the first 32 replaced by their copies' weighted mean.

    gains: the channel estimate of each header carrier [D]; weighting the
    equalised copies by |gain|^2 is maximum-ratio combining (an equalised
    symbol's noise grows as 1 / |gain|^2). None: equal weights.
    """
    symbols = np.array(symbols, copy=True)
    copies = header_copies(len(symbols), header_bits)
    weights = np.ones(len(symbols)) if gains is None else np.abs(np.asarray(gains)) ** 2
    used = slice(0, copies * header_bits)
    s = (symbols[used] * weights[used]).reshape(copies, header_bits).sum(axis=0)
    w = weights[used].reshape(copies, header_bits).sum(axis=0)
    symbols[:header_bits] = s / np.maximum(w, 1e-12)
    return symbols


# --- payload equalisation: a smoothed channel estimate and pilot phase tracking ---------------------

def response_delays(cp_len, timing_offset, margin=4):
    """Delays (samples, relative to the receiver's FFT window) a channel inside the cyclic prefix shows.

    The window starts timing_offset samples after the synchronisation's
    estimate, so the response appears that much earlier; `margin` samples
    either side absorb the estimate's jitter and a fractional delay's sinc tails.
    """
    cp_len = validate.integer("cp_len", cp_len, 0)
    timing_offset = validate.integer("timing_offset", timing_offset, -cp_len, cp_len)
    margin = validate.integer("margin", margin, 0)
    return np.arange(-(timing_offset + margin), cp_len - timing_offset + margin)


class ChannelSmoother:
    """Least-squares fit of a per-carrier channel estimate to an impulse response of the given delays.

    One sync symbol gives each carrier an estimate with noise as strong as
    the payload's own, which one-tap equalisation adds again (twice the noise
    on every resource element). A response no longer than the cyclic prefix
    has only len(delays) degrees of freedom: projecting the A active
    carriers' estimates onto them keeps len(delays) / A of that noise.

    fft_len: FFT size; carriers: the active carriers (signed indices) whose
    estimates are measured; delays: core.ofdm.response_delays.
    __call__(taps): FFT-shifted estimate [fft_len] (GNU Radio's
    ofdm_sync_chan_taps) -> the same with the active carriers smoothed.
    """

    def __init__(self, fft_len, carriers, delays):
        carriers = np.asarray(carriers)
        delays = np.asarray(delays)
        if len(delays) >= len(carriers):
            raise ValueError(f"delays must be fewer than the active carriers ({len(carriers)}), got {len(delays)}")
        F = np.exp(-2j * np.pi * np.outer(carriers % fft_len, delays) / fft_len)
        self.projection = (F @ np.linalg.pinv(F)).astype(np.complex64)
        self.index = carriers + fft_len // 2
        self.fft_len = fft_len

    def __call__(self, taps):
        taps = np.asarray(taps, dtype=np.complex64)
        if taps.shape != (self.fft_len,):
            raise ValueError(f"taps must have shape ({self.fft_len},), got {taps.shape}")
        out = taps.copy()
        out[self.index] = self.projection @ taps[self.index]
        return out


def pilot_phases(equalised, pilot_index, pilot_symbols, weights):
    """Common phase (radians) of each equalised OFDM symbol [T, fft_len] from its pilots: [T].

    weights: |channel|^2 at the pilots (maximum-ratio weights: an equalised
    pilot's noise grows as 1 / |channel|^2).
    """
    z = equalised[:, pilot_index] * np.conj(np.asarray(pilot_symbols))[None, :] * np.asarray(weights)[None, :]
    return np.angle(z.sum(axis=1))


class PhaseDrift:
    """Running least-squares phase slope of one frame, anchored at the channel estimate's symbol.

    A residual frequency offset turns the payload's phase by a constant step
    per OFDM symbol from the sync symbol the channel was estimated on (phase
    0 there). lead: OFDM symbols from that sync symbol to the first payload
    symbol (2: the header lies between). update(thetas) takes the pilot
    phases of the next symbols [T] and returns the phase to remove from each
    [T], fitted on every symbol of the frame so far (causal).
    """

    def __init__(self, lead=2):
        self.lead = validate.integer("lead", lead, 1)
        self.reset()

    def reset(self):
        self.t, self.s_ut, self.s_uu = 0, 0.0, 0.0

    def update(self, thetas):
        thetas = np.asarray(thetas, dtype=np.float64)
        u = self.lead + self.t + np.arange(len(thetas), dtype=np.float64)
        s_ut = self.s_ut + np.cumsum(u * thetas)
        s_uu = self.s_uu + np.cumsum(u * u)
        if len(thetas):
            self.t += len(thetas)
            self.s_ut, self.s_uu = float(s_ut[-1]), float(s_uu[-1])
        return s_ut / s_uu * u
