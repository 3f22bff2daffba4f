"""beside_flowgraph: a file path in a GRC parameter's default, relative to the flowgraph's folder.

GNU Radio Companion writes the Python script of a flowgraph next to its
.grc file and runs it there, whatever folder GRC itself was started from;
`grcc -o DIR` writes it into DIR. A default written as
`beside_flowgraph('../results/complex/checkpoint.safetensors')` (with
`from gnuradio.e2e.flowgraph_paths import beside_flowgraph` in an Import
block) is therefore found relative to the folder of the generated script,
which for the Run button is the .grc's own folder, so the gr-e2e examples
find the checkout's results/ and runs/ wherever GRC was started.

The script's folder is read from the caller's module globals (`__file__`)
rather than passed in, because GRC evaluates the same expression in its
own namespace, which has no `__file__`: there the path stays relative, and
GRC shows it as written.
"""
import os
import sys


def beside_flowgraph(relative):
    """`relative` joined to the folder of the calling module's file; unchanged if absolute, empty or no file.

    relative : str, a path relative to the generated flowgraph script's
        folder (for the gr-e2e examples, the examples/ folder).
    Returns a str: an absolute path, or `relative` itself when the caller has
    no `__file__` (GRC evaluating the expression, an interactive session).
    """
    relative = os.fspath(relative)
    script = sys._getframe(1).f_globals.get("__file__")  # the module whose expression called us
    if not relative or os.path.isabs(relative) or not script:
        return relative
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(script)), relative))
