"""Classical baselines: Hamming (7,4) code and decoders, ML detector, uncoded links."""
import itertools

import numpy as np
import pytest

from gnuradio.e2e.core import baselines as bl


def brute_force_ml(y, codebook, mode):
    if mode == "real":
        d = (y.real[:, None, :] - codebook.real[None, :, :]) ** 2
    else:
        d = np.abs(y[:, None, :] - codebook[None, :, :]) ** 2
    return np.argmin(d.sum(axis=-1), axis=1)


# --- message_bits ----------------------------------------------------------------

def test_message_bits_msb_first():
    bits = bl.message_bits(np.array([0, 1, 5, 15, 8]), 4)
    assert bits.dtype == np.uint8 and bits.shape == (5, 4)
    np.testing.assert_array_equal(bits, [[0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 1],
                                         [1, 1, 1, 1], [1, 0, 0, 0]])


def test_message_bits_round_trip_and_k_validation():
    m = np.arange(1 << 10)
    bits = bl.message_bits(m, 10)
    np.testing.assert_array_equal(bits.astype(np.int64) @ (1 << np.arange(9, -1, -1)), m)
    for bad in (0, 64):
        with pytest.raises(ValueError, match="k"):
            bl.message_bits(m, bad)


# --- Hamming (7,4) -----------------------------------------------------------------

ALL_CODEWORDS = bl.hamming74_encode(np.arange(16))


def test_hamming_code_structure():
    assert not np.any(bl.HAMMING74_G.astype(int) @ bl.HAMMING74_H.T.astype(int) % 2)
    # Systematic: the first four bits are the message bits, MSB first.
    np.testing.assert_array_equal(ALL_CODEWORDS[:, :4], bl.message_bits(np.arange(16), 4))
    weights = ALL_CODEWORDS.sum(axis=1)
    assert dict(zip(*np.unique(weights, return_counts=True))) == {0: 1, 3: 7, 4: 7, 7: 1}
    dmin = min(int(np.sum(a != b)) for a, b in itertools.combinations(ALL_CODEWORDS, 2))
    assert dmin == 3


def test_hamming_hard_corrects_every_single_error():
    link = bl.hamming74_link("hard")
    patterns = np.vstack([np.zeros((1, 7), np.uint8), np.eye(7, dtype=np.uint8)])  # 8 patterns
    sent = np.repeat(np.arange(16), len(patterns))
    received_bits = ALL_CODEWORDS[sent] ^ np.tile(patterns, (16, 1))
    np.testing.assert_array_equal(bl.hamming74_syndrome_decode(received_bits), sent)
    # Through the link: BPSK symbols with arbitrary positive reliabilities.
    amp = np.random.default_rng(0).uniform(0.1, 3.0, received_bits.shape)
    y = (1.0 - 2.0 * received_bits) * amp + 0j
    np.testing.assert_array_equal(link.receive(y, 1.0), sent)


def test_hamming_hard_double_errors_decode_to_another_codeword():
    # A perfect code: every word is within distance 1 of exactly one codeword,
    # so two flips always land on a wrong codeword (the decoder does not cheat).
    for m, (i, j) in itertools.product(range(16), itertools.combinations(range(7), 2)):
        r = ALL_CODEWORDS[m].copy()
        r[[i, j]] ^= 1
        assert bl.hamming74_syndrome_decode(r[None])[0] != m


def test_hamming_links_zero_noise_and_shape():
    for decoding in ("soft", "hard"):
        link = bl.hamming74_link(decoding)
        assert (link.M, link.n, link.mode) == (16, 7, "real")
        x = link.transmit(np.arange(16))
        assert x.dtype == np.complex128 and x.shape == (16, 7)
        np.testing.assert_array_equal(x.real, 1.0 - 2.0 * ALL_CODEWORDS)
        assert not np.any(x.imag)
        # Real mode: a huge imaginary part must not change the decision.
        y = x + 100j * np.random.default_rng(1).standard_normal(x.shape)
        np.testing.assert_array_equal(link.receive(y, 0.1), np.arange(16))
    with pytest.raises(ValueError, match="decoding"):
        bl.hamming74_link("soft-ish")


# --- ML detector -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["complex", "real"])
def test_ml_detect_equals_brute_force(mode):
    rng = np.random.default_rng(7)
    M, n, B = 37, 5, 4000
    codebook = rng.standard_normal((M, n)) + (1j * rng.standard_normal((M, n)) if mode == "complex" else 0)
    y = codebook[rng.integers(0, M, B)] + 0.8 * (rng.standard_normal((B, n)) + 1j * rng.standard_normal((B, n)))
    expected = brute_force_ml(y, codebook, mode)
    np.testing.assert_array_equal(bl.ml_detect(y, codebook, mode), expected)
    # Chunking (here 3 rows at a time) must not change a single decision.
    np.testing.assert_array_equal(bl.ml_detect(y, codebook, mode, chunk_elements=3 * M), expected)
    # The link wrapper decides the same way (scaling codebook and y together keeps argmin).
    link = bl.CodebookLink(codebook, mode, "random")
    np.testing.assert_array_equal(link.receive(y * link.energy_scale, 1.0), expected)


def test_ml_detect_large_codebook_chunks():
    rng = np.random.default_rng(3)
    M, n, B = 256, 4, 20000
    codebook = rng.standard_normal((M, n)) + 1j * rng.standard_normal((M, n))
    sent = rng.integers(0, M, B)
    y = codebook[sent] + 0.3 * (rng.standard_normal((B, n)) + 1j * rng.standard_normal((B, n)))
    got = bl.ml_detect(y, codebook, "complex", chunk_elements=4096)
    np.testing.assert_array_equal(got[:500], brute_force_ml(y[:500], codebook, "complex"))
    np.testing.assert_array_equal(got, bl.ml_detect(y, codebook, "complex"))


# --- codebooks and energy ---------------------------------------------------------

def test_codebook_link_normalises_to_unit_energy_per_use():
    rng = np.random.default_rng(11)
    cb = 3.7 * (rng.standard_normal((64, 6)) + 1j * rng.standard_normal((64, 6)))
    link = bl.CodebookLink(cb, "complex", "x")
    assert np.mean(np.abs(link.codebook) ** 2) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(link.codebook, cb * link.energy_scale)
    with pytest.raises(ValueError, match="real"):
        bl.CodebookLink(cb, "real", "x")
    with pytest.raises(ValueError, match="messages"):
        link.transmit(np.array([0, 64]))


@pytest.mark.parametrize("k,modulation,n,mode", [
    (4, "bpsk", 4, "real"), (8, "qpsk", 4, "complex"), (8, "16qam", 2, "complex"),
])
def test_uncoded_unit_energy_and_round_trip(k, modulation, n, mode):
    link = bl.uncoded_link(k, modulation)
    assert (link.M, link.n, link.mode) == (1 << k, n, mode)
    m = np.arange(link.M)
    x = link.transmit(m)
    assert x.shape == (link.M, n) and x.dtype == np.complex128
    # Uniform messages: the mean over every message is the mean energy per use.
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, rel=1e-12)
    if mode == "real":
        assert not np.any(x.imag)
    np.testing.assert_array_equal(link.receive(x, 1.0), m)
    # Per-symbol detection is ML: it must agree with minimum distance over the codebook.
    rng = np.random.default_rng(5)
    y = x[rng.integers(0, link.M, 3000)] + 0.7 * (rng.standard_normal((3000, n)) + 1j * rng.standard_normal((3000, n)))
    np.testing.assert_array_equal(link.receive(y, 1.0), bl.ml_detect(y, link.codebook, mode))


def test_uncoded_large_k_round_trip():
    link = bl.uncoded_link(32, "16qam")
    m = np.random.default_rng(2).integers(0, link.M, 1000)
    np.testing.assert_array_equal(link.receive(link.transmit(m), 1.0), m)


@pytest.mark.parametrize("modulation", ["qpsk", "16qam"])
def test_uncoded_gray_mapping(modulation):
    pts = bl.uncoded_link(4, modulation).constellation
    b = int(np.log2(len(pts)))
    d = np.abs(pts[:, None] - pts[None, :])
    dmin = d[d > 0].min()
    for i, j in zip(*np.nonzero(np.isclose(d, dmin))):
        assert bin(i ^ j).count("1") == 1, (b, i, j)


def test_uncoded_rejects_bad_sizes():
    with pytest.raises(ValueError, match="bits_per_message"):
        bl.uncoded_link(3, "qpsk")
    with pytest.raises(ValueError, match="modulation"):
        bl.uncoded_link(4, "8psk")
