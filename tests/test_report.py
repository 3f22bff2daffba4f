"""core.report: which baselines fit a link, and the comparison gr_e2e eval and the main job print."""
import pytest
import torch

from gnuradio.e2e.core import channels, checkpoint, config, models, report

torch.set_num_threads(1)


def test_baselines_fit_the_link_or_are_refused_by_name():
    cfg16 = config.LinkConfig(M=16, n=7)
    names = [link.name for link in report.baseline_links(report.BASELINES, cfg16)]
    assert names == ["Hamming (7,4) soft ML", "Hamming (7,4) hard", "uncoded BPSK (4 bits)", "uncoded QPSK (4 bits)",
                     "uncoded 16QAM (4 bits)"]
    cfg8 = config.LinkConfig(M=8, n=3)
    with pytest.raises(ValueError, match="^baselines: hamming-soft carries 16 messages, the link has M=8"):
        report.baseline_links(["hamming-soft"], cfg8)
    with pytest.raises(ValueError, match="^baselines: uncoded-qpsk: 8 messages do not fill whole qpsk symbols"):
        report.baseline_links(["uncoded-qpsk"], cfg8)
    with pytest.raises(ValueError, match="^baselines: unknown 'bogus'"):
        report.baseline_links(["bogus"], cfg8)
    assert report.default_baselines(cfg16) == ["hamming-soft", "hamming-hard", "uncoded-qpsk"]
    assert report.default_baselines(config.LinkConfig(M=16, n=7, mode="real"))[-1] == "uncoded-bpsk"
    assert report.default_baselines(cfg8) == ["uncoded-bpsk"]


@pytest.mark.parametrize("channel, curves", [
    (channels.AWGN(), {"learned, neural decoder", "learned, ML detection", "Hamming (7,4) soft ML",
                       "Hamming (7,4) hard", "uncoded QPSK (4 bits)"}),
    (channels.RayleighBlockFading(), {"learned, neural decoder", "learned, ML detection"}),
    (channels.by_name("phase"), {"learned, neural decoder"}),  # no optimal detector known here
])
def test_evaluate_checkpoint_on_any_channel(tmp_path, channel, curves):
    cfg = config.LinkConfig(M=16, n=7)
    path = checkpoint.save_link(tmp_path / "l.safetensors", cfg, *models.build(cfg, seed=0))
    _, _, got, gaps = report.evaluate_checkpoint(path, [4.0], channel=channel, max_blocks=500, progress_bar=False)
    assert set(got) == curves
    assert all(len(points) == 1 and points[0]["blocks"] == 500 for points in got.values())
    assert len(gaps) == len(curves) - 1
    table = report.format_table(got)
    assert all(name in table for name in curves) and "Eb/N0 (dB)" in table
    if not isinstance(channel, channels.AWGN):
        with pytest.raises(ValueError, match="^baselines: the classical baselines assume AWGN"):
            report.evaluate_checkpoint(path, [4.0], channel=channel, baselines=["hamming-soft"], max_blocks=10)
