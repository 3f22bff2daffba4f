"""No block of an example flowgraph covers another on GNU Radio Companion's canvas.

Each block's rectangle (body and ports) and its comment's rectangle are
computed by GRC 3.10's own canvas code (tests/grc_canvas.py), at two text
sizes: GRC's default view (96 dpi), where rectangles of different blocks
must stay one grid cell (8 px) apart, and text 25 % larger (120 dpi: a
desktop scaled to 125 %, or another font), where they must not intersect.
A block hidden under another hides its ports and connections: the file
opens looking broken.
"""
import pathlib

import pytest
import yaml

import grc_canvas

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.grc"))
VIEWS = {"default text, 8 px apart": (96.0, 8.0), "text 25% larger": (120.0, 0.0)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("grc", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_no_block_covers_another(grc, view):
    dpi, gap = VIEWS[view]
    rects = grc_canvas.canvas_rectangles(grc, dpi=dpi)
    assert grc_canvas.overlaps(rects, gap=gap) == []


def moved(tmp_path, grc, name, coordinate):
    """A copy of the .grc with block `name` at `coordinate`."""
    data = yaml.safe_load(grc.read_text())
    block = next(b for b in data["blocks"] if b["name"] == name)
    block["states"]["coordinate"] = list(coordinate)
    out = tmp_path / grc.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.mark.timeout(120)
def test_the_check_sees_a_block_over_another_and_a_comment_over_a_block(tmp_path):
    grc = ROOT / "examples" / "awgn_loopback.grc"
    rects = grc_canvas.canvas_rectangles(grc)
    x0, y0, x1, y1 = rects["e2e_nn_encoder_0"][0]
    # The throttle's body over the encoder's left edge (its input and weights ports).
    over = grc_canvas.canvas_rectangles(moved(tmp_path, grc, "blocks_throttle_0", (x0 - 64, y0 + 8)))
    assert ("blocks_throttle_0", "e2e_nn_encoder_0") in grc_canvas.overlaps(over)
    # The noise source just above the constellation sink, so that only its comment ("AWGN, seed + 1",
    # drawn under the block) reaches into the sink.
    sink = rects["qtgui_const_sink_x_0"][0]
    noise_body, noise_comment = rects["analog_noise_source_x_0"]
    dy = noise_comment[1] - noise_body[1]
    placed = grc_canvas.canvas_rectangles(
        moved(tmp_path, grc, "analog_noise_source_x_0", (sink[0] + 24, sink[1] - dy + 4)))
    body, comment = placed["analog_noise_source_x_0"]
    assert body[3] < sink[1] < comment[3]
    assert ("analog_noise_source_x_0", "qtgui_const_sink_x_0") in grc_canvas.overlaps(placed)


def test_block_sizes_are_measured_from_their_text():
    """A block grows with its visible parameters; without fonts every block would be a small box."""
    rects = grc_canvas.canvas_rectangles(ROOT / "examples" / "model_free_awgn.grc")
    rx = rects["e2e_model_free_rx_0"][0]
    throttle = rects["blocks_throttle_0"][0]
    assert rx[3] - rx[1] > 20 * 10  # Model-Free RX shows 20 parameter lines
    assert throttle[3] - throttle[1] < 80  # the throttle shows one
    assert rx[2] - rx[0] > 150
