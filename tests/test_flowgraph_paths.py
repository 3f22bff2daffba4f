"""The examples' file parameters default to the checkout's results/ and runs/, found from the flowgraph's folder.

GRC's Run button writes the generated script next to the .grc and runs it
there, whatever folder GRC was started from. The examples' defaults are
beside_flowgraph('../results/...') or ('../runs/...'): resolved against the
generated script's folder, they name the checkout's results/ (what `make
demo` writes) and runs/ (where examples/README.md's commands write). A
missing checkpoint's error names the command that makes it.
"""
import pathlib
import subprocess
import sys

import pytest
import yaml
from gnuradio import gr

from gnuradio.e2e import model_free_rx, model_free_tx, nn_decoder, nn_encoder
from gnuradio.e2e.core import checkpoint
from gnuradio.e2e.flowgraph_paths import beside_flowgraph

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
IMPORT = "from gnuradio.e2e.flowgraph_paths import beside_flowgraph"


def call_from(script, relative):
    """beside_flowgraph(relative) as a module whose __file__ is `script` calls it (None: no __file__)."""
    namespace = {"beside_flowgraph": beside_flowgraph}
    if script is not None:
        namespace["__file__"] = script
    return eval(f"beside_flowgraph({relative!r})", namespace)


def test_beside_flowgraph_resolves_against_the_calling_script():
    assert call_from("/co/examples/x.py", "../results/a.safetensors") == "/co/results/a.safetensors"
    assert call_from("/co/examples/x.py", "b.safetensors") == "/co/examples/b.safetensors"
    assert call_from("/co/examples/x.py", "/abs/c.safetensors") == "/abs/c.safetensors"
    assert call_from("/co/examples/x.py", "") == ""  # an empty output path stays "none"
    # GRC evaluates the expression in its own namespace, without __file__: the path stays as written.
    assert call_from(None, "../runs/d.safetensors") == "../runs/d.safetensors"


def file_parameters(grc):
    """{name: value} of the parameter blocks of a .grc whose value names a .safetensors file."""
    blocks = yaml.safe_load(grc.read_text())["blocks"]
    return {b["name"]: str(b["parameters"]["value"]) for b in blocks
            if b["id"] == "parameter" and ".safetensors" in str(b["parameters"]["value"])}


def imports_of(grc):
    blocks = yaml.safe_load(grc.read_text())["blocks"]
    return [b["parameters"]["imports"] for b in blocks if b["id"] == "import" and b["states"]["state"] == "enabled"]


WITH_FILES = [p for p in EXAMPLES if file_parameters(p)]  # the stock OFDM reference reads no file


@pytest.mark.parametrize("grc", WITH_FILES, ids=[p.name for p in WITH_FILES])
def test_every_file_default_is_found_from_the_flowgraph_folder(grc):
    params = file_parameters(grc)
    assert IMPORT in imports_of(grc)
    for name, value in params.items():
        assert value.startswith("beside_flowgraph('../results/") or value.startswith("beside_flowgraph('../runs/"), \
            (name, value)
    loopback = grc.name.startswith("awgn_loopback")
    if loopback:  # what the quick start's `make demo` trains
        assert params["checkpoint"] == "beside_flowgraph('../results/complex/checkpoint.safetensors')"


@pytest.fixture(scope="module")
def grc_platform():
    from gnuradio.grc.core.platform import Platform
    platform = Platform(name="gr-e2e tests", prefs=gr.prefs(), version=gr.version(),
                        version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    return platform


@pytest.mark.parametrize("grc", [p for p in EXAMPLES if file_parameters(p)],
                         ids=[p.name for p in EXAMPLES if file_parameters(p)])
def test_grc_writes_the_expression_not_a_string_of_it(grc, grc_platform):
    """GRC quotes a str parameter whose expression it cannot evaluate: the default would be the text itself."""
    flow_graph = grc_platform.make_flow_graph(str(grc))
    flow_graph.rewrite()
    for name, value in file_parameters(grc).items():
        param = flow_graph.get_block(name).params["value"]
        assert param.to_code() == value, (name, param.to_code())
        assert param.get_evaluated().startswith("../")  # GRC shows the path as written


def test_missing_checkpoints_say_which_command_makes_them(tmp_path, monkeypatch):
    missing = tmp_path / "none.safetensors"
    for block in (nn_encoder, nn_decoder):
        with pytest.raises(checkpoint.CheckpointError) as e:
            block(str(missing), 16, 7)
        text = str(e.value)
        assert text.startswith(f"{missing}: no such file")
        assert "`gr_e2e train --M 16 --n 7 --out DIR`" in text and "`make demo`" in text, text
    for block in (model_free_tx, model_free_rx):
        with pytest.raises(checkpoint.CheckpointError) as e:
            block(str(missing), 16, 7)
        assert f"`gr_e2e init --M 16 --n 7 --out {missing}`" in str(e.value), str(e.value)
    # A relative path is reported as the absolute path it was looked for at.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match=f"^{tmp_path}/rel.safetensors: no such file"):
        nn_encoder("rel.safetensors", 16, 7)
    # `make demo` makes only M=16, n=7 links.
    with pytest.raises(checkpoint.CheckpointError) as e:
        nn_decoder(str(missing), 32, 7)
    assert "--M 32 --n 7" in str(e.value) and "make demo" not in str(e.value)


@pytest.mark.timeout(120)
def test_the_loopback_runs_with_its_defaults_from_any_folder(tmp_path, tiny_link):
    """As GRC's Run button does: the script next to the .grc; here started from another folder."""
    checkout = tmp_path / "checkout"
    (checkout / "examples").mkdir(parents=True)
    subprocess.run(["grcc", "-o", str(checkout / "examples"), str(ROOT / "examples" / "awgn_loopback_headless.grc")],
                   check=True, capture_output=True, timeout=100)
    script = checkout / "examples" / "awgn_loopback_headless.py"
    run = lambda: subprocess.run([sys.executable, str(script), "-N", "1000", "-r", "0"],  # noqa: E731
                                 capture_output=True, text=True, timeout=60, cwd=tmp_path)
    before = run()  # no make demo yet
    assert before.returncode != 0
    expected = checkout / "results" / "complex" / "checkpoint.safetensors"
    assert f"{expected}: no such file" in before.stderr and "`make demo`" in before.stderr, before.stderr[-2000:]
    expected.parent.mkdir(parents=True)
    expected.write_bytes(pathlib.Path(tiny_link.path).read_bytes())
    after = run()
    assert after.returncode == 0, after.stderr[-2000:]
    assert "in 1000 messages" in after.stdout, after.stdout
