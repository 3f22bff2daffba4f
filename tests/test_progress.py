"""Progress: a bar on a terminal, one clean line per stage in a log, nothing when quiet."""
import io
import sys

from gnuradio.e2e.core import channels, config, evaluation, models, progress, training
from gnuradio.e2e.core.learned import LearnedLink


def test_stage_line_reports_count_time_rate_and_last_values():
    out = io.StringIO()
    line = progress.StageLine(100, "model-aware training", "it", stream=out)
    for _ in range(100):
        line.update()
    line.set_postfix(loss="0.0123")
    line.close()
    line.close()  # a second close prints nothing more
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.startswith("model-aware training: 100/100 it in ") and text.rstrip().endswith("loss=0.0123")
    assert " it/s)" in text


def test_bar_chooses_by_terminal_and_quiet(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(progress.bar(10, "x"), progress.StageLine)
    assert not isinstance(progress.bar(10, "x", enabled=False), progress.StageLine)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    from tqdm.auto import tqdm
    b = progress.bar(10, "x")
    assert isinstance(b, tqdm)
    b.close()


def test_training_and_evaluation_log_one_line_per_stage(capsys):
    cfg = config.LinkConfig(M=4, n=2)
    enc, dec = models.build(cfg, seed=0)
    training.train_model_aware(enc, dec, channels.AWGN(), 6.0, steps=30, batch_size=64, progress_bar=True)
    link = LearnedLink(enc, dec)
    points = evaluation.evaluate_bler(link, [0.0, 2.0], min_errors=20, max_blocks=5000, batch_size=1000,
                                      progress_bar=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("model-aware training: 30/30 it in ") and "loss=" in err[0]
    # The evaluation's count is points finished (fractions while a point runs), ending at the grid size.
    assert ": 2/2 pt in " in err[1] and f"bler={points[-1]['bler']:.3g}" in err[1]
    training.train_model_aware(enc, dec, channels.AWGN(), 6.0, steps=5, batch_size=64, progress_bar=False)
    evaluation.evaluate_bler(link, [0.0], min_errors=5, max_blocks=100, progress_bar=False)
    assert capsys.readouterr().err == ""
