"""Sweeps: a grid of trainings and evaluations, each one a pure function of its task config.

A sweep config (TOML or JSON, CONFIG_FORMAT) names one link, training
methods, seeds, channels, training Eb/N0 values and an evaluation. expand()
turns it into task configs (plain JSON-ready dicts): one per (method,
channel, training Eb/N0, seed), plus one per (classical baseline, seed) on
AWGN. run_task(task) trains and evaluates one of them, as `gr_e2e train` and
`gr_e2e eval` do; the same task config gives the same result in any process
(torch on one thread, every random stream drawn from the task's seed), so
task_hash(task) names its result file and a rerun skips what is done.
aggregate() turns the results into one table, per seed and across seeds.

Nothing here starts processes: core.sweep_runner runs the tasks (in this
process or on Dask), core.sweep_plot draws them.
"""
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import time

from . import channels, config as link_config, model_free, report, theory, training, validate

# Part of every task config: a change in what a task computes bumps it, so
# results of older code are never mistaken for current ones.
TASK_FORMAT = 1
METHODS = ("model-aware", "model-free")
LEARNED, BASELINE = "learned", "baseline"
VALIDATION_BLOCKS = 100_000  # held-out messages of training.validation_errors (its default)

CONFIG_FORMAT = """\
A sweep config is TOML (.toml) or JSON (.json) with four tables; every key is
checked up front and an unknown key or bad value is an error naming it.

  [link]       the networks, as gr_e2e train's options: M, n (required), mode
               ("complex" | "real"), normalization ("energy" | "average"),
               encoder_hidden, decoder_hidden (lists of widths, default [M]),
               receiver_frontend ("none" | "transformer")
  [[methods]]  one table per training method (at least one):
               method = "model-aware" | "model-free" (required), name (a label,
               default: method), steps (default 3000), batch_size (1000), lr,
               lr_schedule ("constant" | "cosine" | "step"; defaults as gr_e2e train);
               model-aware only: restarts (1), decoder_finetune_steps (0);
               model-free only: sigma2, rx_batches, tx_batches, baseline
               ("none" | "mean"), feedback_snr_db, feedback_bits, feedback_loss_prob
  [grid]       seeds: list of integers >= 0 (required); channels: list from
               "awgn", "rayleigh", "phase" (default ["awgn"]); train_ebn0_db:
               training Eb/N0 in dB (required), a number or "LO:HI" (drawn per
               example), or a list of them, one training each
  [eval]       ebn0_db: list of dB values or "START:STOP:STEP" (required);
               min_errors (default 100), max_blocks (default 1000000): each point
               stops at whichever comes first; baselines: classical links scored on
               AWGN with every seed, from "hamming-soft", "hamming-hard",
               "uncoded-bpsk", "uncoded-qpsk", "uncoded-16qam" (default none)

The tasks are methods x channels x train_ebn0_db x seeds (train, then
evaluate the neural decoder and, on awgn and rayleigh, ML detection on the
learned constellation) and baselines x seeds; a task's seed drives its
training and its evaluation.

  [link]
  M = 16
  n = 7
  mode = "real"
  [[methods]]
  method = "model-aware"
  steps = 1500
  [grid]
  seeds = [0, 1, 2, 3, 4]
  train_ebn0_db = "3:8"
  [eval]
  ebn0_db = "0:8:1"
  max_blocks = 200000
  baselines = ["hamming-soft"]
"""


class ConfigError(ValueError):
    """A sweep config was refused; the message names the file and the key."""

    def __init__(self, source, key, reason):
        super().__init__(f"{source}: key {key}: {reason}")
        self.source, self.key, self.reason = source, key, reason


class _BadKey(ValueError):
    def __init__(self, key, reason):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep config (what load_config returns, what expand takes).

    link: LinkConfig. methods: tuple of canonical method dicts (every key
    filled in). seeds: tuple of ints. channels: tuple of names.
    train_ebn0_db: tuple of floats or [lo, hi] lists. eval_ebn0_db: tuple of
    floats. baselines: tuple of report.BASELINES names.
    """

    link: link_config.LinkConfig
    methods: tuple
    seeds: tuple
    channels: tuple = ("awgn",)
    train_ebn0_db: tuple = (7.0,)
    eval_ebn0_db: tuple = (0.0,)
    min_errors: int = 100
    max_blocks: int = 1_000_000
    baselines: tuple = ()


# --- config parsing ---------------------------------------------------------------

def load_config(path):
    """Read and validate a sweep config file (.toml or .json) -> Sweep; ConfigError names the key."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".toml"):
        import tomllib
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    elif path.endswith(".json"):
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
    else:
        raise ValueError(f"{path}: a sweep config ends in .toml or .json")
    return parse_config(raw, source=path)


def parse_config(raw, source="config"):
    """Validate a sweep config given as a dict (TOML or JSON structure) -> Sweep."""
    try:
        return _parse(raw)
    except _BadKey as e:
        raise ConfigError(source, e.key, e.reason) from None


def _table(key, value, allowed, required=()):
    if not isinstance(value, dict):
        raise _BadKey(key, f"must be a table, got {value!r}")
    prefix = f"{key}." if key else ""
    for k in value:
        if k not in allowed:
            raise _BadKey(prefix + str(k), f"is not known; {key or 'a sweep config'} takes "
                                           f"{', '.join(sorted(allowed))}")
    for k in required:
        if k not in value:
            raise _BadKey(prefix + k, "is missing")
    return value


def _checked(key, check, *args, **kwargs):
    """check(key, value, ...) from core.validate, its ValueError turned into _BadKey(key)."""
    try:
        return check(key, *args, **kwargs)
    except ValueError as e:
        text = str(e)
        raise _BadKey(key, text[len(key):].lstrip() if text.startswith(key) else text) from None


def _integer(key, value, low=None):
    # TOML and JSON both spell 1e6 as a float: accept integral floats as integers.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return _checked(key, validate.integer, value, low)


def _list(key, value):
    if not isinstance(value, list) or not value:
        raise _BadKey(key, f"must be a non-empty list, got {value!r}")
    return value


def parse_train_ebn0(key, value):
    """7 -> 7.0; '3:8' -> [3.0, 8.0] (drawn per example); '7' -> 7.0."""
    if isinstance(value, str):
        parts = value.split(":")
        try:
            numbers_ = [float(p) for p in parts]
        except ValueError:
            raise _BadKey(key, f"must be a number or a range 'LO:HI' in dB, got {value!r}") from None
        if len(numbers_) == 1 and math.isfinite(numbers_[0]):
            return numbers_[0]
        if len(numbers_) == 2 and all(map(math.isfinite, numbers_)) and numbers_[0] < numbers_[1]:
            return numbers_
        raise _BadKey(key, f"must be a number or a range 'LO:HI' with LO < HI, got {value!r}")
    return _checked(key, validate.db, value)


def parse_eval_grid(key, value):
    """[0, 2, 4] -> [0.0, 2.0, 4.0]; '0:8:1' -> [0.0, 1.0, ..., 8.0] (inclusive)."""
    if isinstance(value, str):
        try:
            start, stop, step = (float(p) for p in value.split(":"))
        except ValueError:
            raise _BadKey(key, f"must be a list of dB values or 'START:STOP:STEP', got {value!r}") from None
        if not (step > 0 and stop >= start and math.isfinite(stop - start)):
            raise _BadKey(key, f"needs STEP > 0 and STOP >= START, got {value!r}")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        return [round(start + i * step, 6) for i in range(count)]
    return [_checked(f"{key}[{i}]", validate.db, v) for i, v in enumerate(_list(key, value))]


def train_ebn0_label(ebn0_db):
    """7.0 -> '7'; [3.0, 8.0] -> '3:8' (the spelling of the config and of gr_e2e train)."""
    if isinstance(ebn0_db, (list, tuple)):
        return f"{ebn0_db[0]:g}:{ebn0_db[1]:g}"
    return f"{ebn0_db:g}"


_AWARE_ONLY = ("restarts", "decoder_finetune_steps")
_FREE_ONLY = ("sigma2", "rx_batches", "tx_batches", "baseline", "feedback_snr_db", "feedback_bits",
              "feedback_loss_prob")
_METHOD_KEYS = ("name", "method", "steps", "batch_size", "lr", "lr_schedule") + _AWARE_ONLY + _FREE_ONLY


def _parse_method(key, raw):
    """One [[methods]] table -> a canonical dict with every key of its method filled in."""
    _table(key, raw, _METHOD_KEYS, required=("method",))
    method = _checked(f"{key}.method", validate.choice, raw["method"], METHODS)
    others = _FREE_ONLY if method == "model-aware" else _AWARE_ONLY
    for k in others:
        if k in raw:
            raise _BadKey(f"{key}.{k}", f"applies to method {METHODS[method == 'model-aware']!r} only")
    name = raw.get("name", method)
    if not isinstance(name, str) or not name.strip():
        raise _BadKey(f"{key}.name", f"must be a non-empty string, got {name!r}")
    out = {"name": name, "method": method,
           "steps": _integer(f"{key}.steps", raw.get("steps", 3000), 1),
           "batch_size": _integer(f"{key}.batch_size", raw.get("batch_size", 1000), 1)}
    if method == "model-aware":
        out["lr"] = _checked(f"{key}.lr", validate.real, raw.get("lr", training.DEFAULT_LR), 0, low_open=True)
        out["lr_schedule"] = _checked(f"{key}.lr_schedule", validate.choice,
                                      raw.get("lr_schedule", training.DEFAULT_SCHEDULE), training.SCHEDULES)
        out["restarts"] = _integer(f"{key}.restarts", raw.get("restarts", 1), 1)
        out["decoder_finetune_steps"] = _integer(f"{key}.decoder_finetune_steps",
                                                 raw.get("decoder_finetune_steps", 0), 0)
        return out
    defaults = dataclasses.asdict(model_free.ModelFreeParams())
    fields = {k: raw.get(k, defaults[k]) for k in ("lr", "lr_schedule", "sigma2", "rx_batches", "tx_batches",
                                                   "baseline")}
    for k in ("rx_batches", "tx_batches"):
        fields[k] = _integer(f"{key}.{k}", fields[k], 0)
    params = _checked_object(key, model_free.ModelFreeParams, batch_size=out["batch_size"], **fields)
    out.update({k: getattr(params, k) for k in fields})
    feedback = {"feedback_snr_db": raw.get("feedback_snr_db"),
                "feedback_bits": _integer(f"{key}.feedback_bits", raw.get("feedback_bits", 0), 0),
                "feedback_loss_prob": raw.get("feedback_loss_prob", 0.0)}
    link = _checked_object(key, model_free.FeedbackLink, snr_db=feedback["feedback_snr_db"],
                           bits=feedback["feedback_bits"], loss_prob=feedback["feedback_loss_prob"])
    out.update(feedback_snr_db=link.snr_db, feedback_bits=link.bits or 0, feedback_loss_prob=link.loss_prob)
    return out


def _checked_object(key, cls, **kwargs):
    """cls(**kwargs); a ValueError that starts with a field name becomes _BadKey('key.field')."""
    try:
        return cls(**kwargs)
    except ValueError as e:
        text = str(e)
        field = text.split(" ", 1)[0]
        reason = text.split(" ", 1)[1] if " " in text else text
        raise _BadKey(f"{key}.{field}", reason) from None


_LINK_KEYS = tuple(f.name for f in dataclasses.fields(link_config.LinkConfig))


def _parse_link(raw):
    _table("link", raw, _LINK_KEYS, required=("M", "n"))
    fields = dict(raw)
    for k in ("M", "n"):
        fields[k] = _integer(f"link.{k}", fields[k], 2 if k == "M" else 1)
    for k in ("encoder_hidden", "decoder_hidden", "frontend_hidden"):
        if k in fields:
            fields[k] = tuple(_integer(f"link.{k}[{i}]", w, 1) for i, w in enumerate(_list(f"link.{k}", fields[k])))
    return _checked_object("link", link_config.LinkConfig, **fields)


def _parse(raw):
    _table("", raw, ("link", "methods", "grid", "eval"), required=("link", "methods", "grid", "eval"))
    link = _parse_link(raw["link"])
    methods = [_parse_method(f"methods[{i}]", m) for i, m in enumerate(_list("methods", raw["methods"]))]
    names = [m["name"] for m in methods]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _BadKey(f"methods[{i}].name", f"{name!r} names methods[{names.index(name)}] too; "
                                                "give each method its own name")

    grid = _table("grid", raw["grid"], ("seeds", "channels", "train_ebn0_db"), required=("seeds", "train_ebn0_db"))
    seeds = [_integer(f"grid.seeds[{i}]", s, 0) for i, s in enumerate(_list("grid.seeds", grid["seeds"]))]
    if len(set(seeds)) != len(seeds):
        raise _BadKey("grid.seeds", f"repeats a seed: {seeds}")
    chans = [_checked(f"grid.channels[{i}]", validate.choice, c, channels.NAMES)
             for i, c in enumerate(_list("grid.channels", grid.get("channels", ["awgn"])))]
    if len(set(chans)) != len(chans):
        raise _BadKey("grid.channels", f"repeats a channel: {chans}")
    for c in chans:
        try:
            channels.check_mode(channels.by_name(c), link.mode)
        except ValueError:
            raise _BadKey("grid.channels", f"{c!r} rotates signal into the imaginary part: it needs "
                                           f"link.mode = 'complex', the link has {link.mode!r}") from None
    train = grid["train_ebn0_db"]
    if isinstance(train, list):
        train_ebn0 = [parse_train_ebn0(f"grid.train_ebn0_db[{i}]", v)
                      for i, v in enumerate(_list("grid.train_ebn0_db", train))]
    else:
        train_ebn0 = [parse_train_ebn0("grid.train_ebn0_db", train)]

    ev = _table("eval", raw["eval"], ("ebn0_db", "min_errors", "max_blocks", "baselines"), required=("ebn0_db",))
    grid_db = parse_eval_grid("eval.ebn0_db", ev["ebn0_db"])
    min_errors = _integer("eval.min_errors", ev.get("min_errors", 100), 1)
    max_blocks = _integer("eval.max_blocks", ev.get("max_blocks", 1_000_000), 1)
    baselines = ev.get("baselines", [])
    if not isinstance(baselines, list):
        raise _BadKey("eval.baselines", f"must be a list, got {baselines!r}")
    baselines = [_checked(f"eval.baselines[{i}]", validate.choice, b, report.BASELINES)
                 for i, b in enumerate(baselines)]
    if baselines:
        if "awgn" not in chans:
            raise _BadKey("eval.baselines", "the classical baselines are AWGN designs, scored on 'awgn', "
                                            "which grid.channels does not list")
        try:
            report.baseline_links(baselines, link)
        except ValueError as e:
            raise _BadKey("eval.baselines", str(e).removeprefix("baselines: ")) from None
    return Sweep(link=link, methods=tuple(methods), seeds=tuple(seeds), channels=tuple(chans),
                 train_ebn0_db=tuple(train_ebn0), eval_ebn0_db=tuple(grid_db), min_errors=min_errors,
                 max_blocks=max_blocks, baselines=tuple(baselines))


# --- tasks ---------------------------------------------------------------------------

def expand(sweep):
    """Sweep -> list of task configs (JSON-ready dicts), in a fixed order.

    Learned tasks: methods x channels x train_ebn0_db x seeds; then baseline
    tasks: baselines x seeds (channel awgn).
    """
    evaluation = {"ebn0_db": list(sweep.eval_ebn0_db), "min_errors": sweep.min_errors,
                  "max_blocks": sweep.max_blocks}
    link = sweep.link.to_dict()
    tasks = []
    for method in sweep.methods:
        for channel in sweep.channels:
            for ebn0 in sweep.train_ebn0_db:
                for seed in sweep.seeds:
                    tasks.append({"format": TASK_FORMAT, "kind": LEARNED, "link": link, "method": dict(method),
                                  "channel": channel, "train_ebn0_db": ebn0, "seed": seed, "eval": evaluation})
    for name in sweep.baselines:
        for seed in sweep.seeds:
            tasks.append({"format": TASK_FORMAT, "kind": BASELINE, "link": link, "baseline": name,
                          "channel": "awgn", "seed": seed, "eval": evaluation})
    return tasks


def task_hash(task):
    """16 hex digits of the SHA-256 of the task's canonical JSON: its result's file name."""
    text = json.dumps(task, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def task_label(task):
    """What a task is, for the table and progress lines: its method name or its baseline."""
    return task["method"]["name"] if task["kind"] == LEARNED else task["baseline"]


def describe(task):
    """One line naming a task: 'model-aware, awgn, train 3:8 dB, seed 2'."""
    if task["kind"] == LEARNED:
        return (f"{task_label(task)}, {task['channel']}, train {train_ebn0_label(task['train_ebn0_db'])} dB, "
                f"seed {task['seed']}")
    return f"baseline {task['baseline']}, {task['channel']}, seed {task['seed']}"


def run_task(task):
    """Train and evaluate one task config; a pure function of it.

    Learned tasks train as `gr_e2e train` does (training.fit_link or the
    model-free trainer, seed = the task's seed), then evaluate the saved
    checkpoint as `gr_e2e eval` does (report.evaluate_checkpoint, no
    baselines, seed = the task's seed). Baseline tasks score one classical
    link on AWGN. torch runs on one thread (restored afterwards), so results
    match bit for bit wherever the task runs.

    Returns a dict: hash, task, curves {curve name: evaluation points},
    train (restart chosen, validation errors, final loss; None for a
    baseline), seconds (wall time, the one field that varies between runs)
    and checkpoint (the trained link's safetensors bytes; None for a baseline).
    """
    import torch
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if task.get("format") != TASK_FORMAT:
            raise ValueError(f"task format {task.get('format')!r}, this code runs format {TASK_FORMAT}")
        if task["kind"] == LEARNED:
            curves, train, blob = _run_learned(task)
        elif task["kind"] == BASELINE:
            curves, train, blob = _run_baseline(task), None, None
        else:
            raise ValueError(f"task kind must be {LEARNED!r} or {BASELINE!r}, got {task['kind']!r}")
    finally:
        torch.set_num_threads(threads)
    return {"format": TASK_FORMAT, "hash": task_hash(task), "task": task, "curves": curves, "train": train,
            "seconds": round(time.perf_counter() - started, 3), "checkpoint": blob}


def _train_ebn0(task):
    e = task["train_ebn0_db"]
    return tuple(e) if isinstance(e, list) else e


def _run_learned(task):
    from . import checkpoint
    cfg = link_config.LinkConfig.from_dict(task["link"])
    channel = channels.by_name(task["channel"])
    method, seed, ebn0 = task["method"], task["seed"], _train_ebn0(task)
    if method["method"] == "model-aware":
        enc, dec, fit = training.fit_link(
            cfg, channel, ebn0, steps=method["steps"], batch_size=method["batch_size"], lr=method["lr"],
            lr_schedule=method["lr_schedule"], seed=seed, restarts=method["restarts"],
            decoder_finetune_steps=method["decoder_finetune_steps"], validation_blocks=VALIDATION_BLOCKS)
        chosen = fit["runs"][fit["chosen"]]
        train = {"chosen_restart": fit["chosen"], "validation_errors": chosen["validation_errors"],
                 "validation_blocks": chosen["validation_blocks"], "final_loss": chosen["final_loss"]}
    elif method["method"] == "model-free":
        enc, dec, train = _train_model_free(cfg, channel, ebn0, method, seed)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method['method']!r}")
    metadata = {"ebn0_db": json.dumps(task["train_ebn0_db"]), "seed": seed, "steps": method["steps"],
                "method": method["method"], "channel": task["channel"]}
    blob = checkpoint.to_bytes("autoencoder", cfg, {"encoder": enc, "decoder": dec}, metadata)
    ev = task["eval"]
    # Evaluate the checkpoint file, as gr_e2e eval does: what is scored is what was saved.
    with tempfile.TemporaryDirectory(prefix="gr-e2e-sweep-") as folder:
        path = os.path.join(folder, "checkpoint.safetensors")
        checkpoint.write_atomic(path, blob)
        _, _, curves, _ = report.evaluate_checkpoint(
            path, ev["ebn0_db"], channel=channel, baselines=[], min_errors=ev["min_errors"],
            max_blocks=ev["max_blocks"], seed=seed, progress_bar=False)
    return curves, train, blob


def _train_model_free(cfg, channel, ebn0, method, seed):
    """The offline model-free trainer with gr_e2e train --method model-free's steps."""
    from . import models
    params = model_free.ModelFreeParams(
        batch_size=method["batch_size"], seed=seed, rx_batches=method["rx_batches"],
        tx_batches=method["tx_batches"], sigma2=method["sigma2"], lr=method["lr"], baseline=method["baseline"],
        lr_schedule=method["lr_schedule"])
    enc, dec = models.build(cfg, seed=seed)
    feedback = model_free.FeedbackLink(snr_db=method["feedback_snr_db"], bits=method["feedback_bits"],
                                       loss_prob=method["feedback_loss_prob"], seed=seed)
    hist = model_free.train_model_free(enc, dec, channel, ebn0, params, batches=method["steps"], feedback=feedback)
    errors = training.validation_errors(enc, dec, channel, ebn0, blocks=VALIDATION_BLOCKS, seed=seed)
    rx_losses = [loss for loss, p in zip(hist["loss"], hist["phase"]) if p == model_free.RECEIVER]
    return enc, dec, {"chosen_restart": 0, "validation_errors": errors, "validation_blocks": VALIDATION_BLOCKS,
                      "final_loss": rx_losses[-1] if rx_losses else None, "lost_feedback": hist["lost_feedback"]}


def _run_baseline(task):
    from . import evaluation
    cfg = link_config.LinkConfig.from_dict(task["link"])
    (link,) = report.baseline_links([task["baseline"]], cfg)
    ev = task["eval"]
    points = evaluation.evaluate_bler(link, ev["ebn0_db"], channel=channels.by_name(task["channel"]),
                                      min_errors=ev["min_errors"], max_blocks=ev["max_blocks"], seed=task["seed"])
    return {link.name: points}


def failure(task, error):
    """The result of a task that raised: what the table and stderr report."""
    return {"format": TASK_FORMAT, "hash": task_hash(task), "task": task, "error": error}


# --- aggregation ---------------------------------------------------------------------

ROW_FIELDS = ("method", "channel", "train_ebn0_db", "seed", "curve", "ebn0_db", "blocks", "block_errors", "bler",
              "bler_ci95_low", "bler_ci95_high", "status", "error", "hash")
ACROSS_FIELDS = ("method", "channel", "train_ebn0_db", "curve", "ebn0_db", "seeds", "bler_mean", "bler_min",
                 "bler_max", "bler_ci95_low", "bler_ci95_high", "interval")

# Two-sided 95% Student t quantiles by degrees of freedom (standard table values).
_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
          10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
          19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
          28: 2.048, 29: 2.045, 30: 2.042}


def t_975(dof):
    """Two-sided 95% Student t quantile: the table up to 30 dof, Cornish-Fisher beyond (error < 1e-3)."""
    dof = validate.integer("dof", dof, 1)
    if dof in _T_975:
        return _T_975[dof]
    z = theory.Z95
    return z + (z ** 3 + z) / (4 * dof) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2)


def mean_interval(values):
    """(mean, low, high): the 95% t interval of the mean of per-seed values, clipped to [0, 1].

    values: sequence of K >= 2 BLERs, one per seed (independent trainings
    and evaluations); the interval covers the BLER averaged over seeds.
    """
    k = len(values)
    if k < 2:
        raise ValueError(f"values needs at least 2 seeds, got {k}")
    mean = math.fsum(values) / k
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (k - 1))
    half = t_975(k - 1) * sd / math.sqrt(k)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def aggregate(results):
    """Results (in task order) -> (rows, across_seeds, failed).

    rows: one dict per (task, curve, Eb/N0 point), ROW_FIELDS; a failed task
    gives one row with status 'failed', its error and no point.
    across_seeds: one dict per (method, channel, train Eb/N0, curve, Eb/N0),
    ACROSS_FIELDS: mean, min and max of the per-seed BLERs and a 95%
    interval: Student t across seeds when there are several, the point's
    Wilson interval when there is one seed.
    failed: [{'task': describe(task), 'hash', 'error'}].
    """
    rows, failed, groups = [], [], {}
    for r in results:
        task = r["task"]
        base = {"method": task_label(task), "channel": task["channel"],
                "train_ebn0_db": train_ebn0_label(task["train_ebn0_db"]) if task["kind"] == LEARNED else "",
                "seed": task["seed"], "hash": r["hash"]}
        if "error" in r:
            rows.append({f: "" for f in ROW_FIELDS} | base | {"status": "failed", "error": r["error"]})
            failed.append({"task": describe(task), "hash": r["hash"], "error": r["error"]})
            continue
        for curve, points in r["curves"].items():
            for p in points:
                row = base | {"curve": curve, "ebn0_db": p["ebn0_db"], "blocks": p["blocks"],
                              "block_errors": p["block_errors"], "bler": p["bler"],
                              "bler_ci95_low": p["bler_ci95"][0], "bler_ci95_high": p["bler_ci95"][1],
                              "status": "ok", "error": ""}
                rows.append({f: row[f] for f in ROW_FIELDS})
                key = (base["method"], base["channel"], base["train_ebn0_db"], curve, p["ebn0_db"])
                groups.setdefault(key, []).append(row)
    across = []
    for (method, channel, train, curve, ebn0), members in groups.items():
        blers = [m["bler"] for m in members]
        if len(members) > 1:
            mean, low, high = mean_interval(blers)
            interval = "t over seeds"
        else:
            mean, low, high = blers[0], members[0]["bler_ci95_low"], members[0]["bler_ci95_high"]
            interval = "Wilson"
        across.append({"method": method, "channel": channel, "train_ebn0_db": train, "curve": curve,
                       "ebn0_db": ebn0, "seeds": len(members), "bler_mean": mean, "bler_min": min(blers),
                       "bler_max": max(blers), "bler_ci95_low": low, "bler_ci95_high": high,
                       "interval": interval})
    return rows, across, failed


def rows_csv(rows, fields=ROW_FIELDS):
    """The rows as CSV text, one header line then one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def format_across(across):
    """The across-seeds table as text: one line per curve, mean BLER [min, max] per Eb/N0."""
    lines, curves = [], {}
    for a in across:
        curves.setdefault((a["method"], a["channel"], a["train_ebn0_db"], a["curve"]), []).append(a)
    for (method, channel, train, curve), points in curves.items():
        head = f"{method}, {channel}" + (f", train {train} dB" if train else "") + f": {curve} "
        head += f"({points[0]['seeds']} seed{'s' * (points[0]['seeds'] > 1)})"
        lines.append(head)
        for p in points:
            spread = f"  min {p['bler_min']:.3g}  max {p['bler_max']:.3g}" if p["seeds"] > 1 else ""
            lines.append(f"  {p['ebn0_db']:>6g} dB  BLER {p['bler_mean']:.3g}  95% "
                         f"[{p['bler_ci95_low']:.3g}, {p['bler_ci95_high']:.3g}] ({p['interval']}){spread}")
    return "\n".join(lines)
