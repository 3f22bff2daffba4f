"""gr_e2e sweep: config checks, pure tasks on a Dask LocalCluster, skipping done tasks, failed tasks.

The cluster test runs a tiny grid (M=4, n=2, 100 steps, 2 seeds, 2 Eb/N0
points, a baseline) on a LocalCluster of 2 worker processes, then runs the
same task configs one by one in this process: the tables and the
checkpoint bytes must match exactly, since a task is a pure function of
its config.
"""
import json
import os
import shutil
import subprocess

import pytest
import safetensors.torch

from gnuradio.e2e import cli
from gnuradio.e2e.core import sweep, sweep_runner

TINY = {
    "link": {"M": 4, "n": 2},
    "methods": [{"method": "model-aware", "steps": 100, "batch_size": 200}],
    "grid": {"seeds": [0, 1], "train_ebn0_db": 4},
    "eval": {"ebn0_db": [0, 4], "min_errors": 20, "max_blocks": 5000, "baselines": ["uncoded-qpsk"]},
}


def tiny(**changes):
    """TINY with {'table.key': value} changes (value None deletes the key)."""
    raw = json.loads(json.dumps(TINY))
    for path, value in changes.items():
        table, key = path.split(".")
        target = raw[table][0] if table == "methods" else raw[table]
        if value is None:
            del target[key]
        else:
            target[key] = value
    return raw


def failing_task(tasks):
    """A task that passes no config check (it never came from one) and raises inside fit_link."""
    bad = json.loads(json.dumps(tasks[0]))
    bad["method"]["lr"] = -1.0
    return bad


def safetensors_contents(blob):
    """(header dict, {name: raw tensor bytes}): a file's contents, whatever order its header's keys take."""
    size = int.from_bytes(blob[:8], "little")
    tensors = safetensors.torch.load(blob)
    return json.loads(blob[8:8 + size]), {k: v.numpy().tobytes() for k, v in tensors.items()}


def mtimes(folder):
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in sorted(os.listdir(folder))}


# --- config checks --------------------------------------------------------------------

@pytest.mark.parametrize("changes, key", [
    ({"link.width": 3}, "link.width"),
    ({"link.M": 1}, "link.M"),
    ({"link.decoder_hidden": [8, 0]}, "link.decoder_hidden[1]"),
    ({"link.mode": "quaternion"}, "link.mode"),
    ({"methods.stepz": 10}, "methods[0].stepz"),
    ({"methods.method": "guess"}, "methods[0].method"),
    ({"methods.sigma2": 0.1}, "methods[0].sigma2"),  # a model-free key on a model-aware method
    ({"methods.lr": 0}, "methods[0].lr"),
    ({"grid.seeds": [0, -1]}, "grid.seeds[1]"),
    ({"grid.seeds": None}, "grid.seeds"),
    ({"grid.channels": ["awgn", "fog"]}, "grid.channels[1]"),
    ({"grid.train_ebn0_db": "8:3"}, "grid.train_ebn0_db"),
    ({"grid.train_ebn0_db": [4, "x"]}, "grid.train_ebn0_db[1]"),
    ({"eval.ebn0_db": "0:8"}, "eval.ebn0_db"),
    ({"eval.max_blocks": 0}, "eval.max_blocks"),
    ({"eval.baselines": ["hamming-soft"]}, "eval.baselines"),  # Hamming carries 16 messages, not 4
])
def test_config_errors_name_the_key(changes, key):
    with pytest.raises(sweep.ConfigError) as e:
        sweep.parse_config(tiny(**changes), source="tiny.toml")
    assert e.value.key == key
    assert str(e.value).startswith(f"tiny.toml: key {key}: "), str(e.value)


def test_config_cross_checks_and_model_free_keys():
    raw = tiny(**{"link.mode": "real", "grid.channels": ["awgn", "phase"]})
    with pytest.raises(sweep.ConfigError, match=r"key grid\.channels: 'phase' .* needs link\.mode = 'complex'"):
        sweep.parse_config(raw)
    raw = tiny()
    raw["methods"].append({"method": "model-free", "sigma2": 1.5})
    with pytest.raises(sweep.ConfigError, match=r"key methods\[1\]\.sigma2: must be"):
        sweep.parse_config(raw)
    raw["methods"][1] = {"method": "model-aware"}
    with pytest.raises(sweep.ConfigError, match=r"key methods\[1\]\.name: 'model-aware' names methods\[0\]"):
        sweep.parse_config(raw)
    raw["methods"][1] = {"method": "model-free", "name": "mf", "steps": 40, "sigma2": 0.05, "feedback_bits": 8}
    s = sweep.parse_config(raw)
    assert s.methods[1]["sigma2"] == 0.05 and s.methods[1]["rx_batches"] == 10 and s.methods[1]["feedback_bits"] == 8
    tasks = sweep.expand(s)
    # methods x channels x train Eb/N0 x seeds, then baselines x seeds
    assert [(sweep.task_label(t), t["seed"]) for t in tasks] == [
        ("model-aware", 0), ("model-aware", 1), ("mf", 0), ("mf", 1), ("uncoded-qpsk", 0), ("uncoded-qpsk", 1)]
    assert len({sweep.task_hash(t) for t in tasks}) == len(tasks)


def test_cli_config_error_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[link]\nM = 4\nn = 2\nwidth = 3\n[[methods]]\nmethod = "model-aware"\n'
                    '[grid]\nseeds = [0]\ntrain_ebn0_db = 4\n[eval]\nebn0_db = [0]\n')
    gr_e2e = shutil.which("gr_e2e")
    assert gr_e2e, "gr_e2e is not on PATH (source setup_env.sh)"
    p = subprocess.run([gr_e2e, "sweep", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert f"gr_e2e: error: {path}: key link.width: is not known" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


# --- running ----------------------------------------------------------------------------

# 5-8 s on this 2-core machine (11-13 s while others load it): mostly starting 2 worker processes.
def test_cluster_matches_in_process_and_a_rerun_runs_nothing(tmp_path):
    tasks = sweep.expand(sweep.parse_config(tiny()))
    bad = failing_task(tasks)
    out = str(tmp_path / "out")
    lines, errors = [], []
    results, counts = sweep_runner.run(tasks + [bad], out, workers=2, report=lines.append,
                                       report_error=errors.append)
    assert counts == {"total": 5, "skipped": 0, "run": 5, "failed": 1}
    assert len(lines) == 4 and len(errors) == 1
    assert "lr must be" in errors[0] and "model-aware, awgn, train 4 dB, seed 0" in errors[0]
    assert "lr must be" in results[-1]["error"]
    rows, across, failed = sweep.aggregate(results)
    assert [f["hash"] for f in failed] == [sweep.task_hash(bad)]
    assert [r["status"] for r in rows].count("failed") == 1

    # The failed task wrote nothing; every other one its JSON (and a trained one its checkpoint).
    tasks_dir = os.path.join(out, "tasks")
    assert not os.path.exists(os.path.join(tasks_dir, sweep.task_hash(bad) + ".json"))
    local = [sweep.run_task(t) for t in tasks]
    for task, result in zip(tasks, local):
        json_path, ckpt_path = sweep_runner.task_files(tasks_dir, task)
        assert os.path.exists(json_path)
        if result["checkpoint"] is not None:
            with open(ckpt_path, "rb") as f:
                assert safetensors_contents(f.read()) == safetensors_contents(result["checkpoint"]), \
                    "the same task trained different weights"

    # The same task configs run one by one in this process give the same table, exactly.
    local_table = sweep.aggregate(local + [sweep.failure(bad, results[-1]["error"])])
    assert (rows, across, failed) == local_table
    assert sweep.rows_csv(rows) == sweep.rows_csv(local_table[0])

    # A rerun loads every result and runs nothing: the address leads nowhere, and no file changes.
    before = mtimes(tasks_dir)
    again, counts = sweep_runner.run(tasks, out, address="tcp://127.0.0.1:9")
    assert counts == {"total": 4, "skipped": 4, "run": 0, "failed": 0}
    assert sweep.aggregate(again)[:2] == sweep.aggregate(results[:-1])[:2]
    assert mtimes(tasks_dir) == before


def test_cli_reports_a_failed_task_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny(**{"eval.baselines": None})))
    real_run_task = sweep.run_task

    def run_task(task):  # seed 1 raises inside the task; seed 0 trains as usual
        if task["seed"] == 1:
            raise RuntimeError("the channel simulator stopped")
        return real_run_task(task)

    monkeypatch.setattr(sweep_runner, "run_task", run_task)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(path), "--out", str(out), "--workers", "0"]) == 1
    captured = capsys.readouterr()
    assert "RuntimeError: the channel simulator stopped" in captured.err
    assert "seed 1" in captured.err and "1 failed" in captured.out
    with open(out / "results.json") as f:
        table = json.load(f)
    assert [f["error"] for f in table["failed"]] == ["RuntimeError: the channel simulator stopped"]
    ok = [r for r in table["rows"] if r["status"] == "ok"]
    assert {r["seed"] for r in ok} == {0} and {r["ebn0_db"] for r in ok} == {0.0, 4.0}
    assert {a["interval"] for a in table["across_seeds"]} == {"Wilson"}  # one seed left: its Wilson interval
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == list(sweep.ROW_FIELDS) and len(csv_lines) == 1 + len(table["rows"])
    assert (out / "sweep.png").stat().st_size > 0

    # The next run retries only the failed task.
    monkeypatch.setattr(sweep_runner, "run_task", real_run_task)
    assert cli.main(["sweep", str(path), "--out", str(out), "--workers", "0", "--quiet"]) == 0
    assert "2 tasks: 1 run, 1 already done, 0 failed" in capsys.readouterr().out


def test_mean_interval_is_students_t():
    mean, low, high = sweep.mean_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert high - mean == pytest.approx(4.303 * 0.1 / 3 ** 0.5)  # t(0.975, 2 dof) * s / sqrt(K)
    assert sweep.mean_interval([0.0, 0.0])[1:] == (0.0, 0.0)
    assert sweep.t_975(30) > sweep.t_975(31) > sweep.t_975(1000) > 1.96
    assert sweep.t_975(60) == pytest.approx(2.000, abs=1e-3)
