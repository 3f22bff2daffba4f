"""SNR conventions (DESIGN.md) in core.snr.

Es = 1 per channel use, R = log2(M) / n, N0 = 1 / (R Eb/N0), noise variance
N0/2 per real dimension, SNR = Es/N0 = Eb/N0 + 10 log10 R (in dB). Expected
values are worked out by hand here, not by calling the module twice.
"""
import math

import pytest

from gnuradio.e2e.core import snr


# --- conventions ---------------------------------------------------------------

def test_rate_and_bits():
    assert snr.bits_per_message(16) == 4
    assert snr.bits_per_message(2) == 1
    assert snr.rate(16, 7) == pytest.approx(4 / 7, rel=1e-15)
    assert snr.rate(256, 4) == pytest.approx(2.0, rel=1e-15)
    # M need not be a power of two
    assert snr.rate(3, 1) == pytest.approx(math.log2(3), rel=1e-15)


@pytest.mark.parametrize("db, linear", [(0, 1.0), (10, 10.0), (-10, 0.1), (3, 1.9952623149688795),
                                        (20, 100.0)])
def test_db_linear_round_trip(db, linear):
    assert snr.db_to_linear(db) == pytest.approx(linear, rel=1e-12)
    assert snr.linear_to_db(linear) == pytest.approx(db, abs=1e-12)


def test_n0_hand_values():
    # M=16, n=7: R = 4/7; at 0 dB, N0 = 7/4
    assert snr.n0_from_ebn0_db(0.0, 16, 7) == pytest.approx(7 / 4, rel=1e-12)
    # at 10 dB, N0 = 1 / (4/7 * 10)
    assert snr.n0_from_ebn0_db(10.0, 16, 7) == pytest.approx(7 / 40, rel=1e-12)
    # rate 1 (BPSK, M=2, n=1): N0 = 1 / (Eb/N0)
    assert snr.n0_from_ebn0_db(6.0, 2, 1) == pytest.approx(10 ** -0.6, rel=1e-12)


@pytest.mark.parametrize("ebn0_db", [-5.0, 0.0, 3.0, 4.0, 8.0, 20.0])
@pytest.mark.parametrize("M, n", [(16, 7), (2, 1), (256, 4), (4, 2), (16, 4), (64, 1)])
def test_n0_formula(ebn0_db, M, n):
    R = math.log2(M) / n
    n0 = 1.0 / (R * 10 ** (ebn0_db / 10))
    assert snr.n0_from_ebn0_db(ebn0_db, M, n) == pytest.approx(n0, rel=1e-12)
    assert snr.noise_std_per_real_dim(ebn0_db, M, n) == pytest.approx(math.sqrt(n0 / 2), rel=1e-12)
    # GNU Radio channel_model: noise_voltage**2 is the total complex variance N0
    assert snr.noise_amplitude(ebn0_db, M, n) == pytest.approx(math.sqrt(n0), rel=1e-12)
    # SNR = Es/N0 with Es = 1
    snr_db = snr.ebn0_db_to_snr_db(ebn0_db, M, n)
    assert snr_db == pytest.approx(ebn0_db + 10 * math.log10(R), abs=1e-12)
    assert snr.n0_from_snr_db(snr_db) == pytest.approx(n0, rel=1e-12)
    assert snr.snr_db_to_ebn0_db(snr_db, M, n) == pytest.approx(ebn0_db, abs=1e-12)


def test_design_reference_qpsk_point():
    # DESIGN.md: uncoded QPSK, 8 bits on 4 complex uses (R = 2) at SNR 10 dB
    # is Eb/N0 = 10 - 10 log10 2 = 6.9897 dB.
    assert snr.snr_db_to_ebn0_db(10.0, 256, 4) == pytest.approx(10 - 3.010299956639812, abs=1e-12)
    assert snr.ebn0_db_to_snr_db(4.0, 16, 7) == pytest.approx(4.0 - 2.4303804868629446, abs=1e-12)


def test_higher_ebn0_means_less_noise():
    n0s = [snr.n0_from_ebn0_db(e, 16, 7) for e in range(-5, 15)]
    assert all(a > b for a, b in zip(n0s, n0s[1:]))
