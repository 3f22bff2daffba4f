"""gr_e2e sweep CONFIG: a grid of trainings and evaluations as tasks on Dask distributed.

Parsing and checking live in core.sweep, running in core.sweep_runner, the
figure in core.sweep_plot; this file wires the options to them and writes
the combined table.
"""
import argparse
import os
import sys
import time

from .core import validate

DESCRIPTION = """\
Train and evaluate every combination of a sweep config's methods, channels,
training Eb/N0 values and seeds, each as one task on Dask distributed: by
default a local cluster of --workers processes (one thread each), or the
cluster of --address. Each finished task is saved as OUT/tasks/<hash>.json
(with the trained link as <hash>.safetensors), keyed by a hash of its
config; a rerun skips the tasks that have a result. A task that fails is
reported on stderr and in the table, the others still land, and the exit
status is 1. OUT/results.csv and OUT/results.json hold the combined table
(per seed, and across seeds: mean, min, max, 95% interval), OUT/sweep.png
the BLER curves with their spread across seeds.

"""

EPILOG = """\
examples:
  gr_e2e sweep examples/sweep_74.toml --out runs/sweep_74
  gr_e2e sweep examples/sweep_74.toml --out runs/sweep_74 --address tcp://10.0.0.5:8786
  gr_e2e sweep examples/sweep_74.toml --out runs/debug --workers 0    # in this process
"""


def add_parser(subparsers):
    """Register `gr_e2e sweep` on build_parser's subparsers."""
    from .cli import _number
    from .core import sweep
    s = subparsers.add_parser("sweep", help="a grid of trainings and evaluations (methods x channels x "
                                            "Eb/N0 x seeds) on Dask, one result file per task",
                              description=DESCRIPTION + sweep.CONFIG_FORMAT, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("config", metavar="CONFIG", help="sweep config, .toml or .json (format above)")
    s.add_argument("--out", required=True, help="output folder: tasks/, results.csv, results.json, sweep.png")
    s.add_argument("--workers", type=_number, default=None,
                   help="worker processes of the local cluster (default: the number of CPUs); 0 runs the "
                        "tasks one after another in this process")
    s.add_argument("--address", default="",
                   help="scheduler of a running Dask cluster, e.g. tcp://host:8786 (`dask scheduler`, then "
                        "`dask worker tcp://host:8786` on each machine, with gr-e2e installed)")
    s.add_argument("--quiet", action="store_true", help="no progress lines or bar (the table still prints)")
    s.set_defaults(func=cmd_sweep)
    return s


def cmd_sweep(args):
    from .cli import UsageError, _write_json
    from .core import sweep, sweep_plot, sweep_runner
    if args.workers is not None:
        validate.integer("--workers", args.workers, 0)
        if args.address:
            raise UsageError("--workers sizes the local cluster; with --address the cluster's own workers "
                             "run the tasks")
    config = sweep.load_config(args.config)
    tasks = sweep.expand(config)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")
    os.makedirs(args.out, exist_ok=True)

    def report_error(line):
        print(f"gr_e2e sweep: {line}", file=sys.stderr, flush=True)

    started = time.time()
    results, counts = sweep_runner.run(
        tasks, args.out, address=args.address or None, workers=args.workers,
        report=None if args.quiet else (lambda line: print(line, flush=True)), report_error=report_error,
        progress_bar=not args.quiet)
    seconds = time.time() - started
    rows, across, failed = sweep.aggregate(results)
    with open(os.path.join(args.out, "results.csv.tmp"), "w", encoding="utf-8") as f:
        f.write(sweep.rows_csv(rows))
    os.replace(os.path.join(args.out, "results.csv.tmp"), os.path.join(args.out, "results.csv"))
    _write_json(os.path.join(args.out, "results.json"),
                {"config": args.config, "rows": rows, "across_seeds": across, "failed": failed})
    link = config.link
    sweep_plot.plot_sweep(rows, across, os.path.join(args.out, "sweep.png"),
                          title=f"M={link.M}, n={link.n}, {link.mode} mode")
    if across:
        print(sweep.format_across(across))
    for f in failed:
        report_error(f"failed: {f['task']} ({f['hash']}): {f['error']}")
    print(f"{counts['total']} tasks: {counts['run']} run, {counts['skipped']} already done, "
          f"{counts['failed']} failed, in {seconds:.1f} s; wrote results.csv, results.json, sweep.png and "
          f"tasks/ in {args.out}")
    return 1 if failed else 0
