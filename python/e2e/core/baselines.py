"""Classical baselines as *links*: optimal or textbook transmit/receive pairs.

A link is any object with

- ``M`` (int): number of messages, ``n`` (int): channel uses per message,
  ``mode`` ('complex' or 'real'), ``name`` (str);
- ``transmit(messages)``: int64 [B] in [0, M) -> complex128 [B, n] channel
  symbols with average energy 1 per channel use (Es = 1) over uniformly
  drawn messages; in 'real' mode the imaginary parts are zero;
- ``receive(y, n0)``: complex [B, n] received symbols and the noise density
  N0 (float) -> int64 [B] decided messages; in 'real' mode only ``y.real``
  is used.

Learned models are scored through the same protocol (``core.evaluation``),
so a learned constellation wrapped in :class:`CodebookLink` is decoded with
the maximum-likelihood detector, the best any receiver can do on AWGN.
Pure NumPy: never imports gnuradio, pmt or torch.
"""
import numpy as np

from . import validate

# Bounds the [chunk, M] score matrix of ml_detect (2**22 float64 = 32 MiB), so
# M = 256 with B = 1e5 runs in pieces instead of one 200 MB allocation.
_ML_CHUNK_ELEMENTS = 1 << 22


def message_bits(messages, k):
    """Binary expansion of messages, most significant bit first.

    Input
    -----
    messages : int array [...], values in [0, 2**k)
    k : int, bits per message (1 <= k <= 63)

    Output
    ------
    uint8 array [..., k], bit j of the last axis is bit (k-1-j) of the message.
    """
    k = validate.integer("k", k, 1, 63)
    m = np.asarray(messages, dtype=np.int64)
    shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
    return ((m[..., None] >> shifts) & 1).astype(np.uint8)


def _bits_to_int(bits):
    """uint8 [..., b] MSB first -> int64 [...]; the inverse of message_bits."""
    bits = np.asarray(bits, dtype=np.int64)
    weights = np.int64(1) << np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int64)
    return bits @ weights


def _real_view(y, mode):
    """Received symbols as real vectors: [B, 2n] (re, im) in complex mode, [B, n] in real mode."""
    y = np.asarray(y)
    if mode == "real":
        return np.ascontiguousarray(y.real, dtype=np.float64)
    if not np.iscomplexobj(y):
        y = y.astype(np.complex128)
    return np.concatenate([y.real, y.imag], axis=-1).astype(np.float64, copy=False)


def ml_detect(y, codebook, mode, chunk_elements=_ML_CHUNK_ELEMENTS):
    """Maximum-likelihood (minimum Euclidean distance) detection on AWGN.

    ||y - c||^2 = ||y||^2 - 2 Re(y c^H) + ||c||^2, and ||y||^2 is the same for
    every c, so the decision is argmax_c 2 Re(y c^H) - ||c||^2: one real matrix
    product per chunk of received words. Ties go to the lowest message index.

    Input
    -----
    y : complex (or real) array [B, n], received symbols
    codebook : complex array [M, n], the transmitted word of each message
    mode : 'complex' or 'real'; in 'real' mode only real parts of y and the
        codebook are used
    chunk_elements : int, bound on the number of scores held at once

    Output
    ------
    int64 array [B], index of the nearest codeword.
    """
    validate.mode(mode)
    c = _real_view(np.atleast_2d(codebook), mode)
    yr = _real_view(y, mode)
    if yr.ndim != 2 or yr.shape[1] != c.shape[1]:
        raise ValueError(f"y must have shape [B, {np.shape(codebook)[-1]}], got {np.shape(y)}")
    two_ct = 2.0 * c.T
    c_energy = np.einsum("ij,ij->i", c, c)
    out = np.empty(yr.shape[0], dtype=np.int64)
    step = max(1, int(chunk_elements) // c.shape[0])
    for start in range(0, yr.shape[0], step):
        scores = yr[start:start + step] @ two_ct
        scores -= c_energy
        out[start:start + step] = np.argmax(scores, axis=1)
    return out



def ml_detect_block_fading(y, codebook, n0, chunk_elements=_ML_CHUNK_ELEMENTS):
    """Maximum-likelihood detection on Rayleigh block fading, without CSI.

    For y = h c + w with h ~ CN(0, 1) unknown (one per block) and
    w ~ CN(0, N0 I), y given c is CN(0, N0 I + c c^H), whose log-likelihood
    is, up to terms equal for every c,
        |c^H y|^2 / (N0 (N0 + ||c||^2)) - log(N0 + ||c||^2).
    With equal-energy codewords this is argmax |c^H y|^2 (noncoherent
    correlation). It is the optimum for a receiver that, like the learned
    one, is never told h. Complex mode only. Ties go to the lowest index.

    Input
    -----
    y : complex array [B, n], received symbols
    codebook : complex array [M, n]
    n0 : float, noise density N0 (> 0)
    chunk_elements : int, bound on the number of scores held at once

    Output
    ------
    int64 array [B], the most likely message.
    """
    c = np.atleast_2d(np.asarray(codebook, dtype=np.complex128))
    y = np.asarray(y, dtype=np.complex128)
    if y.ndim != 2 or y.shape[1] != c.shape[1]:
        raise ValueError(f"y must have shape [B, {c.shape[1]}], got {y.shape}")
    n0 = validate.real("n0", n0, 0, low_open=True)
    total = n0 + np.einsum("ij,ij->i", c.conj(), c).real
    weight = 1.0 / (n0 * total)
    offset = np.log(total)
    ch = c.conj().T
    out = np.empty(y.shape[0], dtype=np.int64)
    step = max(1, int(chunk_elements) // c.shape[0])
    for start in range(0, y.shape[0], step):
        corr = y[start:start + step] @ ch
        scores = (corr.real ** 2 + corr.imag ** 2) * weight - offset
        out[start:start + step] = np.argmax(scores, axis=1)
    return out

def _check_messages(messages, M):
    m = np.asarray(messages, dtype=np.int64)
    if m.ndim != 1:
        raise ValueError(f"messages must have shape [B], got {m.shape}")
    if m.size and (m.min() < 0 or m.max() >= M):
        raise ValueError(f"messages must lie in [0, {M}), got range [{m.min()}, {m.max()}]")
    return m


class CodebookLink:
    """A link defined by an explicit codebook, with ML detection by default.

    The codebook is scaled so that the mean energy per channel use over all
    M codewords is 1, i.e. sum |c_mj|^2 / (M n) = 1: with uniformly drawn
    messages this is exactly Es = 1. The scale applied is kept in
    ``energy_scale`` (stored codebook = given codebook * energy_scale).

    Parameters
    ----------
    codebook : complex array [M, n]; in 'real' mode it must be real-valued
    mode : 'complex' or 'real'
    name : str, label for tables and plots
    detector : 'ml' for minimum-distance detection, or a callable
        ``detector(y, n0) -> int64 [B]`` with y complex [B, n]
    """

    def __init__(self, codebook, mode, name, detector="ml"):
        self.mode = validate.mode(mode)
        cb = np.asarray(codebook)
        if cb.ndim != 2:
            raise ValueError(f"codebook must have shape [M, n], got {cb.shape}")
        self.M, self.n = validate.sizes(cb.shape[0], cb.shape[1])
        cb = cb.astype(np.complex128)
        if mode == "real" and np.any(cb.imag != 0):
            # Silently dropping the imaginary part would change the energy the
            # caller thinks it is sending.
            raise ValueError("codebook must be real-valued in 'real' mode")
        energy = float(np.mean(np.abs(cb) ** 2))
        if not energy > 0:
            raise ValueError("codebook has zero energy")
        self.energy_scale = 1.0 / np.sqrt(energy)
        self.codebook = cb * self.energy_scale
        if detector != "ml" and not callable(detector):
            raise ValueError(f"detector must be 'ml' or a callable, got {detector!r}")
        self.detector = detector
        self.name = str(name)

    def transmit(self, messages):
        """int64 [B] -> complex128 [B, n] codewords."""
        return self.codebook[_check_messages(messages, self.M)]

    def receive(self, y, n0):
        """complex [B, n], float N0 -> int64 [B] decided messages."""
        if self.detector == "ml":
            return ml_detect(y, self.codebook, self.mode)
        return np.asarray(self.detector(y, n0), dtype=np.int64)

    def __repr__(self):
        return f"CodebookLink(name={self.name!r}, M={self.M}, n={self.n}, mode={self.mode!r})"


# --- uncoded modulations -------------------------------------------------------

def _gray_pam4():
    # Gray on 4 levels, first bit = sign as in BPSK (0 -> +): 00 +3, 01 +1, 11 -1, 10 -3.
    return np.array([3.0, 1.0, -3.0, -1.0])


# modulation -> (bits per symbol, constellation indexed by the symbol's bits MSB first, mode)
_MODULATIONS = {
    "bpsk": (1, np.array([1.0, -1.0], dtype=np.complex128), "real"),
    "qpsk": (2, np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / np.sqrt(2.0), "complex"),
    "16qam": (4, (np.repeat(_gray_pam4(), 4) + 1j * np.tile(_gray_pam4(), 4)) / np.sqrt(10.0),
              "complex"),
}


class UncodedLink:
    """k message bits on n = k / b symbols of a Gray-mapped constellation.

    Message bits (MSB first) are cut into n groups of b bits; group j picks
    the constellation point of channel use j. Every constellation has unit
    mean energy, so Es = 1. Detection is symbol by symbol, which is ML
    because the codebook is the Cartesian product of the per-use
    constellations and the noise is independent across uses.
    """

    def __init__(self, bits_per_message, modulation):
        validate.choice("modulation", modulation, tuple(_MODULATIONS))
        b, points, mode = _MODULATIONS[modulation]
        k = bits_per_message
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 62 or k % b:
            raise ValueError(f"bits_per_message must be a multiple of {b} in [1, 62] for "
                             f"{modulation}, got {bits_per_message!r}")
        self.k, self.bits_per_symbol, self.constellation = int(k), b, points
        self.M, self.n, self.mode = 1 << self.k, self.k // b, mode
        self.modulation = modulation
        self.name = f"uncoded {modulation.upper()} ({self.k} bits)"

    def _symbol_indices(self, messages):
        bits = message_bits(messages, self.k).reshape(-1, self.n, self.bits_per_symbol)
        return _bits_to_int(bits)

    def transmit(self, messages):
        """int64 [B] -> complex128 [B, n] symbols."""
        return self.constellation[self._symbol_indices(_check_messages(messages, self.M))]

    def receive(self, y, n0):
        """complex [B, n], float N0 -> int64 [B] decided messages."""
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] != self.n:
            raise ValueError(f"y must have shape [B, {self.n}], got {y.shape}")
        sym = ml_detect(y.reshape(-1, 1), self.constellation[:, None], self.mode)
        bits = message_bits(sym, self.bits_per_symbol).reshape(y.shape[0], self.k)
        return _bits_to_int(bits)

    @property
    def codebook(self):
        """complex128 [M, n], every codeword (only sensible for small k)."""
        return self.transmit(np.arange(self.M))

    def __repr__(self):
        return f"UncodedLink({self.k}, {self.modulation!r})"


def uncoded_link(bits_per_message, modulation):
    """Uncoded Gray 'bpsk' (real mode), 'qpsk' or '16qam' (complex) link with ML detection."""
    return UncodedLink(bits_per_message, modulation)


# --- Hamming (7,4) -------------------------------------------------------------

# Systematic generator G = [I4 | P]: codeword = (d1 d2 d3 d4 p1 p2 p3), with
# p1 = d1+d2+d4, p2 = d1+d3+d4, p3 = d2+d3+d4 (mod 2).
HAMMING74_P = np.array([[1, 1, 0],
                        [1, 0, 1],
                        [0, 1, 1],
                        [1, 1, 1]], dtype=np.uint8)
HAMMING74_G = np.concatenate([np.eye(4, dtype=np.uint8), HAMMING74_P], axis=1)
# Parity check H = [P^T | I3]; G H^T = 0 (mod 2).
HAMMING74_H = np.concatenate([HAMMING74_P.T, np.eye(3, dtype=np.uint8)], axis=1)


def _syndrome_table():
    # The columns of H are the 7 distinct non-zero syndromes: syndrome s means
    # a single error at the bit whose column equals s.
    table = np.full(8, -1, dtype=np.int64)
    table[_bits_to_int(HAMMING74_H.T)] = np.arange(7)
    return table


_SYNDROME_TO_POSITION = _syndrome_table()


def hamming74_encode(messages):
    """int [B] in [0, 16) -> uint8 [B, 7] codewords (4 data bits MSB first, then 3 parity)."""
    return (message_bits(messages, 4).astype(np.int64) @ HAMMING74_G % 2).astype(np.uint8)


def hamming74_syndrome_decode(bits):
    """Hard-decision syndrome decoding, correcting any single bit error.

    Input
    -----
    bits : uint8 array [B, 7], received hard bits

    Output
    ------
    int64 array [B], decided messages (the 4 systematic bits after correction).
    """
    r = np.asarray(bits, dtype=np.int64) & 1
    pos = _SYNDROME_TO_POSITION[_bits_to_int(r @ HAMMING74_H.T % 2)]
    rows = np.nonzero(pos >= 0)[0]
    r[rows, pos[rows]] ^= 1
    return _bits_to_int(r[:, :4])


def _hamming74_hard_detector(y, n0):
    # BPSK maps bit 0 to +1, so a negative real part is a 1.
    return hamming74_syndrome_decode((np.asarray(y).real < 0).astype(np.uint8))


def hamming74_link(decoding):
    """Hamming (7,4) on BPSK in real mode: M = 16, n = 7, bit c -> 1 - 2c.

    decoding : 'soft' for ML detection over the 16 codewords, 'hard' for
        per-bit hard decisions followed by syndrome decoding.
    """
    codebook = 1.0 - 2.0 * hamming74_encode(np.arange(16)).astype(np.float64)
    if decoding == "soft":
        return CodebookLink(codebook, "real", "Hamming (7,4) soft ML")
    if decoding == "hard":
        return CodebookLink(codebook, "real", "Hamming (7,4) hard", detector=_hamming74_hard_detector)
    validate.choice("decoding", decoding, ("soft", "hard"))
