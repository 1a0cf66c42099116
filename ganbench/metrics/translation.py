"""Translation metrics, each in both directions (``_ab``: A -> B, ``_ba``: B -> A; cycles by input domain).

On the features of ``ganbench.features.translation`` (the whole test split of each domain):

- distribution: ``fid_ab`` and ``kid_ab`` between G(A_test) and B_test in domain B's classifier
  features; ``fid_ab_ci``: half the width of FID's 95 % bootstrap interval (100 resamples of the
  translations against the fixed reference);
- paired error against the hidden truth T(a): ``mse_ab`` (per pixel, images in [-1, 1]) and
  ``ssim_ab`` (Wang et al. 2004, on intensities (x + 1) / 2 in [0, 1]: 11x11 Gaussian window,
  sigma 1.5, K1 0.01, K2 0.03, data range 1, valid filtering, mean over the map and the channels;
  on signed values SSIM(x, -x) would be positive, the luminance and structure terms both negative);
- ``label_ab``: domain B's classifier's accuracy on G(a) against a's label (a translator that swaps
  classes fails here whatever its FID); ``class_kl_ab``: KL(histogram of the classes predicted for
  the translations || histogram of the test labels), nats;
- ``cycle_a``: mean |F(G(a)) - a|; ``stego_a``: how much that error grows when noise of std
  ``STEGO_SIGMA`` is added between G and F (Chu et al. 2017: a translator that hides a in
  low-amplitude detail of G(a) loses it to the noise; a faithful one hardly notices).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import xlogy

from ganbench.features.translation import TranslationFeatures
from ganbench.errors import UserError
from ganbench.metrics.base import Metric, register
from ganbench.metrics.frechet import FrechetReference
from ganbench.metrics.image import SEED, fid_checked, memo
from ganbench.metrics.kernel import kid
from ganbench.metrics.uncertainty import bootstrap_fid

WHOLE_SPLIT = -1
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # subsets of at most the test split's size
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
DATA_RANGE = 1.0  # intensities (x + 1) / 2


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) mean SSIM of each pair of (N, C, H, W) images in [-1, 1], read as intensities in [0, 1]
    (float64 arithmetic)."""
    if x.shape != y.shape or x.dim() != 4:
        raise UserError(f"SSIM compares images of one shape (N, C, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")
    c = x.shape[1]
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise UserError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(x.shape[-2:])}")
    t = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()
    x, y = (x.double() + 1) / 2, (y.double() + 1) / 2

    def blur(v):
        return F.conv2d(v, window, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def _truth(f: TranslationFeatures, direction: str) -> torch.Tensor:
    d = f.dataset
    if not d.paired:
        raise UserError(f"dataset {d.name!r} has no ground truth: paired metrics (mse, ssim) do not apply")
    return d.truth_ab() if direction == "ab" else d.truth_ba()


def mse(f: TranslationFeatures, direction: str) -> float:
    return float(((f.output(direction).double() - _truth(f, direction).double()) ** 2).mean())


def mean_ssim(f: TranslationFeatures, direction: str) -> float:
    return float(ssim(f.output(direction), _truth(f, direction)).mean())


def fid(f: TranslationFeatures, direction: str) -> float:
    s = f.side(direction)
    return fid_checked(s.fake, s.real, f"fid_{direction}")


def fid_ci(f: TranslationFeatures, direction: str) -> float:
    """Half the width of the 95 % percentile bootstrap interval of ``fid``."""
    s = f.side(direction)
    interval = memo(f, f"fid_ci_{direction}",
                    lambda: bootstrap_fid(s.fake, FrechetReference.from_features(s.real), seed=SEED))
    return (interval.high - interval.low) / 2


def kid_value(f: TranslationFeatures, direction: str) -> float:
    s = f.side(direction)
    size = min(KID_SUBSET_SIZE, len(s.fake), len(s.real))
    return kid(s.fake, s.real, subsets=KID_SUBSETS, subset_size=size, seed=SEED).mean


def label_accuracy(f: TranslationFeatures, direction: str) -> float:
    s = f.side(direction)
    return float((s.fake_probs.argmax(1) == s.labels).mean())


def class_kl(f: TranslationFeatures, direction: str) -> float:
    s = f.side(direction)
    p = np.bincount(s.fake_probs.argmax(1), minlength=s.num_classes) / len(s.fake_probs)
    q = np.bincount(s.labels, minlength=s.num_classes) / len(s.labels)
    if (q[p > 0] == 0).any():
        return float("inf")
    return float(np.sum(xlogy(p, p) - xlogy(p, np.where(q > 0, q, 1.0))))


def _inputs(f: TranslationFeatures, domain: str) -> torch.Tensor:
    return f.dataset.test_a if domain == "a" else f.dataset.test_b


def _cycled(f: TranslationFeatures, name: str) -> torch.Tensor:
    out = getattr(f.translations, name)
    if out is None:
        raise UserError(f"{name} needs the translator pair itself (both directions), not stored translations")
    return out


def cycle_error(f: TranslationFeatures, domain: str) -> float:
    return float((_cycled(f, f"cycle_{domain}").double() - _inputs(f, domain).double()).abs().mean())


def stego_gap(f: TranslationFeatures, domain: str) -> float:
    noisy = float((_cycled(f, f"stego_{domain}").double() - _inputs(f, domain).double()).abs().mean())
    return noisy - cycle_error(f, domain)


INF = math.inf
_T = dict(features="translation", num_fake=WHOLE_SPLIT)  # pixels
_TD = dict(features="translation-domain", num_fake=WHOLE_SPLIT)  # classifier features
for _d, _arrow in (("ab", "A -> B"), ("ba", "B -> A")):
    for _m in (
        Metric(name=f"fid_{_d}", fn=lambda f, d=_d: fid(f, d), higher_is_better=False, num_real=WHOLE_SPLIT,
               range=(0, INF), **_TD, description=f"{_arrow}: FID of the translations against the target test split, "
                                                 f"target domain's classifier features"),
        Metric(name=f"fid_{_d}_ci", fn=lambda f, d=_d: fid_ci(f, d), higher_is_better=False, num_real=WHOLE_SPLIT,
               range=(0, INF), **_TD, description=f"{_arrow}: half-width of fid_{_d}'s 95 % bootstrap interval "
                                                 f"(a spread, not a quality)"),
        Metric(name=f"kid_{_d}", fn=lambda f, d=_d: kid_value(f, d), higher_is_better=False, num_real=WHOLE_SPLIT,
               **_TD, description=f"{_arrow}: KID, 100 subsets of min(1000, test split), classifier features"),
        Metric(name=f"mse_{_d}", fn=lambda f, d=_d: mse(f, d), higher_is_better=False, num_real=WHOLE_SPLIT,
               range=(0, 4), **_T, description=f"{_arrow}: mean squared error against the hidden truth, per pixel"),
        Metric(name=f"ssim_{_d}", fn=lambda f, d=_d: mean_ssim(f, d), higher_is_better=True, num_real=WHOLE_SPLIT,
               range=(-1, 1), **_T, description=f"{_arrow}: SSIM against the hidden truth"),
        Metric(name=f"label_{_d}", fn=lambda f, d=_d: label_accuracy(f, d), higher_is_better=True,
               num_real=WHOLE_SPLIT, range=(0, 1), **_TD,
               description=f"{_arrow}: label preservation, target classifier's accuracy on the translations"),
        Metric(name=f"class_kl_{_d}", fn=lambda f, d=_d: class_kl(f, d), higher_is_better=False,
               num_real=WHOLE_SPLIT, range=(0, INF), **_TD,
               description=f"{_arrow}: KL(predicted class histogram || test label histogram), nats"),
    ):
        register(_m)
for _s, _other in (("a", "b"), ("b", "a")):
    for _m in (
        Metric(name=f"cycle_{_s}", fn=lambda f, s=_s: cycle_error(f, s), higher_is_better=False, num_real=WHOLE_SPLIT,
               range=(0, 2), **_T, description=f"cycle error: mean |{_s.upper()} -> {_other.upper()} -> "
                                               f"{_s.upper()} - input| on {_s.upper()}'s test split"),
        Metric(name=f"stego_{_s}", fn=lambda f, s=_s: stego_gap(f, s), higher_is_better=False, num_real=WHOLE_SPLIT,
               range=(-2, 2), **_T, description=f"steganography probe: growth of cycle_{_s} when noise (std 0.03) "
                                                f"is added between the translators"),
    ):
        register(_m)
