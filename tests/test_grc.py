"""GRC: our .block.yml files load in GRC's own platform; the examples compile with grcc."""
import logging
import os
import pathlib
import subprocess
import sys

import pytest
from gnuradio import gr

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK_FILES = sorted((ROOT / "grc").glob("*.block.yml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
OUR_IDS = {"e2e_nn_encoder", "e2e_nn_decoder", "e2e_block_error_counter", "e2e_training_source",
           "e2e_model_free_tx", "e2e_model_free_rx", "e2e_ofdm_e2e_tx", "e2e_ofdm_e2e_rx", "e2e_metric_history",
           "e2e_adversarial_source", "e2e_channel_capture", "e2e_learned_channel", "e2e_simulated_channel",
           "e2e_mpa_precoder", "e2e_csi_decoder", "e2e_subchannel_fading", "e2e_ofdm_csi_tagger",
           "e2e_ofdm_subchannel_fading"}


@pytest.fixture(scope="module")
def platform_and_log():
    from gnuradio.grc.core.platform import Platform

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.WARNING)
    grc_log = logging.getLogger("gnuradio.grc")
    grc_log.addHandler(handler)
    try:
        platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                            version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
        platform.build_library()
    finally:
        grc_log.removeHandler(handler)
    return platform, records


def test_grc_blocks_path_has_our_install():
    paths = os.environ.get("GRC_BLOCKS_PATH", "").split(os.pathsep)
    assert str(ROOT / "prefix" / "share" / "gnuradio" / "grc" / "blocks") in paths


def test_block_files_load_without_errors(platform_and_log):
    platform, records = platform_and_log
    ids = set()
    for path in BLOCK_FILES:
        block_id = path.name[: -len(".block.yml")]
        ids.add(block_id)
        assert block_id in platform.blocks, f"{path.name} did not load"
        block = platform.blocks[block_id]
        # GRC read the installed copy: it must be this file, not a stale one.
        assert pathlib.Path(block.loaded_from).read_bytes() == path.read_bytes(), \
            f"{block.loaded_from} differs from {path}: run `make setup`"
        assert block.category == ["E2E Learning"]
        assert "".join(block.documentation.values()).strip(), f"{block_id} has no documentation"
    assert ids == OUR_IDS
    ours = [r.getMessage() for r in records if any(i in r.getMessage() or i in str(r.args) for i in OUR_IDS)]
    assert ours == [], ours


@pytest.fixture
def flow_graph(platform_and_log):
    return platform_and_log[0].make_flow_graph()


def errors_of(fg, block):
    fg.rewrite()
    fg.validate()
    return [e for e in block.get_error_messages() if "Assertion" in e]


@pytest.mark.parametrize("block_id, param, good, bad", [
    ("e2e_nn_encoder", "M", ["2", "16", "256"], ["1", "257", "-1"]),
    ("e2e_nn_encoder", "n", ["1", "7"], ["0", "-2"]),
    ("e2e_nn_decoder", "M", ["2", "256"], ["1", "300"]),
    ("e2e_nn_decoder", "n", ["1"], ["0"]),
    ("e2e_nn_decoder", "torch_threads", ["0", "4"], ["-1"]),
    ("e2e_block_error_counter", "bits_per_message", ["0", "8"], ["9", "-1"]),
    ("e2e_block_error_counter", "report_every", ["0", "1000"], ["-1"]),
    ("e2e_training_source", "batch_size", ["1", "500"], ["0", "-5"]),
    ("e2e_training_source", "num_batches", ["0", "10"], ["-1"]),
    ("e2e_model_free_tx", "sigma2", ["0.02", "0.5"], ["0", "1", "-0.1"]),
    ("e2e_model_free_tx", "lr", ["0.001"], ["0", "-1"]),
    ("e2e_model_free_tx", "tx_batches", ["0", "10"], ["-1"]),
    ("e2e_model_free_tx", "publish_every", ["0", "5"], ["-1"]),
    ("e2e_model_free_tx", "schedule_steps", ["0", "100"], ["-1"]),
    ("e2e_model_free_rx", "feedback_bits", ["0", "8", "24"], ["-1", "25"]),
    ("e2e_model_free_rx", "feedback_loss_prob", ["0", "0.3", "1"], ["-0.1", "1.5"]),
    ("e2e_model_free_rx", "metrics_every", ["0", "10"], ["-1"]),
    ("e2e_model_free_rx", "batch_size", ["1", "500"], ["0"]),
    ("e2e_model_free_rx", "M", ["2", "256"], ["1", "257"]),
    ("e2e_ofdm_e2e_tx", "cp_len", ["0", "16", "127"], ["128", "-1"]),
    ("e2e_ofdm_e2e_tx", "data_carriers", ["()", "list(range(1, 50))"], ["[0, 1]", "[64]", "[-65]"]),
    ("e2e_ofdm_e2e_tx", "gap_symbols", ["0", "3"], ["-1"]),
    ("e2e_ofdm_e2e_rx", "frames_per_batch", ["1", "4"], ["0"]),
    ("e2e_ofdm_e2e_rx", "sync_threshold", ["0.6", "0.9"], ["0", "1"]),
    ("e2e_ofdm_e2e_rx", "timing_offset", ["None", "4", "-16"], ["17"]),
    ("e2e_metric_history", "length", ["2", "500"], ["1", "0"]),
    ("e2e_metric_history", "key", ["bler"], [""]),
    ("e2e_adversarial_source", "mode", ["'universal'", "'jamming'", "'off'"], ["'fgm'", "'Universal'"]),
    ("e2e_adversarial_source", "psr_db", ["-60", "-6", "20"], ["-61", "20.5"]),
    ("e2e_adversarial_source", "symbol_offset", ["0", "6"], ["-1", "7"]),
    ("e2e_adversarial_source", "craft_messages", ["1", "2000"], ["0"]),
    ("e2e_adversarial_source", "jamming_mode", ["'complex'", "'real'"], ["'both'"]),
    ("e2e_simulated_channel", "channel", ["'awgn'", "'rayleigh'", "'phase'", "'pa'"], ["'saleh'", "'AWGN'"]),
    ("e2e_simulated_channel", "n", ["1", "7"], ["0"]),
    ("e2e_simulated_channel", "seed", ["0", "5"], ["-1"]),
    ("e2e_learned_channel", "M", ["2", "256"], ["1", "257"]),
    ("e2e_learned_channel", "seed", ["0", "3"], ["-1"]),
    ("e2e_channel_capture", "max_messages", ["1", "100000"], ["0", "-1"]),
    ("e2e_channel_capture", "batch_size", ["0", "500"], ["-1"]),
    ("e2e_channel_capture", "sample_rate", ["0", "1e6"], ["-1"]),
    ("e2e_channel_capture", "save_every", ["0", "1000"], ["-1"]),
])
def test_parameter_asserts(flow_graph, block_id, param, good, bad):
    block = flow_graph.new_block(block_id)
    for value in good:
        block.params[param].set_value(value)
        assert errors_of(flow_graph, block) == [], (param, value)
    for value in bad:
        block.params[param].set_value(value)
        assert errors_of(flow_graph, block), f"{param}={value} was accepted"


def test_templates_and_ports(flow_graph):
    enc = flow_graph.new_block("e2e_nn_encoder")
    enc.params["checkpoint"].set_value("'link.safetensors'")
    dec = flow_graph.new_block("e2e_nn_decoder")
    dec.params["checkpoint"].set_value("'link.safetensors'")
    cnt = flow_graph.new_block("e2e_block_error_counter")
    flow_graph.rewrite()
    assert enc.templates.render("make") == "e2e.nn_encoder('link.safetensors', 16, 7)"
    assert enc.templates.render("callbacks") == ["set_checkpoint('link.safetensors')"]
    assert dec.templates.render("make") == (
        "e2e.nn_decoder('link.safetensors', 16, 7, probabilities=False, torch_threads=1, batch_messages=1)")
    assert dec.templates.render("callbacks") == ["set_checkpoint('link.safetensors')"]
    assert cnt.templates.render("make") == "e2e.block_error_counter(bits_per_message=0, report_every=0)"
    for block in (enc, dec):
        weights = [p for p in block.sinks if p.key == "weights"]
        assert len(weights) == 1 and weights[0].domain == "message" and weights[0].optional
    metrics = [p for p in cnt.sources if p.key == "metrics"]
    assert len(metrics) == 1 and metrics[0].domain == "message" and metrics[0].optional
    # The probabilities output appears, as float vectors of length M, only when asked for.
    prob = dec.sources[1]
    assert prob.hidden and prob.optional
    dec.params["probabilities"].set_value("True")
    dec.params["M"].set_value("32")
    flow_graph.rewrite()
    assert not prob.hidden and not prob.optional and (prob.dtype, prob.vlen) == ("float", 32)


def test_training_blocks_templates_and_ports(flow_graph):
    tx = flow_graph.new_block("e2e_model_free_tx")
    rx = flow_graph.new_block("e2e_model_free_rx")
    for block in (tx, rx):
        block.params["checkpoint"].set_value("'start.safetensors'")
    flow_graph.rewrite()
    assert tx.templates.render("make") == (
        "e2e.model_free_tx('start.safetensors', 16, 7, batch_size=1000, seed=0, rx_batches=10, tx_batches=10, "
        "sigma2=0.02, lr=0.001, baseline='none', lr_schedule='constant', schedule_steps=0, blocking=False, "
        "publish_every=0, checkpoint_out='', save_every=0, metrics_every=0)")
    assert rx.templates.render("make") == (
        "e2e.model_free_rx('start.safetensors', 16, 7, batch_size=1000, seed=0, rx_batches=10, tx_batches=10, "
        "lr=0.001, lr_schedule='constant', schedule_steps=0, framing='tags', blocking=False, feedback_snr_db=None, "
        "feedback_bits=0, feedback_loss_prob=0.0, publish_every=0, checkpoint_out='', save_every=0, "
        "metrics_every=0)")
    ports = lambda ps: [(p.key, p.domain) for p in ps]  # noqa: E731
    assert ports(tx.sinks) == [("0", "stream"), ("loss", "message")]
    assert ports(tx.sources) == [("0", "stream"), ("weights", "message"), ("metrics", "message")]
    assert ports(rx.sinks) == [("0", "stream")]
    assert ports(rx.sources) == [("0", "stream"), ("loss", "message"), ("weights", "message"),
                                 ("metrics", "message")]
    # A decaying schedule needs a horizon in a live flowgraph.
    tx.params["lr_schedule"].set_value("'cosine'")
    assert errors_of(flow_graph, tx)
    tx.params["schedule_steps"].set_value("5000")
    assert errors_of(flow_graph, tx) == []


@pytest.mark.parametrize("path", BLOCK_FILES, ids=[p.name for p in BLOCK_FILES])
def test_grc_defaults_are_the_blocks_defaults(path):
    """Every parameter GRC passes by keyword defaults to what the Python block does: no drift."""
    import ast
    import inspect
    import yaml
    from gnuradio import e2e
    spec = yaml.safe_load(path.read_text())
    block = getattr(e2e, spec["id"][len("e2e_"):])
    signature = inspect.signature(block.__init__).parameters
    checked = 0
    for param in spec["parameters"]:
        python = signature.get(param["id"])
        if python is None or python.default is inspect.Parameter.empty:
            continue
        text = str(param["default"])
        # GRC quotes file and string parameters itself; the others are Python expressions.
        value = text if param.get("dtype") in ("file_open", "file_save", "string") else ast.literal_eval(text)
        assert value == python.default, (spec["id"], param["id"], value, python.default)
        checked += 1
    assert checked == sum(p.default is not inspect.Parameter.empty for p in signature.values())


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("grc", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_compiles(grc, tmp_path):
    result = subprocess.run(["grcc", "-o", str(tmp_path), str(grc)], capture_output=True, text=True,
                            timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    generated = list(tmp_path.glob("*.py"))
    assert len(generated) == 1, result.stdout
    # Importing runs the generated module's imports (uhd, zeromq, qtgui, ...) without building the flowgraph.
    proc = subprocess.run([sys.executable, "-c", "import importlib.util, sys; "
                           "s = importlib.util.spec_from_file_location('example', sys.argv[1]); "
                           "s.loader.exec_module(importlib.util.module_from_spec(s))", str(generated[0])],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    assert {"awgn_loopback.grc", "awgn_loopback_headless.grc"} <= names
    assert (ROOT / "examples" / "README.md").is_file()
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in names:
        assert name in readme, f"examples/README.md does not index {name}"


@pytest.mark.timeout(60)
def test_gnu_radio_companion_finds_its_gtk_bindings():
    """GRC needs gir1.2-gtk-3.0, which the gnuradio package only recommends (the setup installs it).

    Without a display GRC cannot open a window; it must fail for that reason,
    after loading GTK, not with "Namespace Gtk not available".
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    p = subprocess.run(["gnuradio-companion"], capture_output=True, text=True, env=env, timeout=50)
    out = p.stdout + p.stderr
    assert "Namespace Gtk not available" not in out, out[-2000:]
    assert "gi.repository" in out or "Gtk" in out or "display" in out.lower(), out[-2000:]
