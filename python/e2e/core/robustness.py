"""Links under attack: craft an attacker's perturbation, score receivers with and without it.

The pieces of core.attacks put together the way a robustness comparison
uses them, shared by `gr_e2e attack` and bench/adversarial.py:

  attacker_data       what the attacker crafts on: messages sent over AWGN
                      at the attacker's Eb/N0, from its own random stream
  craft_universal     a universal perturbation against a decoder (white-box
                      when it is the target's, black-box when a substitute's)
  attack_channels     the channels a receiver is scored on: no attack,
                      Gaussian jamming and perturbations of the same PSR
  evaluate_attacks    BLER curves of links x attacks on one Eb/N0 grid

A perturbation is added at the receiver (y = x + w + p): the attacker's
signal arrives beside the link's, the setting of Sadeghi & Larsson.
"""
import torch

from . import attacks, evaluation, prng, validate
from .channels import AWGN

# Messages the attacker crafts a universal perturbation on, by default.
DEFAULT_ATTACK_MESSAGES = 2000


def attacker_data(codebook, ebn0_db, *, messages=DEFAULT_ATTACK_MESSAGES, seed=0):
    """The attacker's dataset: (received complex64 [messages, n], sent int64 [messages]).

    codebook: a models.Encoder, or complex [M, n] with Es = 1 (e.g. a
        baseline's codebook), the transmitter the attacker observes.
    ebn0_db: Eb/N0 in dB of the received blocks.
    Messages come from stream (seed, ATTACK, 0), noise from (seed, ATTACK, 1).
    """
    messages = validate.integer("messages", messages, 1)
    table = codebook.symbol_table() if hasattr(codebook, "symbol_table") else codebook
    M = len(table)
    sent = torch.from_numpy(prng.numpy_rng(seed, prng.ATTACK, 0).integers(0, M, messages))
    y = attacks.received_signals(table, sent, ebn0_db, prng.torch_generator(seed, prng.ATTACK, 1))
    return y, sent


def craft_universal(decoder, codebook, ebn0_db, psr_db, *, mode="complex", messages=DEFAULT_ATTACK_MESSAGES,
                    shift_invariant=False, passes=3, seed=0, progress_bar=False):
    """A universal perturbation against `decoder`: complex64 tensor [n] with PSR psr_db exactly.

    decoder: callable real float32 [B, 2n] -> logits [B, M] (a models.Decoder,
        attacks.hamming_soft_decoder()); the attacker's data comes from
        attacker_data(codebook, ebn0_db, messages, seed).
    shift_invariant: crafted to work at any symbol offset (an attacker that is
        not aligned with the message boundaries).
    """
    y, sent = attacker_data(codebook, ebn0_db, messages=messages, seed=seed)
    was_training = getattr(decoder, "training", False)
    if hasattr(decoder, "eval"):
        decoder.eval()
    try:
        return attacks.universal_perturbation(decoder, y, sent, psr_db, mode=mode, passes=passes,
                                              shift_invariant=shift_invariant,
                                              generator=prng.torch_generator(seed, prng.ATTACK, 2),
                                              progress_bar=progress_bar)
    finally:
        if was_training:
            decoder.train()


def attack_channels(psr_db, perturbations=None, *, mode="complex", seed=0, shift=0):
    """{name: channel}: 'no attack', 'jamming' (Gaussian, same PSR) and one per perturbation.

    perturbations: {name: complex [n]} universal perturbations, each already
        at psr_db (they are added as they are; attacks.scale_to_psr makes one so).
    mode: 'real' jams the real parts only (all the power where a real-mode
        receiver reads), as a real-mode perturbation has no imaginary part.
    shift: symbol offset of the universal perturbations (an int, or 'random').
    The jamming draws come from stream (seed, JAMMING).
    """
    out = {"no attack": AWGN(),
           "jamming": attacks.Jammed(AWGN(), psr_db, mode, prng.torch_generator(seed, prng.JAMMING))}
    for name, p in (perturbations or {}).items():
        out[name] = attacks.Perturbed(AWGN(), p, shift=shift)
    return out


class RealPart:
    """What a real-mode receiver reads of a complex attack: the perturbation with its imaginary parts zeroed.

    A BPSK receiver (Hamming (7,4), a real-mode link) never reads the
    imaginary parts, so a complex attack aimed at a complex link reaches it
    with only its real parts; zeroing them lets the evaluator score a
    real-mode link on the very same attack signal.
    perturbation: complex [n] (universal) or a callable f(x, generator) -> complex [B, n].
    Returns a callable f(x, generator) -> complex [B, n] with zero imaginary parts.
    """

    preserves_real = True

    def __init__(self, perturbation):
        self.perturbation = perturbation

    def __call__(self, x, generator=None):
        p = self.perturbation
        p = p(x, generator) if callable(p) and not isinstance(p, torch.Tensor) else \
            torch.as_tensor(p).to(x.device).expand(x.shape[0], -1)
        return torch.complex(p.real, torch.zeros_like(p.real))


def evaluate_attacks(links, channels, grid, *, min_errors=100, max_blocks=1_000_000, seed=0, progress_bar=False):
    """BLER curves {f'{link name}, {channel name}': points} of every link on every channel.

    links: {name: link} (core.baselines interface: LearnedLink, CodebookLink...)
    channels: {name: channel}, e.g. attack_channels(); the same evaluation
        seed for every pair, so the messages and noise are the same everywhere.
    Returns points as evaluation.evaluate_bler returns them.
    """
    curves = {}
    for link_name, link in links.items():
        for channel_name, channel in channels.items():
            curves[f"{link_name}, {channel_name}"] = evaluation.evaluate_bler(
                link, grid, channel=channel, min_errors=min_errors, max_blocks=max_blocks, seed=seed,
                progress_bar=progress_bar)
    return curves


def bler_at(curve, ebn0_db):
    """The point of `curve` at ebn0_db (KeyError naming it when absent)."""
    for point in curve:
        if abs(point["ebn0_db"] - ebn0_db) < 1e-9:
            return point
    raise KeyError(f"no point at Eb/N0 = {ebn0_db} dB")
