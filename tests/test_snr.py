"""SNR conventions (DESIGN.md) and parameter validation in core.snr.

Es = 1 per channel use, R = log2(M) / n, N0 = 1 / (R Eb/N0), noise variance
N0/2 per real dimension, SNR = Es/N0 = Eb/N0 + 10 log10 R (in dB). Expected
values are worked out by hand here, not by calling the module twice.
"""
import math

import numpy as np
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
    assert snr.channel_model_noise_voltage(ebn0_db, M, n) == pytest.approx(math.sqrt(n0), rel=1e-12)
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


# --- validation ------------------------------------------------------------------

@pytest.mark.parametrize("M, n", [(2, 1), (16, 7), (1024, 100), (np.int64(16), np.int32(7)), (3, 5)])
def test_validate_M_n_accepts(M, n):
    got = snr.validate_M_n(M, n)
    assert got == (int(M), int(n))
    assert all(type(v) is int for v in got)


BAD_SIZES = [-1, -16, 0, 16.0, 7.5, True, False, float("nan"), float("inf"), "16", "abc", None, [16]]


@pytest.mark.parametrize("bad", BAD_SIZES + [1])  # M needs >= 2
def test_validate_M_n_rejects_M(bad):
    with pytest.raises(ValueError, match=r"^M must") as e:
        snr.validate_M_n(bad, 7)
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize("bad", BAD_SIZES)
def test_validate_M_n_rejects_n(bad):
    with pytest.raises(ValueError, match=r"^n must") as e:
        snr.validate_M_n(16, bad)
    assert repr(bad) in str(e.value)


@pytest.mark.parametrize("value", [-10, -3.5, 0, 0.0, 4, 7.25, np.float32(3.0), np.int64(2)])
def test_validate_db_accepts(value):
    got = snr.validate_db("ebn0_db", value)
    assert type(got) is float and got == float(value)


@pytest.mark.parametrize("bad", [float("nan"), np.nan, float("inf"), -float("inf"), True, False,
                                 "abc", "", None, [3.0], {}, object()])
@pytest.mark.parametrize("name", ["ebn0_db", "snr_db"])
def test_validate_db_rejects(bad, name):
    with pytest.raises(ValueError, match=rf"^{name} must") as e:
        snr.validate_db(name, bad)
    assert repr(bad) in str(e.value)


def test_validate_mode():
    assert snr.validate_mode("complex") == "complex"
    assert snr.validate_mode("real") == "real"
    for bad in ("Complex", "imag", "", None, 1):
        with pytest.raises(ValueError, match=r"^mode must"):
            snr.validate_mode(bad)
