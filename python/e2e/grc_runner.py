"""Compile a .grc flowgraph with grcc and load its top block class.

Used by the demo, the benchmarks and the tests to run the example flowgraphs
exactly as GNU Radio Companion would generate them.
"""
import importlib.util
import os
import subprocess

import yaml


def compile_and_load(grc_path, out_dir):
    """grcc grc_path into out_dir; return the generated top block class."""
    os.makedirs(out_dir, exist_ok=True)
    proc = subprocess.run(["grcc", "-o", out_dir, grc_path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"grcc failed on {grc_path}:\n{proc.stdout}\n{proc.stderr}")
    with open(grc_path) as f:
        options = yaml.safe_load(f)["options"]["parameters"]
    name = options["id"]
    spec = importlib.util.spec_from_file_location(name, os.path.join(out_dir, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def find_block(top_block, kind):
    """The first attribute of top_block whose class name is `kind`."""
    for value in vars(top_block).values():
        if type(value).__name__ == kind:
            return value
    raise LookupError(f"no {kind} block in {type(top_block).__name__}")
