"""core.ofdm: layout, message mapping, header length field, frame counter, simulated channel taps."""
import numpy as np
import pytest

from gnuradio.e2e.core import ofdm


def test_the_papers_layout():
    """FFT 128, 6 guard carriers at each edge, DC unused: 115 active carriers, 4 of them pilots."""
    data, pilots = ofdm.default_carriers(128)
    assert pilots == (-43, -15, 15, 43)
    assert len(data) + len(pilots) == 128 - 2 * 6 - 1
    assert 0 not in data and min(data) == -58 and max(data) == 57 and len(set(data)) == len(data)
    # Interleaved: the header's 32 bits, on the first 32 data carriers, span the band.
    assert min(data[:32]) < -50 and max(data[:32]) > 50
    # FFT 64 gives GNU Radio's (and 802.11a's) pilots.
    assert ofdm.default_carriers(64, guard=6)[1] == (-21, -7, 7, 21)
    lay = ofdm.OfdmLayout(n=7, messages_per_frame=250)
    assert (lay.fft_len, lay.cp_len, lay.carriers_per_symbol) == (128, 16, 111)
    assert lay.messages_per_block == 111 and lay.frame_symbols == 3 * 7  # ceil(250 / 111) blocks of n symbols
    assert lay.payload_elements == 21 * 111 and lay.message_symbols == 1750
    assert lay.frame_samples == (3 + 21) * 144


def stock_frame_len(length_field, carriers):
    """What packet_header_ofdm's parser computes (bits_per_payload_sym = 1), written out from its source."""
    symbols = length_field * 8
    frame_len, accounted = 0, 0
    while accounted < symbols:
        frame_len += 1
        accounted += carriers
    return symbols, frame_len


def test_interleaving_is_a_permutation_with_spread_runs():
    carriers = list(range(-58, 0)) + list(range(1, 58))
    order = ofdm.interleaved(carriers)
    assert sorted(order) == sorted(carriers)
    assert min(np.abs(np.diff(order[:32]))) >= 3  # no two neighbours among the header's carriers


@pytest.mark.parametrize("n, mpf, mapping", [(7, 250, "subcarrier"), (4, 1000, "subcarrier"), (7, 100, "symbol"),
                                             (1, 33, "symbol"), (2, 3000, "subcarrier")])
def test_the_header_length_field_gives_the_stock_parser_our_frame_length(n, mpf, mapping):
    lay = ofdm.OfdmLayout(n=n, messages_per_frame=mpf, mapping=mapping)
    symbols, frame_len = stock_frame_len(lay.length_field, lay.carriers_per_symbol)
    assert frame_len == lay.frame_symbols
    assert symbols <= lay.payload_elements and lay.length_field <= ofdm.MAX_LENGTH_FIELD


@pytest.mark.parametrize("mapping", ofdm.MAPPINGS)
def test_mapping_round_trips_and_pads_with_zeros(mapping):
    lay = ofdm.OfdmLayout(n=5, messages_per_frame=300, mapping=mapping)
    x = (np.arange(1500) + 1j).reshape(300, 5)
    payload = lay.to_payload(x)
    assert payload.shape == (lay.payload_elements,)
    assert np.count_nonzero(payload) == 1500  # every symbol once; the rest is padding
    np.testing.assert_array_equal(lay.from_payload(payload), x)


def test_subcarrier_mapping_puts_a_message_on_one_carrier_across_n_symbols():
    lay = ofdm.OfdmLayout(n=7, messages_per_frame=250)
    carriers = lay.carrier_of_message()
    assert np.all(carriers == carriers[:, :1])  # one carrier per message
    D = lay.carriers_per_symbol
    order = lay._order()
    np.testing.assert_array_equal(np.diff(order, axis=1), D)  # consecutive OFDM symbols
    assert len(set(carriers[:D, 0])) == D  # the first block uses every data carrier once
    assert list(carriers[:D, 0]) == list(lay.data_carriers)


def test_symbol_mapping_keeps_a_message_in_one_ofdm_symbol():
    lay = ofdm.OfdmLayout(n=7, messages_per_frame=100, mapping="symbol")
    order = lay._order()
    D = lay.carriers_per_symbol
    assert np.all(order // D == order[:, :1] // D) and lay.messages_per_block == D // 7


def test_sync_words_are_gnu_radios_and_leave_the_global_random_state_alone():
    from gnuradio.digital import ofdm_txrx
    data, pilots = ofdm.default_carriers(128)
    state = np.random.get_state()
    w1, w2 = ofdm.sync_words(128, data + pilots)
    assert np.array_equal(np.random.get_state()[1], state[1])
    np.testing.assert_allclose(w1, ofdm_txrx._make_sync_word1(128, (data,), (pilots,)))
    np.testing.assert_allclose(w2, ofdm_txrx._make_sync_word2(128, (data,), (pilots,)))
    np.random.set_state(state)
    # Word 1 on every second carrier only: two identical halves in time (up to sign), for Schmidl & Cox.
    t = np.fft.ifft(np.fft.ifftshift(w1))
    np.testing.assert_allclose(np.abs(t[:64]), np.abs(t[64:]), atol=1e-12)


def test_frame_counter_unwraps_the_12_bit_field():
    c = ofdm.FrameCounter()
    got = [c.push(v % 4096) for v in (0, 1, 2, 4094, 4095, 4096, 4097, 8000)]
    assert got == [0, 1, 2, 4094, 4095, 4096, 4097, 8000]
    assert c.lost == (4094 - 3) + (8000 - 4098)
    assert c.push(8000 % 4096) is None and c.repeated == 1  # the same frame twice is refused
    assert c.push((8000 + 5000) % 4096) == 8000 + 5000 - 4096  # 4096 or more lost: read as fewer (documented)
    late = ofdm.FrameCounter()
    assert late.push(17) == 17 and late.lost == 17  # frames sent before the receiver listened
    with pytest.raises(ValueError, match="^frame number must be an integer in"):
        late.push(4096)


def test_batch_of_frame():
    assert ofdm.batch_of_frame(0, 2, 250, 7) == (0, 0)
    assert ofdm.batch_of_frame(5, 2, 250, 7) == (2, 1750)
    assert ofdm.batch_of_frame(5, 1, 250, 7) == (5, 0)


def test_multipath_taps():
    taps = ofdm.multipath_taps()
    assert np.isclose(np.sum(np.abs(taps) ** 2), 1.0) and len(taps) == 6 + 8 <= 16  # within the cyclic prefix
    # No fractional delay: the profile itself, delayed by the interpolator's half length.
    profile = np.zeros(6, complex)
    for d, g in ofdm.DEFAULT_PATHS:
        profile[d] = g
    np.testing.assert_allclose(taps[4:10], profile / np.linalg.norm(profile), atol=1e-12)
    shifted = ofdm.multipath_taps(fractional_delay=0.5)
    assert np.abs(shifted[4]) < 0.8 * np.abs(taps[4])  # energy spread between samples
    with pytest.raises(ValueError, match="^fractional_delay must be"):
        ofdm.multipath_taps(fractional_delay=1.0)
    assert ofdm.cfo_phase_increment(0.5, 128) == pytest.approx(np.pi / 128)


def test_efficiency_counts_sync_header_and_pilots():
    lay = ofdm.OfdmLayout(n=4, messages_per_frame=999)  # 9 blocks of 111 carriers, 36 payload symbols
    assert lay.frame_symbols == 36
    assert lay.efficiency(8) == pytest.approx(8 * 999 / (39 * 115))


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(messages_per_frame=0), "messages_per_frame"), (dict(fft_len=4), "fft_len"),
    (dict(cp_len=128), "cp_len"), (dict(cp_len=-1), "cp_len"), (dict(mapping="time"), "mapping"),
    (dict(data_carriers=[0, 1]), "data_carriers"), (dict(data_carriers=list(range(1, 20))), "data_carriers"),
    (dict(data_carriers=[64] + list(range(1, 40))), "data_carriers"),
    (dict(data_carriers=[1, 1] + list(range(2, 40))), "data_carriers"),
    (dict(pilot_carriers=[5]), "data_carriers and pilot_carriers"),
    (dict(pilot_symbols=[1, 1]), "pilot_symbols"), (dict(n=120, mapping="symbol"), "n="),
    (dict(n=7, messages_per_frame=5000), "messages_per_frame"),
])
def test_layout_errors_name_the_parameter(kwargs, name):
    args = {"n": 7, "messages_per_frame": 250, **kwargs}
    with pytest.raises(ValueError, match=f"^{name}"):
        ofdm.OfdmLayout(**args)


def test_header_repetition_fills_whole_32_slots_and_leaves_the_rest():
    bits = np.zeros(100, np.uint8)
    bits[:32] = np.random.default_rng(0).integers(0, 2, 32)
    out = ofdm.repeat_header(bits)
    assert ofdm.header_copies(100) == 3
    for k in range(3):
        np.testing.assert_array_equal(out[32 * k:32 * (k + 1)], bits[:32])
    np.testing.assert_array_equal(out[96:], 0)  # the 4 left over stay as the generator made them
    np.testing.assert_array_equal(bits[32:], 0)  # the input is not modified


def test_maximum_ratio_combining_recovers_bits_a_fade_took_from_one_copy():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 32)
    tx = 1 - 2.0 * ofdm.repeat_header(np.concatenate([bits, np.zeros(68, int)]))
    gains = np.ones(100, complex)
    gains[:32] = 0.05  # copy 0 in a deep fade: its equalised symbols are mostly noise
    noise = (rng.standard_normal(100) + 1j * rng.standard_normal(100)) * 0.3
    equalised = tx + noise / gains
    combined = ofdm.combine_header(equalised, gains)
    assert np.all((combined[:32].real < 0) == bits.astype(bool))
    # Without weights the noisy copy dominates the sum, and bits are lost.
    assert np.any((ofdm.combine_header(equalised)[:32].real < 0) != bits.astype(bool))
    # Noiseless and flat: the combined symbols are the transmitted ones.
    np.testing.assert_allclose(ofdm.combine_header(tx, np.full(100, 2.0))[:32], tx[:32])
