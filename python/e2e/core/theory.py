"""Closed-form AWGN references and the Wilson confidence interval.

Eb/N0 is in dB throughout and follows DESIGN.md (Es = 1 per channel use,
noise N0/2 per real dimension). Functions accept a scalar (returning a
float) or an array (returning a float64 array of the same shape).
Pure Python/NumPy: no scipy.
"""
import math

import numpy as np

# z such that P(|Z| <= z) = 0.95 for a standard normal Z.
Z95 = 1.959963984540054


def _elementwise(f, x):
    if np.ndim(x) == 0:
        return float(f(float(x)))
    return np.vectorize(lambda v: float(f(float(v))), otypes=[np.float64])(np.asarray(x))


def qfunc(x):
    """Gaussian tail Q(x) = P(Z > x) = erfc(x / sqrt 2) / 2; scalar or array."""
    return _elementwise(lambda v: 0.5 * math.erfc(v / math.sqrt(2.0)), x)


def _ebn0(ebn0_db):
    return 10.0 ** (np.asarray(ebn0_db, dtype=np.float64) / 10.0)


def _as_output(x, like):
    return float(x) if np.ndim(like) == 0 else np.asarray(x, dtype=np.float64)


def uncoded_bpsk_bler(ebn0_db, k):
    """BLER of k uncoded bits on BPSK: 1 - (1 - Q(sqrt(2 Eb/N0)))^k."""
    p = np.asarray(qfunc(np.sqrt(2.0 * _ebn0(ebn0_db))))
    # -expm1(k log1p(-p)) keeps precision where the BLER is tiny.
    return _as_output(-np.expm1(int(k) * np.log1p(-p)), ebn0_db)


def hamming74_hard_bler(ebn0_db):
    """Exact BLER of Hamming (7,4) on BPSK with hard-decision syndrome decoding.

    BLER = P(2 or more of the 7 bits flipped) = 1 - (1-p)^7 - 7p(1-p)^6 with
    p = Q(sqrt(2 (4/7) Eb/N0)); summed term by term to avoid cancellation.
    """
    p = np.asarray(qfunc(np.sqrt(2.0 * (4.0 / 7.0) * _ebn0(ebn0_db))))
    bler = sum(math.comb(7, i) * p ** i * (1.0 - p) ** (7 - i) for i in range(2, 8))
    return _as_output(bler, ebn0_db)


def hamming74_soft_union_bound(ebn0_db):
    """Union bound on the soft-ML BLER of Hamming (7,4) on BPSK.

    7 Q(sqrt(6g)) + 7 Q(sqrt(8g)) + Q(sqrt(14g)), g = (4/7) Eb/N0, from the
    weight distribution 1 + 7x^3 + 7x^4 + x^7 (pairwise error Q(sqrt(2 d g))).
    """
    g = (4.0 / 7.0) * _ebn0(ebn0_db)
    bound = 7.0 * np.asarray(qfunc(np.sqrt(6.0 * g))) + 7.0 * np.asarray(qfunc(np.sqrt(8.0 * g))) \
        + np.asarray(qfunc(np.sqrt(14.0 * g)))
    return _as_output(bound, ebn0_db)


def normal_quantile(p):
    """Inverse of the standard normal CDF, by bisection on erfc (|error| < 1e-12)."""
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p!r}")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return 0.5 * (lo + hi)


def two_sided_z(confidence):
    """z with P(|Z| <= z) = confidence; the exact constant Z95 for 0.95."""
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if confidence == 0.95:
        return Z95
    return normal_quantile(0.5 + 0.5 * confidence)


def wilson_interval(errors, trials, confidence=0.95):
    """Wilson score interval for a binomial proportion errors / trials.

    Well behaved at 0 errors (unlike the normal approximation), which matters
    at high Eb/N0. Returns (low, high) as floats; (0.0, 1.0) for 0 trials.
    """
    errors, trials = int(errors), int(trials)
    if trials < 0 or not 0 <= errors <= trials:
        raise ValueError(f"need 0 <= errors <= trials, got errors={errors}, trials={trials}")
    if trials == 0:
        return 0.0, 1.0
    z = two_sided_z(confidence)
    p = errors / trials
    z2n = z * z / trials
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / trials + z2n / (4.0 * trials))
    low = 0.0 if errors == 0 else max(0.0, centre - half)
    high = 1.0 if errors == trials else min(1.0, centre + half)
    return float(low), float(high)


# Student t quantiles for a two-sided 99.9% test (0.9995 one-sided), by
# degrees of freedom; standard table values.
T_999_TWO_SIDED = {1: 636.619, 2: 31.599, 3: 12.924, 4: 8.610, 5: 6.869, 6: 5.959, 7: 5.408,
                   8: 5.041, 9: 4.781, 10: 4.587, 11: 4.437, 12: 4.318, 13: 4.221, 14: 4.140,
                   15: 4.073, 19: 3.883, 29: 3.659}


def t_999(dof):
    """Two-sided 99.9% Student t quantile for dof >= 1 (the next lower tabulated dof: conservative)."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof!r}")
    return T_999_TWO_SIDED[max(d for d in T_999_TWO_SIDED if d <= dof)]


def runs_vs_reference(run_rates, reference_rate, reference_trials):
    """Do K independent runs' error rates agree with a Monte-Carlo reference?

    Welch's t of the runs' mean against the reference, whose own binomial
    variance is added. Used where one run's rate carries more than binomial
    variance (channel_model draws its noise from a fixed pool of samples),
    so the between-run variance is measured rather than assumed.
    run_rates: K >= 2 error rates. Returns {'t', 'dof', 'critical', 'agree'}
    at 99.9% two-sided, with dof = K - 1 (Welch-Satterthwaite's dof is never
    below it here, so the critical value is conservative).
    """
    rates = np.asarray(run_rates, dtype=float)
    if rates.size < 2:
        raise ValueError("run_rates needs at least 2 runs")
    p, n = float(reference_rate), int(reference_trials)
    se = math.sqrt(rates.var(ddof=1) / rates.size + p * (1 - p) / n)
    t = (rates.mean() - p) / se if se > 0 else (0.0 if rates.mean() == p else math.inf)
    crit = t_999(rates.size - 1)
    return {"t": float(t), "dof": int(rates.size - 1), "critical": crit, "agree": bool(abs(t) < crit)}
