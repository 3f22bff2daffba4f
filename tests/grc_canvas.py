"""Where GNU Radio Companion draws each block of a .grc file, computed headlessly with GRC's own code.

GRC 3.10 sizes a block in its GUI canvas (gnuradio.grc.gui.canvas.Block.
create_labels / create_shapes): a Pango layout of the title and of every
visible parameter ("label: value"), the ports' labels, grid alignment; the
block's comment is drawn under it. That code asks Gtk for its Pango layouts,
and Gtk cannot start without a display, so this module hands it the same
Pango layouts from a cairo image surface (PangoCairo, 96 dpi, the fonts
GRC names: "Sans 8" and "Sans 7.5") and sets GRC's view options to their
defaults (parameter values shown, expressions and block ids not, port labels
and comments shown). Everything else is GRC's code.

canvas_rectangles(path, dpi=96) -> {block name: [(x0, y0, x1, y1), ...]}: the
    block with its ports, and its comment if it has one, in canvas pixels, with
    text rendered at `dpi` (96: GRC's default; more: larger text).
overlaps(rects, gap) -> [(name, name)]: pairs of blocks whose rectangles,
    each grown by gap/2 on every side, intersect.
"""
import functools
import itertools
import sys
import types

import cairo
import gi

gi.require_version("Gtk", "3.0")
gi.require_version("PangoCairo", "1.0")
from gi.repository import PangoCairo  # noqa: E402


class _PangoOnly:
    """Stands in for Gtk.DrawingArea: a Pango layout without a display."""

    _surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, 1, 1)
    dpi = 96.0

    def create_pango_layout(self, text):
        layout = PangoCairo.create_layout(cairo.Context(self._surface))
        PangoCairo.context_set_resolution(layout.get_context(), self.dpi)
        layout.context_changed()
        layout.set_text(text, -1)
        return layout


@functools.lru_cache(maxsize=1)
def _gui_platform():
    from gnuradio import gr
    # The parameter entry widgets install a CSS provider on the screen when imported; the canvas
    # classes import the module but use it only to edit parameters, never to size a block.
    sys.modules.setdefault("gnuradio.grc.gui.ParamWidgets", types.ModuleType("gnuradio.grc.gui.ParamWidgets"))
    from gnuradio.grc.gui import Platform as gui_platform  # first: Actions imports back into the gui package
    from gnuradio.grc.gui import Actions
    from gnuradio.grc.gui.canvas import block as canvas_block
    from gnuradio.grc.gui.canvas import port as canvas_port
    stand_in = types.SimpleNamespace(DrawingArea=_PangoOnly)
    canvas_block.Gtk = canvas_port.Gtk = stand_in
    # Without a GRC window no preference is loaded: every toggle reads True until set.
    for action in Actions.actions.get_actions().values():
        if action.preference_name is not None:
            action.set_active(bool(action.default))
    platform = gui_platform.Platform(install_prefix=gr.prefix(), name="gr-e2e layout check", prefs=gr.prefs(),
                                     version=gr.version(),
                                     version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    platform.build_library()
    return platform


def canvas_rectangles(path, dpi=96.0):
    """{block name: [block rectangle (ports included), comment rectangle (if any)]} of a .grc file.

    Disabled blocks count too: GRC draws them (greyed) unless the user hides them.
    """
    _PangoOnly.dpi = float(dpi)
    from gnuradio.grc.core.FlowGraph import FlowGraph
    platform = _gui_platform()
    # The canvas FlowGraph builds Gtk menus; the core one holds the same blocks (the gui's block classes).
    flow_graph = FlowGraph(parent=platform)
    flow_graph.import_data(platform.parse_flow_graph(str(path)))
    flow_graph.rewrite()
    flow_graph.validate()
    rects = {}
    for block in flow_graph.blocks:
        block.create_labels()
        block.create_shapes()
        own = [tuple(float(v) for v in block.get_extents())]
        x0, y0, x1, y1 = block.get_extents_comment()
        if x1 > x0 and y1 > y0:
            own.append((float(x0), float(y0), float(x1), float(y1)))
        rects[block.name] = own
    return rects


def _intersect(a, b, gap):
    h = gap / 2.0
    return a[0] - h < b[2] + h and b[0] - h < a[2] + h and a[1] - h < b[3] + h and b[1] - h < a[3] + h


def overlaps(rects, gap=0.0):
    """Pairs of block names whose rectangles (block or comment) come closer than `gap` pixels."""
    return [(p, q) for (p, rp), (q, rq) in itertools.combinations(sorted(rects.items()), 2)
            if any(_intersect(a, b, gap) for a in rp for b in rq)]
