"""Runs sweep tasks on Dask distributed, keeping each finished result on disk.

OUT/tasks/<hash>.json holds a task's result (its config, curves, training
summary, wall time) and OUT/tasks/<hash>.safetensors the trained link; both
are written atomically as the task finishes, the JSON last, so its presence
means the task is done. A rerun loads those and runs only the rest; a task
that raised is reported and written nowhere, so the next run tries it again.

Where tasks run: a LocalCluster of `workers` processes with one thread each
(default), an existing cluster at `address` (Client(address); its workers
need gr-e2e installed), or this process one task after another (workers=0).
"""
import contextlib
import json
import logging
import os

from . import checkpoint, progress
from .sweep import TASK_FORMAT, describe, failure, run_task, task_hash


def task_files(tasks_dir, task):
    """(result JSON path, checkpoint path) of a task."""
    h = task_hash(task)
    return os.path.join(tasks_dir, f"{h}.json"), os.path.join(tasks_dir, f"{h}.safetensors")


def load_result(tasks_dir, task):
    """The stored result of a task, or None when there is none (or it is damaged or of another task)."""
    path, _ = task_files(tasks_dir, task)
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # a damaged file is a task to run again, not a stop
        return None
    if not isinstance(result, dict) or result.get("format") != TASK_FORMAT or result.get("task") != task \
            or "curves" not in result:
        return None
    return result


def save_result(tasks_dir, result):
    """Write a finished task's checkpoint, then its JSON (atomically both); returns the result sans bytes."""
    result = dict(result)
    blob = result.pop("checkpoint", None)
    path, ckpt = task_files(tasks_dir, result["task"])
    if blob is not None:
        checkpoint.write_atomic(ckpt, blob)
        result["checkpoint"] = os.path.basename(ckpt)
    text = json.dumps(result, indent=1, allow_nan=False) + "\n"
    checkpoint.write_atomic(path, text.encode("utf-8"))
    return result


def _error_text(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def dask_client(address=None, workers=None):
    """A distributed.Client: of the cluster at `address`, or of a fresh LocalCluster.

    The local cluster has `workers` processes (default os.cpu_count()) of one
    thread each, since every task holds torch to one thread. Its HTTP server
    takes a free port (8787 would clash between sweeps run side by side), and
    its logs stay quiet: run() reports failed tasks itself.
    """
    from distributed import Client, LocalCluster
    if address:
        try:
            client = Client(address)
        except OSError as e:
            raise OSError(f"no Dask scheduler answers at {address}: {e}") from None
        with client:
            yield client
        return
    n = (os.cpu_count() or 1) if workers is None else workers
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def run(tasks, out_dir, *, address=None, workers=None, report=None, report_error=None, progress_bar=False):
    """Run every task that has no stored result; return (results in task order, counts).

    tasks: task configs from sweep.expand. out_dir: the sweep's folder
    (results go to out_dir/tasks). address: 'tcp://host:port' of a running
    Dask scheduler, or None for a LocalCluster of `workers` processes; with
    no address, workers=0 runs the tasks in this process. report(line) is
    called once per finished task, report_error(line) once per failed one
    (None: not called). Nothing is started when every task has
    a result already.

    Each result is run_task's dict without the checkpoint bytes, or
    sweep.failure(task, error). counts: total, skipped (loaded from disk),
    run, failed.
    """
    tasks_dir = os.path.join(out_dir, "tasks")
    os.makedirs(tasks_dir, exist_ok=True)
    results = [load_result(tasks_dir, t) for t in tasks]
    pending = [i for i, r in enumerate(results) if r is None]
    counts = {"total": len(tasks), "skipped": len(tasks) - len(pending), "run": 0, "failed": 0}
    if not pending:
        return results, counts
    bar = None

    def finish(i, result=None, error=None):
        task = tasks[i]
        if error is None:
            try:
                result = save_result(tasks_dir, result)
            except OSError as e:
                error = f"saving the result: {_error_text(e)}"
        counts["run"] += 1
        done = f"[{counts['run']}/{len(pending)}] {describe(task)}"
        visible = getattr(bar, "disable", True) is False
        if visible:  # lines go above the bar, which is drawn again below them
            bar.clear()
        if error is None:
            results[i] = result
            if report:
                report(f"{done}: {_summary(result)}")
        else:
            counts["failed"] += 1
            results[i] = failure(task, error)
            if report_error:
                report_error(f"{done}: failed: {error}")
        bar.update(1)
        if visible:
            bar.refresh()

    if workers == 0 and not address:
        bar = progress.bar(len(pending), "sweep", progress_bar, unit="tasks")
        try:
            for i in pending:
                try:
                    result = run_task(tasks[i])
                except Exception as e:  # a failed task is reported; the others go on
                    finish(i, error=_error_text(e))
                else:
                    finish(i, result)
        finally:
            bar.close()
        return results, counts

    from distributed import as_completed
    with dask_client(address, workers) as client:
        bar = progress.bar(len(pending), "sweep", progress_bar, unit="tasks")
        try:
            futures = {client.submit(run_task, tasks[i], key=f"gr-e2e-sweep-{task_hash(tasks[i])}"): i
                       for i in pending}
            for future in as_completed(futures):
                i = futures[future]
                if future.status == "error":
                    finish(i, error=_error_text(future.exception()))
                else:
                    finish(i, future.result())
                future.release()
        finally:
            bar.close()
    return results, counts


def _summary(result):
    curve = next(iter(result["curves"].values()))
    first, last = curve[0], curve[-1]
    return (f"{result['seconds']:.1f} s, BLER {first['bler']:.3g} at {first['ebn0_db']:g} dB .. "
            f"{last['bler']:.3g} at {last['ebn0_db']:g} dB")
