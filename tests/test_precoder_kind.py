"""The 'precoder' checkpoint kind (core.precoder): config checks, save/load, refusal, training."""
import dataclasses

import pytest
import torch

from gnuradio.e2e.core import checkpoint, kinds, mpa, precoder

torch.set_num_threads(1)


@pytest.mark.parametrize("architecture, encoder_class", [("mpa", mpa.MpaEncoder), ("plain", mpa.PlainEncoder)])
def test_save_and_load_round_trip(tmp_path, architecture, encoder_class):
    cfg = precoder.PrecoderConfig(M=16, N=8, architecture=architecture, L=12, train_family="selective", ebn0_db=6)
    torch.manual_seed(0)
    enc, dec = precoder.build_encoder(cfg), precoder.build_decoder(cfg)
    path = precoder.save_precoder(tmp_path / "p.safetensors", cfg, enc, dec, metadata={"seed": 0})
    got_cfg, got_enc, got_dec = precoder.load_precoder(path, expect={"M": 16, "N": 8})
    assert got_cfg == cfg and isinstance(got_enc, encoder_class) and isinstance(got_dec, mpa.CsiDecoder)
    m = torch.arange(16)
    h = torch.randn(16, 8, dtype=torch.complex64)
    with torch.no_grad():
        assert torch.equal(got_enc(m), enc(m))
        assert torch.equal(got_dec(got_enc(m), h), dec(enc(m), h))


def test_the_networks_do_not_pass_for_a_link():
    # nn_encoder / nn_decoder load any kind holding 'encoder' / 'decoder'; a precoder needs channel state.
    assert "precoder" not in kinds.holding("encoder") and "precoder" not in kinds.holding("decoder")


def test_other_kinds_mismatches_and_damage_are_refused(tmp_path, tiny_link):
    with pytest.raises(checkpoint.CheckpointError, match="autoencoder checkpoint; expected precoder"):
        precoder.load_precoder(tiny_link.path)
    cfg = precoder.PrecoderConfig(M=16, N=8)
    path = precoder.save_precoder(tmp_path / "p.safetensors", cfg, precoder.build_encoder(cfg),
                                  precoder.build_decoder(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="N=8 but N=4"):
        precoder.load_precoder(path, expect={"N": 4})
    data = bytearray(open(path, "rb").read())
    data[-40:] = b"\xff" * 40
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError):
        precoder.load_precoder(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("field, value", [("architecture", "deep"), ("L", 0), ("N", 0), ("damping", 0.0),
                                          ("train_family", "urban"), ("beta", -1.0), ("steps", -1)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(precoder.PrecoderConfig(M=16, N=8), **{field: value})


def test_config_dict_round_trip_and_unknown_keys():
    cfg = precoder.PrecoderConfig(M=64, N=6, hidden=(32, 32), decoder_hidden=(128,))
    assert precoder.PrecoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="colour"):
        precoder.PrecoderConfig.from_dict(dict(cfg.to_dict(), colour="blue"))


def test_fit_precoder_is_reproducible_learns_and_keeps_the_best_restart():
    cfg = precoder.PrecoderConfig(M=16, N=8, L=16)
    enc1, _, h1, runs1 = precoder.fit_precoder(cfg, steps=60, seed=3, restarts=2)
    enc2, _, h2, runs2 = precoder.fit_precoder(cfg, steps=60, seed=3, restarts=2)
    assert h1 == h2 and len(h1) == 12 and runs1 == runs2
    assert torch.equal(enc1.codebook(), enc2.codebook())
    # Cross-entropy starts at about ln 16 = 2.77; 60 Adam steps must bring it well down.
    assert h1[-1] < 0.6 * h1[0]
    assert len({r["seed"] for r in runs1}) == 2 and sum(r["chosen"] for r in runs1) == 1
    chosen = next(r for r in runs1 if r["chosen"])
    assert chosen["errors"] == min(r["errors"] for r in runs1) and chosen["blocks"] == 10000
