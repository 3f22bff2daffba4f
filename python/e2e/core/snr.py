"""Signal-to-noise conventions shared by every part of gr-e2e (DESIGN.md).

A message carries k = log2(M) bits on n channel uses. Average energy per
channel use is Es = 1 (a complex symbol in ``complex`` mode, a real symbol in
``real`` mode). With rate R = k / n bits per channel use:

    N0 = 1 / (R * Eb/N0)        noise variance N0/2 per real dimension
    SNR = Es / N0 = R * Eb/N0

In ``real`` mode the imaginary parts carry no signal; a receiver ignores them,
so the same N0/2 per real dimension holds on the real part.
"""
import math


def db_to_linear(db):
    return 10.0 ** (float(db) / 10.0)


def linear_to_db(x):
    return 10.0 * math.log10(x)


def bits_per_message(M):
    """k = log2(M) (need not be an integer for M not a power of two)."""
    return math.log2(M)


def rate(M, n):
    """R = k / n bits per channel use."""
    return bits_per_message(M) / n


def ebn0_db_to_snr_db(ebn0_db, M, n):
    """SNR = Es/N0 in dB for a given Eb/N0 in dB."""
    return float(ebn0_db) + linear_to_db(rate(M, n))


def snr_db_to_ebn0_db(snr_db, M, n):
    return float(snr_db) - linear_to_db(rate(M, n))


def n0_from_ebn0_db(ebn0_db, M, n):
    """Noise spectral density N0 (Es = 1) at the given Eb/N0 in dB."""
    return 1.0 / (rate(M, n) * db_to_linear(ebn0_db))


def n0_from_snr_db(snr_db):
    return 1.0 / db_to_linear(snr_db)


def noise_std_per_real_dim(ebn0_db, M, n):
    """Standard deviation sqrt(N0/2) of the noise on each real dimension."""
    return math.sqrt(n0_from_ebn0_db(ebn0_db, M, n) / 2.0)


def noise_amplitude(ebn0_db, M, n):
    """Amplitude of complex noise with N0 at this Eb/N0, for GNU Radio's noise blocks: sqrt(N0).

    analog.noise_source_c(GR_GAUSSIAN, amplitude) emits complex noise of
    total variance amplitude**2 (amplitude**2 / 2 per real dimension), and
    channels.channel_model's noise_voltage means the same; both are measured
    in tests/test_noise_blocks.py.
    """
    return math.sqrt(n0_from_ebn0_db(ebn0_db, M, n))
