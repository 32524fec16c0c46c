"""Frechet distance between two sets of feature vectors, in float64.

    d = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr( (S_a S_b)^(1/2) )

with unbiased covariances (`np.cov(rowvar=False)`). Variants of the trace term:

* `semtalk2024` - the pytorch-fid recipe used for the published FGD: `scipy.linalg.sqrtm(S_a S_b)`
  without offset; only when that is non-finite, retry with 1e-6 I added to both covariances; a complex
  result is accepted (real part kept) when the diagonal's imaginary parts are within 1e-3, otherwise the
  distance counts as failed and is reported as `FRECHET_FAILED` (1e10), as that code did.
* `evaltools2025` - the 2025 PantoMatrix evaluation API: always adds 1e-6 I to both covariances, keeps the
  real part. Biased by -2 * d * 1e-6 (-4.8e-4 for 240-d features on identical sets).
* `corrected` - tr((S_a S_b)^(1/2)) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2))): both factors are symmetric
  positive semi-definite, so the eigenvalues are real and >= 0; those below the numerical-rank tolerance
  are treated as 0. No offset, no complex arithmetic; identical sets give 0 to rounding error, also when
  there are fewer feature vectors than dimensions.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.linalg

FrechetVariant = Literal["semtalk2024", "evaltools2025", "corrected"]
FRECHET_VARIANTS: tuple[str, ...] = ("semtalk2024", "evaltools2025", "corrected")
#: Value the 2024 code reports when the matrix square root has a large imaginary part.
FRECHET_FAILED = 1e10
_EPS = 1e-6


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(N, D)` features -> mean `(D,)` and unbiased covariance `(D, D)`, both float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"Frechet distance needs features of shape (N >= 2, D), got {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_eigvals(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with those below its numerical-rank tolerance
    (`max(w) * d * eps`, numpy's `matrix_rank` convention) set to 0: they are rounding noise, and their
    square roots would otherwise add up to ~1e-6 for rank-deficient covariances."""
    tol = max(float(w.max(initial=0.0)), 0.0) * w.shape[0] * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    return (v * np.sqrt(_psd_eigvals(w))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, variant: str) -> float:
    if variant == "corrected":
        r = _sqrt_psd(s1)
        inner = r @ s2 @ r
        w = np.linalg.eigvalsh((inner + inner.T) / 2.0)
        return float(np.sqrt(_psd_eigvals(w)).sum())
    if variant == "evaltools2025":
        offset = np.eye(s1.shape[0]) * _EPS
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        return float(np.trace(np.real(covmean)))
    if variant == "semtalk2024":
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * _EPS
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
                largest = float(np.max(np.abs(covmean.imag)))
                warnings.warn(
                    f"Frechet distance failed: sqrtm has an imaginary component of {largest:.3g}; "
                    f"reporting {FRECHET_FAILED:g} as the 2024 protocol does",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return float("nan")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise ValueError(f"unknown Frechet variant {variant!r}; choose one of {', '.join(FRECHET_VARIANTS)}")


def frechet_distance_from_stats(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    variant: FrechetVariant | str = "corrected",
) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(
            f"mismatched statistics: means {mu1.shape} vs {mu2.shape}, covariances {s1.shape} vs {s2.shape}"
        )
    tr_covmean = _trace_sqrt_product(s1, s2, variant)
    if np.isnan(tr_covmean):
        return FRECHET_FAILED
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance(
    features_a: np.ndarray, features_b: np.ndarray, variant: FrechetVariant | str = "corrected"
) -> float:
    """Frechet distance between two feature sets `(N_a, D)` and `(N_b, D)`; symmetric in its arguments."""
    mu1, s1 = feature_statistics(features_a)
    mu2, s2 = feature_statistics(features_b)
    return frechet_distance_from_stats(mu1, s1, mu2, s2, variant)
