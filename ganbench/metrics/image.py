"""Image metrics: the math of ``ganbench.metrics`` on domain-classifier and Inception features.

Three feature extractors feed them (see ``ganbench.features.domain`` and ``ganbench.features.inception``):

- ``domain`` (MNIST family, offline): features and class probabilities of the dataset's own
  classifier. ``fid_domain``, ``cs``, ``classes``, ``class_kl``, ``precision``, ``recall``,
  ``density``, ``coverage``, and ``fid_intra`` for conditional generators. 10,000 generated
  samples against the whole reference (test) split.
- ``stacked`` (Stacked MNIST): the three channels read as digits. ``sm_modes`` and ``sm_kl`` over
  the 1,000 digit triples, 26,000 generated samples. They have their own names, not ``modes`` and
  ``kl``: a metric's name pins its protocol, and the 2-D ``modes`` counts something else.
- ``inception`` (any image data; needs the weights file): ``fid``, ``is`` and ``is_std``, ``kid`` and
  ``kid_std``. 10,000 generated against the first 10,000 images of the reference split.

Metrics that share a computation (IS and its spread, KID and its spread, the four k-NN metrics)
compute it once per feature set.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy.special import xlogy

from ganbench.errors import UserError
from ganbench.features import inception
from ganbench.features.domain import DomainFeatures, StackedLabels
from ganbench.features.inception import InceptionSet
from ganbench.metrics.base import Metric, register
from ganbench.metrics.frechet import fid as _fid
from ganbench.metrics.inception_score import inception_score, inception_score_from_probs
from ganbench.metrics.kernel import kid as _kid
from ganbench.metrics.prdc import K_PR, prdc

NUM_FAKE_DOMAIN = 10_000
NUM_FAKE_STACKED = 26_000  # Srivastava et al. 2017 (VEEGAN) / Metz et al. 2017
NUM_FAKE_INCEPTION = 10_000
WHOLE_SPLIT = -1  # num_real of metrics against the whole reference split (its size is in each row's protocol)
STACKED_MODES = 1000
IS_SPLITS = 10
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
SEED = 2020  # IS shuffle and KID subsets (torch-fidelity's default)


def memo(features, key: str, compute: Callable):
    """``compute()`` once per feature set: metrics that share a computation read one result."""
    if key not in features.memo:
        features.memo[key] = compute()
    return features.memo[key]


def fid_checked(fake, real, what: str = "FID") -> float:
    """FID, with a warning when a side has fewer samples than feature dimensions."""
    n, dim = min(len(fake), len(real)), np.shape(fake)[1]
    if n <= dim:
        warnings.warn(f"{what} on {n} samples of {dim}-dimensional features: the covariance is rank-deficient "
                      f"(fewer samples than dimensions), so the value is strongly biased; use more samples",
                      stacklevel=2)
    return _fid(fake, real)


# ----------------------------------------------------------------------------------------------
# domain features


def fid_domain(f: DomainFeatures) -> float:
    return fid_checked(f.fake, f.real, "fid_domain")


def classifier_score(f: DomainFeatures) -> float:
    """exp(E KL(p(y|x) || p(y))) of the classifier's probabilities, mean over 10 splits."""
    return memo(f, "cs", lambda: inception_score_from_probs(f.fake_probs, splits=IS_SPLITS, seed=SEED)).mean


def predicted_histogram(f: DomainFeatures) -> np.ndarray:
    """(K,) counts of the generated samples per predicted class."""
    return np.bincount(f.fake_probs.argmax(axis=1), minlength=f.num_classes)


def classes_covered(f: DomainFeatures) -> float:
    return float(np.count_nonzero(predicted_histogram(f)))


def class_kl(f: DomainFeatures) -> float:
    """KL(p_generated || p_real) in nats over the classes: predicted labels against true labels."""
    p = predicted_histogram(f) / len(f.fake_probs)
    q = np.bincount(f.real_labels, minlength=f.num_classes) / len(f.real_labels)
    if (q[p > 0] == 0).any():  # a predicted class absent from the reference split
        return float("inf")
    return float(np.sum(xlogy(p, p) - xlogy(p, np.where(q > 0, q, 1.0))))


def _prdc(f: DomainFeatures):
    return memo(f, "prdc", lambda: prdc(f.fake, f.real))


def fid_intra(f: DomainFeatures) -> float:
    """Mean over classes c of the FID between generated samples i with i mod K = c (the labels
    that ``evaluate.generate`` gives a conditional generator) and the real samples of class c."""
    fids = []
    for c in range(f.num_classes):
        real = f.real[f.real_labels == c]
        fake = f.fake[c::f.num_classes]
        if len(real) < 2 or len(fake) < 2:
            raise UserError(f"fid_intra needs at least 2 generated and 2 real samples of class {c}, "
                            f"got {len(fake)} and {len(real)}")
        fids.append(fid_checked(fake, real, f"fid_intra (class {c})"))
    return float(np.mean(fids))


# ----------------------------------------------------------------------------------------------
# Stacked MNIST


def stacked_modes(s: StackedLabels) -> float:
    """Distinct digit triples among the generated samples (out of 1,000)."""
    return float(len(np.unique(s.triples)))


def stacked_kl(s: StackedLabels) -> float:
    """KL(p || uniform over 1,000 triples) in nats, p the histogram of the generated triples."""
    p = np.bincount(s.triples, minlength=STACKED_MODES) / len(s.triples)
    p = p[p > 0]
    return float(np.sum(p * np.log(p * STACKED_MODES)))


# ----------------------------------------------------------------------------------------------
# Inception features


def _is(f: InceptionSet):
    return memo(f, "is", lambda: inception_score(f.fake_logits, splits=IS_SPLITS, seed=SEED))


def _kid_result(f: InceptionSet):
    return memo(f, "kid", lambda: _kid(f.fake, f.real, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=SEED))


def image_metrics(fake, real, extractor=None, *, is_splits: int = IS_SPLITS, kid_subsets: int = KID_SUBSETS,
                  kid_subset_size: int = KID_SUBSET_SIZE, seed: int = SEED) -> dict[str, float]:
    """FID, IS (mean, std over splits) and KID (mean, std over subsets) of two image sets.

    ``fake`` and ``real`` are images in [-1, 1], (N, C, H, W), passed through ``extractor`` (an
    ``InceptionFeatures``, default: ``ganbench.features.inception.extractor()``), or feature dicts it has
    already returned ({"2048": ..., "logits_unbiased": ...}), so that one set can be reused. Two
    image sets must have the same size: both get resized by the network, but a difference in size
    is a difference in content that FID would report as one in quality.
    """
    if not isinstance(fake, dict) and not isinstance(real, dict):
        inception.check_same_size(fake, real)
    if not isinstance(fake, dict) or not isinstance(real, dict):
        extractor = extractor or inception.extractor()
    a = fake if isinstance(fake, dict) else extractor(fake)
    b = real if isinstance(real, dict) else extractor(real)
    score = inception_score(a["logits_unbiased"], splits=is_splits, seed=seed)
    k = _kid(a["2048"], b["2048"], subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    return {"fid": fid_checked(a["2048"], b["2048"]), "is": score.mean, "is_std": score.std,
            "kid": k.mean, "kid_std": k.std}


# ----------------------------------------------------------------------------------------------
# the records

INF = math.inf
_DOMAIN = dict(features="domain", num_fake=NUM_FAKE_DOMAIN)
_STACKED = dict(features="stacked", num_fake=NUM_FAKE_STACKED, num_real=0)
_INCEPTION = dict(features="inception", num_fake=NUM_FAKE_INCEPTION)
_REAL = inception.NUM_REAL
MIN_COV = 2  # a covariance (FID, FD)
MIN_KNN = K_PR + 1  # precision, recall, density and coverage, computed together: recall's k-th generated neighbours
for _m in (
    Metric(name="fid_domain", min_fake=MIN_COV, fn=fid_domain, higher_is_better=False, num_real=WHOLE_SPLIT, range=(0, INF), **_DOMAIN,
           description="FID in the domain classifier's feature space (MNIST family)"),
    Metric(name="cs", min_fake=IS_SPLITS, fn=classifier_score, higher_is_better=True, num_real=0, range=(1, INF), **_DOMAIN,
           description="classifier score: the Inception Score with the domain classifier, 10 splits"),
    Metric(name="classes", fn=classes_covered, higher_is_better=True, num_real=0, range=(0, INF), **_DOMAIN,
           description="classes predicted for at least one sample"),
    Metric(name="class_kl", fn=class_kl, higher_is_better=False, num_real=WHOLE_SPLIT, range=(0, INF), **_DOMAIN,
           description="KL(predicted class histogram || real label histogram), nats"),
    Metric(name="precision", min_fake=MIN_KNN, fn=lambda f: _prdc(f).precision, higher_is_better=True, num_real=WHOLE_SPLIT,
           range=(0, 1), **_DOMAIN, description="improved precision, k = 3, domain features"),
    Metric(name="recall", min_fake=MIN_KNN, fn=lambda f: _prdc(f).recall, higher_is_better=True, num_real=WHOLE_SPLIT,
           range=(0, 1), **_DOMAIN, description="improved recall, k = 3, domain features"),
    Metric(name="density", min_fake=MIN_KNN, fn=lambda f: _prdc(f).density, higher_is_better=True, num_real=WHOLE_SPLIT,
           range=(0, INF), **_DOMAIN, description="density, k = 5, domain features"),
    Metric(name="coverage", min_fake=MIN_KNN, fn=lambda f: _prdc(f).coverage, higher_is_better=True, num_real=WHOLE_SPLIT,
           range=(0, 1), **_DOMAIN, description="coverage, k = 5, domain features"),
    Metric(name="fid_intra", min_fake=lambda dataset: MIN_COV * dataset.num_classes,  # generated i is of class i mod K
           fn=fid_intra, higher_is_better=False, num_real=WHOLE_SPLIT, range=(0, INF), **_DOMAIN,
           description="intra-class FID (domain features), mean over classes; conditional generators only"),
    Metric(name="sm_modes", fn=stacked_modes, higher_is_better=True, range=(0, STACKED_MODES), **_STACKED,
           description="Stacked MNIST: digit triples covered (of 1,000)"),
    Metric(name="sm_kl", fn=stacked_kl, higher_is_better=False, range=(0, math.log(STACKED_MODES)), **_STACKED,
           description="Stacked MNIST: KL(triple histogram || uniform), nats"),
    Metric(name="fid", min_fake=MIN_COV, fn=lambda f: fid_checked(f.fake, f.real), higher_is_better=False, num_real=_REAL,
           range=(0, INF), **_INCEPTION, description="FID, torch-fidelity InceptionV3 pool features"),
    Metric(name="is", min_fake=IS_SPLITS, fn=lambda f: _is(f).mean, higher_is_better=True, num_real=0, range=(1, INF), **_INCEPTION,
           description="Inception Score, mean over 10 splits"),
    Metric(name="is_std", min_fake=IS_SPLITS, fn=lambda f: _is(f).std, higher_is_better=False, num_real=0, range=(0, INF), **_INCEPTION,
           description="Inception Score: standard deviation over the 10 splits (a spread, not a quality)"),
    Metric(name="kid", min_fake=KID_SUBSET_SIZE, fn=lambda f: _kid_result(f).mean, higher_is_better=False, num_real=_REAL, **_INCEPTION,
           description="KID, mean over 100 subsets of 1,000"),
    Metric(name="kid_std", min_fake=KID_SUBSET_SIZE, fn=lambda f: _kid_result(f).std, higher_is_better=False, num_real=_REAL, range=(0, INF),
           **_INCEPTION, description="KID: standard deviation over the 100 subsets (a spread, not a quality)"),
):
    register(_m)
