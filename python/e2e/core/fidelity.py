"""How faithful is a learned channel? Statistics of generated against real received symbols.

fidelity_report compares, for the same transmitted x, what the real channel
delivered (y_real) with what a model generated (y_fake):

- conditional moments: rows are grouped by message (or by distinct x row);
  per group the mean E[y | group] and the covariance Cov[y | group] on the
  2n real dimensions, real against fake, averaged over groups;
- the residual y - x, whose variance per real dimension is N0/2 on AWGN
  (variance_interval gives its chi-square confidence interval);
- a two-sample test on the pairs (x, y): the squared maximum mean
  discrepancy (MMD^2) with a Gaussian (RBF) kernel, and its permutation
  p-value.

The MMD test. With a kernel k, MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b)
between the distributions of a = (x, y_real) and b = (x, y_fake) (the real
layout [x, y], 4n numbers); it is zero if and only if the two distributions
agree (the RBF kernel is characteristic). Because both samples share x, the
rows are pairs: with u_i = phi(a_i) - phi(b_i) in the kernel's feature
space, the unbiased estimate is

    MMD^2_u = 1 / (N (N - 1)) sum_{i != j} H_ij,
    H_ij = k(a_i, a_j) + k(b_i, b_j) - k(a_i, b_j) - k(b_i, a_j) = <u_i, u_j>.

Under the null hypothesis (y_fake and y_real are drawn from the same p(y | x))
the two members of a pair are exchangeable, so swapping a random subset of
pairs (u_i -> -u_i) leaves the statistic's distribution unchanged: the
p-value is (1 + #{permuted >= observed}) / (1 + permutations) with random
signs s in {-1, +1}^N, statistic s^T H s / (N (N - 1)) (H with zero diagonal).
The kernel width is the median pairwise distance of the pooled rows (fixed
under swaps, so the test stays exact). At most max_samples pairs are used
(a seeded subset): the cost is O(N^2).
"""
import math

import numpy as np
import torch

from . import prng, theory, validate
from .models import complex_to_real

DEFAULT_PERMUTATIONS = 200
DEFAULT_MAX_SAMPLES = 1000


def _as_complex(name, value):
    t = torch.as_tensor(value)
    if not t.is_complex() or t.dim() != 2 or t.shape[0] < 1:
        raise ValueError(f"{name} must be complex [N, n] with N >= 1, got {t.dtype} {list(t.shape)}")
    return t.detach().to("cpu", torch.complex128)


def chi2_quantile(p, dof):
    """Quantile of the chi-square distribution with dof degrees of freedom (Wilson-Hilferty).

    k (1 - 2/(9k) + z_p sqrt(2/(9k)))^3; relative error below 1e-3 from dof = 50 up.
    """
    dof = validate.integer("dof", dof, 1)
    z = theory.normal_quantile(p)
    c = 2.0 / (9.0 * dof)
    return dof * max(0.0, 1.0 - c + z * math.sqrt(c)) ** 3


def variance_interval(sample_variance, dof, confidence=0.99):
    """Confidence interval (low, high) for a Gaussian variance from a sample variance with dof degrees of freedom.

    dof = number of values when the mean is known (e.g. noise of mean zero), values - 1 otherwise.
    (dof s^2 / chi2_{(1+c)/2}, dof s^2 / chi2_{(1-c)/2}).
    """
    s2 = validate.real("sample_variance", sample_variance, 0)
    confidence = validate.real("confidence", confidence, 0, 1, low_open=True, high_open=True)
    hi_q, lo_q = chi2_quantile(0.5 + confidence / 2, dof), chi2_quantile(0.5 - confidence / 2, dof)
    return dof * s2 / hi_q, (dof * s2 / lo_q if lo_q > 0 else math.inf)


def _groups(x_real, messages):
    """Group index per row: the messages, or the distinct rows of x."""
    if messages is not None:
        m = torch.as_tensor(messages).to(torch.int64).reshape(-1)
        if m.shape[0] != x_real.shape[0]:
            raise ValueError(f"messages has {m.shape[0]} entries, x has {x_real.shape[0]} rows")
        return torch.unique(m, return_inverse=True)[1]
    return torch.unique(x_real, dim=0, return_inverse=True)[1]


def conditional_moments(x_real, y_real, y_fake, groups):
    """Mean and covariance errors per group of >= 2 rows; (mean_error, mean_error_rel, cov_error_rel, groups).

    x_real, y_real, y_fake: float64 [N, 2n]; groups: int64 [N]. Errors are
    averaged over the groups used; None when no group has 2 rows.
    """
    mean_err, mean_rel, cov_rel = [], [], []
    for g in torch.unique(groups):
        rows = groups == g
        if int(rows.sum()) < 2:
            continue
        a, b = y_real[rows], y_fake[rows]
        ma, mb = a.mean(0), b.mean(0)
        mean_err.append(float(torch.linalg.vector_norm(mb - ma)))
        mean_rel.append(mean_err[-1] / max(float(torch.linalg.vector_norm(ma)), 1e-12))
        ca, cb = torch.cov(a.T), torch.cov(b.T)
        cov_rel.append(float(torch.linalg.matrix_norm(cb - ca)) / max(float(torch.linalg.matrix_norm(ca)), 1e-12))
    if not mean_err:
        return None, None, None, 0
    return float(np.mean(mean_err)), float(np.mean(mean_rel)), float(np.mean(cov_rel)), len(mean_err)


def mmd_test(a, b, *, permutations=DEFAULT_PERMUTATIONS, seed=0):
    """Paired MMD^2 two-sample test (module docstring).

    a, b: float [N, d] (N >= 2), row i of a paired with row i of b.
    Returns (mmd2, p_value, bandwidth).
    """
    permutations = validate.integer("permutations", permutations, 1)
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    N = a.shape[0]
    if N < 2 or b.shape != a.shape:
        raise ValueError(f"mmd_test needs two paired samples [N >= 2, d], got {list(a.shape)} and {list(b.shape)}")
    pooled = torch.cat([a, b])
    d2 = torch.cdist(pooled, pooled).pow(2)
    off = d2[~torch.eye(2 * N, dtype=torch.bool)]
    bandwidth = float(off.sqrt().median())
    k = torch.exp(-d2 / (2 * max(bandwidth, 1e-12) ** 2))
    kaa, kbb, kab = k[:N, :N], k[N:, N:], k[:N, N:]
    H = kaa + kbb - kab - kab.T
    H.fill_diagonal_(0.0)
    norm = N * (N - 1)
    observed = float(H.sum()) / norm
    signs = torch.from_numpy(prng.numpy_rng(seed, prng.EVAL, 1).choice([-1.0, 1.0], size=(permutations, N)))
    permuted = ((signs @ H) * signs).sum(1) / norm
    p = (1 + int((permuted >= observed).sum())) / (1 + permutations)
    return observed, p, bandwidth


def fidelity_report(x, y_real, y_fake, messages=None, *, permutations=DEFAULT_PERMUTATIONS,
                    max_samples=DEFAULT_MAX_SAMPLES, seed=0):
    """Statistics of a learned channel's output against the real channel's, for the same inputs.

    x:        complex [N, n] (torch or NumPy), transmitted symbols
    y_real:   complex [N, n], what the real channel delivered for x
    y_fake:   complex [N, n], what the model generated for the same x
    messages: int [N] or None; groups rows for the conditional moments (None:
              rows with identical x form a group; i.i.d. inputs have no
              repeated rows, so only the residual and MMD figures apply)
    permutations, max_samples, seed: the MMD test (module docstring)

    Returns a JSON-ready dict:
      rows, groups         rows compared; groups of >= 2 rows used for moments
      mean_error           mean over groups of ||E[y_fake|g] - E[y_real|g]||_2 (2n real dims), or None
      mean_error_relative  the same divided by ||E[y_real|g]||_2, or None
      covariance_error     mean over groups of ||C_fake - C_real||_F / ||C_real||_F, or None
      noise_variance_real, noise_variance_fake
                           variance of y - x per real dimension, averaged over
                           the 2n dimensions (N0/2 on AWGN)
      noise_variance_real_per_dim, noise_variance_fake_per_dim: lists of 2n
      mmd2, mmd_p_value, mmd_bandwidth, mmd_samples, mmd_permutations
    """
    x, y_real, y_fake = _as_complex("x", x), _as_complex("y_real", y_real), _as_complex("y_fake", y_fake)
    if not x.shape == y_real.shape == y_fake.shape:
        raise ValueError(f"x, y_real and y_fake must have one shape, got {list(x.shape)}, "
                         f"{list(y_real.shape)}, {list(y_fake.shape)}")
    max_samples = validate.integer("max_samples", max_samples, 2)
    xr, ar, br = complex_to_real(x), complex_to_real(y_real), complex_to_real(y_fake)
    N = xr.shape[0]
    mean_error, mean_rel, cov_error, used = conditional_moments(xr, ar, br, _groups(xr, messages))
    var_real = (ar - xr).var(0) if N > 1 else torch.zeros(xr.shape[1], dtype=torch.float64)
    var_fake = (br - xr).var(0) if N > 1 else torch.zeros(xr.shape[1], dtype=torch.float64)
    report = {"rows": N, "groups": used, "mean_error": mean_error, "mean_error_relative": mean_rel,
              "covariance_error": cov_error,
              "noise_variance_real": float(var_real.mean()), "noise_variance_fake": float(var_fake.mean()),
              "noise_variance_real_per_dim": var_real.tolist(), "noise_variance_fake_per_dim": var_fake.tolist()}
    if N >= 2:
        rows = torch.arange(N)
        if N > max_samples:
            rows = torch.from_numpy(np.sort(prng.numpy_rng(seed, prng.EVAL, 0).choice(N, max_samples, replace=False)))
        mmd2, p, bw = mmd_test(torch.cat([xr[rows], ar[rows]], 1), torch.cat([xr[rows], br[rows]], 1),
                               permutations=permutations, seed=seed)
        report.update(mmd2=mmd2, mmd_p_value=p, mmd_bandwidth=bw, mmd_samples=int(len(rows)),
                      mmd_permutations=int(permutations))
    else:
        report.update(mmd2=None, mmd_p_value=None, mmd_bandwidth=None, mmd_samples=N, mmd_permutations=0)
    return report
