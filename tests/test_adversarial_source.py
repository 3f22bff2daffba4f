"""adversarial_source: construction checks, exact PSR in the stream, alignment with the offline attack,
run-time setters, the enable port, jamming, generative mode, metrics.

Every test drives the block through a running flowgraph; messages and
setter calls reach it mid-stream through blocks downstream of it (post_at,
call_at), so the runs end by themselves and nothing polls a clock.
"""
import math

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, e2e, gr

from flowgraph_helpers import call_at, post_at
from gnuradio.e2e.adversarial_source import parse_enable_message, require_attack_files
from gnuradio.e2e.core import adversary, attacks, channels, checkpoint, prng, theory
from gnuradio.e2e.core.models import complex_to_real, decide
from gnuradio.e2e.core.perturbation import PerturbationConfig, save_perturbation

M, N = 16, 7
PSR_DB = -6.0


def bounded(block, items=1024):
    """block with a small output buffer: it runs at most ~`items` ahead of the block after it."""
    block.set_max_output_buffer(items)
    return block


def energies(stream):
    """Energy of each n-symbol message block: float64 [len // n]."""
    rows = np.asarray(stream, dtype=np.complex128).reshape(-1, N)
    return np.sum(np.abs(rows) ** 2, axis=1)


def run(src, x, *between, max_items=None):
    """vector_source_c(x) -> src -> between... -> vector_sink; the sink's data as complex64."""
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(np.asarray(x, np.complex64).tolist()), src, *between, sink)
    tb.run(max_items) if max_items else tb.run()
    return np.array(sink.data(), dtype=np.complex64)


@pytest.fixture(scope="module")
def universal_file(tmp_path_factory, tiny_link):
    """A universal perturbation crafted on tiny_link at -6 dB, saved; returns (path, p complex64 [n])."""
    labels = torch.from_numpy(prng.numpy_rng(5, prng.ATTACK).integers(0, M, 1000))
    y = attacks.received_signals(tiny_link.encoder, labels, 8.0, prng.torch_generator(5, prng.ATTACK, 1))
    p = attacks.universal_perturbation(tiny_link.decoder, y, labels, PSR_DB)
    path = tmp_path_factory.mktemp("attack") / "universal.safetensors"
    save_perturbation(path, PerturbationConfig(M=M, n=N, psr_db=PSR_DB, crafted_on="tiny"), p)
    return str(path), p.numpy()


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    cfg = adversary.AdversaryConfig(M=M, n=N, mode="complex", psr_db=PSR_DB)
    torch.manual_seed(3)  # the test's own weights; any will do
    gen = adversary.PerturbationGenerator(cfg).eval()
    path = tmp_path_factory.mktemp("adv") / "generator.safetensors"
    adversary.save_adversary(path, cfg, gen)
    return str(path), gen


def transmitted(encoder, count, seed=0):
    msgs = np.random.default_rng(seed).integers(0, M, count)
    return msgs, encoder.symbol_table()[msgs].reshape(-1)


# --- construction -------------------------------------------------------------------

def test_bad_parameters_are_refused_naming_them(tmp_path, tiny_link, universal_file, generator_file):
    path, _ = universal_file
    cases = [
        (dict(mode="fgm", source=path), r"^mode must be one of .*'fgm'"),
        (dict(mode="universal", source=path, psr_db=-61.0), r"^psr_db must be .*-61"),
        (dict(mode="universal", source=path, psr_db=21), r"^psr_db must be .*21"),
        (dict(mode="universal", source=path, psr_db=float("nan")), r"^psr_db must be"),
        (dict(mode="universal", source=path, symbol_offset=7), r"^symbol_offset must be an integer in \[0, 6\], got 7"),
        (dict(mode="universal", source=path, seed=-1), r"^seed must be"),
        (dict(mode="universal", source=path, craft_messages=0), r"^craft_messages must be"),
        (dict(mode="jamming", source="", jamming_mode="both"), r"^jamming_mode must be one of"),
        (dict(mode="jamming", source="", enabled="yes"), r"^enabled must be True or False"),
        (dict(mode="universal", source=""), r"^source must name a file for mode 'universal'"),
        (dict(mode="universal", source="hamming74", M=32), r"hamming74.*M=16 and n=7"),
        # a file of another kind than the mode reads
        (dict(mode="generative", source=tiny_link.path), r"is a autoencoder checkpoint; expected adversary"),
        (dict(mode="universal", source=generator_file[0]),
         r"is a adversary checkpoint; expected autoencoder or perturbation"),
    ]
    for kwargs, pattern in cases:
        args = dict(M=M, n=N)
        args.update(kwargs)
        with pytest.raises(ValueError, match=pattern):
            e2e.adversarial_source(args.pop("mode"), args.pop("source"), args.pop("M"), args.pop("n"), **args)
    # A perturbation file crafted for another n: CheckpointError naming the file and both values.
    other = tmp_path / "n4.safetensors"
    save_perturbation(other, PerturbationConfig(M=M, n=4, psr_db=0.0), np.ones(4, np.complex64))
    with pytest.raises(checkpoint.CheckpointError, match=f"^{other}: has n=4 but n=7 was expected"):
        e2e.adversarial_source("universal", str(other), M, N)


def test_a_missing_source_names_the_command_that_writes_it(tmp_path):
    missing = tmp_path / "universal.safetensors"
    with pytest.raises(checkpoint.CheckpointError) as e:
        e2e.adversarial_source("universal", str(missing), M, N)
    assert str(e.value).startswith(f"{missing}: no such file. ") and "`make bench-adversarial`" in str(e.value)
    with pytest.raises(checkpoint.CheckpointError, match="substitute link.*`gr_e2e train --M 16 --n 7"):
        e2e.adversarial_source("black-box", str(missing), M, N)
    with pytest.raises(checkpoint.CheckpointError, match="adversary checkpoint"):
        e2e.adversarial_source("generative", str(missing), M, N)
    # What the example flowgraphs check before building their blocks.
    require_attack_files(__file__)
    with pytest.raises(checkpoint.CheckpointError, match=f"^{missing}: no such file. `make bench-adversarial`"):
        require_attack_files(__file__, str(missing))


def test_crafting_at_start_is_the_core_attack_on_the_attackers_own_data(tiny_link, other_link):
    """White-box from a link: the block's perturbation is attacks.universal_perturbation on prng.ATTACK data."""
    seed, count = 4, 300
    block = e2e.adversarial_source("universal", tiny_link.path, M, N, psr_db=-3.0, seed=seed, craft_messages=count,
                                   craft_ebn0_db=7.0)
    labels = torch.from_numpy(prng.numpy_rng(seed, prng.ATTACK, 0).integers(0, M, count))
    y = attacks.received_signals(tiny_link.encoder, labels, 7.0, prng.torch_generator(seed, prng.ATTACK, 1))
    p = attacks.universal_perturbation(tiny_link.decoder, y, labels, -3.0,
                                       generator=prng.torch_generator(seed, prng.ATTACK, 2))
    np.testing.assert_allclose(block.perturbation(), p.numpy(), rtol=0, atol=1e-6)
    # Black-box: crafted on the substitute, so another perturbation; shift-invariant when asked.
    sub = e2e.adversarial_source("black-box", other_link.path, M, N, psr_db=-3.0, seed=seed, craft_messages=count,
                                 shift_invariant=True)
    assert "shift-invariant" in sub.crafted and other_link.path in sub.crafted
    assert not np.allclose(sub.perturbation(), block.perturbation())
    assert np.sum(np.abs(sub.perturbation()) ** 2) == pytest.approx(attacks.budget(-3.0, N), rel=1e-6)
    # The Hamming (7,4) stand-in: a real-mode perturbation.
    ham = e2e.adversarial_source("universal", "hamming74", M, N, craft_messages=count)
    assert ham.signal_mode == "real" and np.all(ham.perturbation().imag == 0)


# --- the stream --------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_every_message_block_has_exactly_the_psr(universal_file, generator_file, tiny_link):
    """A perturbation stored at -6 dB played at -2.5 dB: each n-symbol block has budget(-2.5, n), to float32."""
    _, x = transmitted(tiny_link.encoder, 3001)
    target = attacks.budget(-2.5, N)
    for mode, path in (("universal", universal_file[0]), ("generative", generator_file[0])):
        out = run(e2e.adversarial_source(mode, path, M, N, psr_db=-2.5), x)
        assert len(out) == len(x)
        np.testing.assert_allclose(energies(out), target, rtol=2e-6)


@pytest.mark.timeout(60)
def test_adding_the_stream_is_the_offline_perturbed_channel(universal_file, tiny_link):
    """Flowgraph: encoder -> + noise -> + adversarial_source -> nn_decoder; offline: Perturbed(base, p).

    The same noise array in both, so the decided messages must be the same.
    """
    path, p = universal_file
    count = 4000
    msgs = np.random.default_rng(1).integers(0, M, count)
    n0 = 1.0 / (4 / 7 * 10 ** 0.8)  # Eb/N0 = 8 dB
    noise = channels.complex_noise((count, N), n0, prng.torch_generator(9, prng.NOISE))

    class FixedNoise(channels.Channel):  # the base channel: the noise the flowgraph adds
        preserves_real = True

        def forward(self, x, n0, generator=None):
            return x + noise

    x = torch.from_numpy(tiny_link.encoder.symbol_table()[msgs])
    with torch.no_grad():
        y = attacks.Perturbed(FixedNoise(), torch.from_numpy(p))(x, n0)
        offline = decide(tiny_link.decoder(complex_to_real(y))).numpy()

    tb = gr.top_block()
    enc = e2e.nn_encoder(tiny_link.path, M, N)
    adv = e2e.adversarial_source("universal", path, M, N, psr_db=PSR_DB)
    add = blocks.add_cc()
    dec = e2e.nn_decoder(tiny_link.path, M, N)
    received, decided = blocks.vector_sink_c(), blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(msgs.tolist()), enc, (add, 0))
    tb.connect(blocks.vector_source_c(noise.numpy().reshape(-1).tolist()), (add, 1))
    tb.connect(enc, adv, (add, 2))
    tb.connect(add, dec, decided)
    tb.connect(add, received)
    tb.run()
    np.testing.assert_allclose(np.array(received.data()).reshape(-1, N), y.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.array(decided.data()), offline)
    # The attack does something: more errors than the same noise alone.
    with torch.no_grad():
        clean = decide(tiny_link.decoder(complex_to_real(x + noise))).numpy()
    assert np.sum(offline != msgs) > 2 * np.sum(clean != msgs) + 20


@pytest.mark.timeout(60)
def test_symbol_offset_delays_the_perturbation(universal_file, tiny_link):
    path, p = universal_file
    _, x = transmitted(tiny_link.encoder, 1001)
    for s in (0, 3, 6):
        out = run(e2e.adversarial_source("universal", path, M, N, symbol_offset=s), x).reshape(-1, N)
        np.testing.assert_allclose(out, np.broadcast_to(np.roll(p, s), out.shape), atol=1e-6)
        offline = attacks.Perturbed(channels.AWGN(), torch.from_numpy(p), shift=s).perturbation(
            torch.from_numpy(x.reshape(-1, N)))
        np.testing.assert_allclose(out, offline.numpy(), atol=1e-6)


@pytest.mark.timeout(60)
def test_work_keeps_its_phase_across_calls_of_any_size(universal_file, tiny_link):
    """Tiny, odd-sized buffers (max_noutput_items 5, not a multiple of n): the same stream."""
    path, p = universal_file
    _, x = transmitted(tiny_link.encoder, 301)
    whole = run(e2e.adversarial_source("universal", path, M, N, symbol_offset=2), x)
    cut = run(e2e.adversarial_source("universal", path, M, N, symbol_offset=2), x, max_items=5)
    np.testing.assert_array_equal(whole, cut)
    jam = [run(e2e.adversarial_source("jamming", "", M, N, seed=3), x, max_items=m) for m in (None, 5)]
    np.testing.assert_array_equal(jam[0], jam[1])


@pytest.mark.timeout(60)
def test_set_psr_db_while_running_rescales_exactly(universal_file, tiny_link, record_logs):
    path, _ = universal_file
    _, x = transmitted(tiny_link.encoder, 20000)
    adv = e2e.adversarial_source("universal", path, M, N, psr_db=-6.0)
    log = record_logs(adv)
    switch = call_at(np.complex64, 7 * 5000, lambda: adv.set_psr_db(0.0))
    e = energies(run(bounded(adv), x, switch, max_items=700))
    before, after = attacks.budget(-6.0, N), attacks.budget(0.0, N)
    first = int(np.argmax(np.abs(e - after) < 1e-4))
    assert 5000 - 100 <= first <= 5000 + 300  # within a buffer of the call
    np.testing.assert_allclose(e[:first], before, rtol=2e-6)
    np.testing.assert_allclose(e[first:], after, rtol=2e-6)
    # A bad value is refused and logged; the current one stays.
    assert adv.set_psr_db(25.0) is False and adv.psr_db() == 0.0
    assert adv.set_symbol_offset(7) is False and adv.symbol_offset() == 0
    assert adv.set_mode("generative") is False and adv.mode == "universal"
    assert len(log.of("error")) == 3 and "psr_db" in log.of("error")[0]


@pytest.mark.timeout(60)
def test_set_mode_switches_between_the_loaded_attack_jamming_and_off(universal_file, tiny_link):
    path, p = universal_file
    adv = e2e.adversarial_source("universal", path, M, N)
    _, x = transmitted(tiny_link.encoder, 30000)
    to_jamming = call_at(np.complex64, 7 * 10000, lambda: adv.set_mode("jamming"))
    to_off = call_at(np.complex64, 7 * 20000, lambda: adv.set_mode("off"))
    rows = run(bounded(adv), x, bounded(to_jamming), to_off, max_items=700).reshape(-1, N)
    assert np.allclose(rows[:9000], p, atol=1e-6)
    assert not np.any(np.all(np.isclose(rows[11000:19000], p, atol=1e-6), axis=1))  # jamming, not p
    assert np.all(rows[21000:] == 0)
    assert adv.set_mode("universal") and adv.mode == "universal"
    assert adv.messages_perturbed() < 21000


def test_enable_messages_are_parsed_or_refused():
    assert parse_enable_message(pmt.PMT_T) is True
    assert parse_enable_message(pmt.PMT_F) is False
    d = pmt.dict_add(pmt.make_dict(), pmt.intern("enabled"), pmt.PMT_F)
    assert parse_enable_message(d) is False
    assert parse_enable_message(pmt.cons(pmt.intern("pressed"), pmt.PMT_T)) is True
    for bad, what in ((pmt.from_long(1), "integer"), (pmt.intern("on"), "symbol"),
                      (pmt.make_dict(), "nothing"), (pmt.cons(pmt.intern("x"), pmt.from_double(1.0)), "real")):
        with pytest.raises(ValueError, match=what):
            parse_enable_message(bad)


@pytest.mark.timeout(60)
def test_enable_port_switches_the_attack_and_drops_malformed_messages(universal_file, tiny_link, record_logs):
    path, p = universal_file
    adv = e2e.adversarial_source("universal", path, M, N)
    log = record_logs(adv)
    _, x = transmitted(tiny_link.encoder, 30000)
    junk = [pmt.from_long(0), pmt.intern("off"), pmt.make_dict()]
    off = post_at(np.complex64, 7 * 10000, adv, "enable", junk + [pmt.cons(pmt.intern("state"), pmt.PMT_F)])
    on = post_at(np.complex64, 7 * 20000, adv, "enable", [pmt.PMT_T])
    rows = run(bounded(adv), x, bounded(off), on, max_items=700).reshape(-1, N)
    assert len(rows) == 30000  # the flowgraph ran to its end
    assert np.allclose(rows[:10000], p, atol=1e-6)
    assert np.all(rows[10300:20000] == 0)
    assert np.allclose(rows[20300:], p, atol=1e-6)
    errors = log.of("error")
    assert len(errors) == 3 and all(e.startswith("dropped enable message") for e in errors), errors
    assert adv.enabled() and 19000 < adv.messages_perturbed() < 21000


@pytest.mark.timeout(60)
def test_jamming_power_within_its_confidence_interval(tiny_link):
    """Mean |w|^2 per symbol = 10^(PSR/10): 99.9% normal interval of a mean of exponentials (complex)
    or of scaled chi-square(1) draws (real, variance 2 var^2); imaginary parts zero in real mode."""
    count = 20000
    _, x = transmitted(tiny_link.encoder, count)
    var = 10 ** (PSR_DB / 10)
    z = theory.two_sided_z(0.999)
    samples = count * N
    for mode, spread in (("complex", 1.0), ("real", math.sqrt(2.0))):
        out = run(e2e.adversarial_source("jamming", "", M, N, psr_db=PSR_DB, seed=1, jamming_mode=mode), x)
        power = np.mean(np.abs(out.astype(np.complex128)) ** 2)
        assert abs(power - var) < z * spread * var / math.sqrt(samples), (mode, power, var)
        if mode == "real":
            assert np.all(out.imag == 0)
        else:  # both parts carry half
            assert abs(np.mean(out.real.astype(np.float64) ** 2) - var / 2) < z * var / math.sqrt(2 * samples)
    # Seeded: the same seed, the same stream; another seed, another.
    a, b, c = (run(e2e.adversarial_source("jamming", "", M, N, seed=s), x[:700]) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.timeout(60)
def test_generative_mode_is_the_generator_offline(generator_file, tiny_link):
    path, gen = generator_file
    _, x = transmitted(tiny_link.encoder, 2003)
    with torch.no_grad():
        p = attacks.scale_to_psr(torch.complex(*gen(torch.from_numpy(complex_to_real(x.reshape(-1, N)))).split(N, 1)),
                                 -3.0).numpy().reshape(-1)
    out = run(e2e.adversarial_source("generative", path, M, N, psr_db=-3.0), x, max_items=100)
    np.testing.assert_allclose(out, p, rtol=0, atol=1e-5)
    # A delay of 2 symbols: two zeros first, the same stream after (the last 2 items stay in the block).
    delayed = run(e2e.adversarial_source("generative", path, M, N, psr_db=-3.0, symbol_offset=2), x)
    np.testing.assert_allclose(delayed, np.concatenate([np.zeros(2), p[:-2]]), rtol=0, atol=1e-5)
    assert np.sum(np.abs(p.reshape(-1, N)[0]) ** 2) == pytest.approx(attacks.budget(-3.0, N), rel=1e-5)


@pytest.mark.timeout(60)
def test_metrics_port_and_metric(universal_file, tiny_link):
    from conftest import pmt_dict_types
    path, _ = universal_file
    adv = e2e.adversarial_source("universal", path, M, N, report_every=1000)
    debug = blocks.message_debug()
    tb = gr.top_block()
    _, x = transmitted(tiny_link.encoder, 5000)
    tb.connect(blocks.vector_source_c(x.tolist()), adv, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(adv, "metrics", debug, "store")
    tb.run()
    msgs = [debug.get_message(i) for i in range(debug.num_messages())]
    assert len(msgs) == 5
    assert pmt_dict_types(msgs[-1]) == {"mode": "symbol", "psr_db": "double", "enabled": "bool",
                                        "symbol_offset": "long", "messages": "long"}
    assert pmt.to_long(pmt.dict_ref(msgs[-1], pmt.intern("messages"), pmt.PMT_NIL)) == 5000
    assert adv.metric("messages") == 5000 and adv.metric("mode") == "universal"
    with pytest.raises(KeyError, match="psr_db"):
        adv.metric("bler")


def test_grc_template_and_ports():
    """The installed block definition: what GRC writes for the block, its callbacks and message ports."""
    from gnuradio.grc.core.platform import Platform
    platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    fg = platform.make_flow_graph()
    block = fg.new_block("e2e_adversarial_source")
    block.params["source"].set_value("'universal.safetensors'")
    fg.rewrite()
    assert block.templates.render("make") == (
        "e2e.adversarial_source('universal', 'universal.safetensors', 16, 7, psr_db=(-6.0), symbol_offset=0, seed=0, "
        "shift_invariant=False, craft_ebn0_db=8.0, craft_messages=2000, jamming_mode='complex', enabled=True, "
        "report_every=0)")
    assert block.templates.render("callbacks") == ["set_mode('universal')", "set_psr_db((-6.0))",
                                                   "set_symbol_offset(0)", "set_enabled(True)"]
    ports = lambda ps: [(p.key, p.domain, p.optional) for p in ps]  # noqa: E731
    assert ports(block.sinks) == [("0", "stream", False), ("enable", "message", True)]
    assert ports(block.sources) == [("0", "stream", False), ("metrics", "message", True)]
