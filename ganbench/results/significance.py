"""Significance tests of one setting's seed values against another's: records in ``TESTS``.

A test takes the seed values x and y, each already signed so that higher is better, and returns
``t``, the two-sided ``p``, Hedges' ``g`` (positive: x better) and ``p_improve`` (the probability
that a seed of x beats a seed of y). ``ganbench table --baseline B --test NAME`` uses it; a plug-in
adds one with ``register(SignificanceTest(...))``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ganbench.registry import Registry


@dataclass(frozen=True, kw_only=True)
class SignificanceTest:
    name: str
    fn: Callable[[object, object], dict]  # (x, y) seed values -> {"t", "p", "g", "p_improve"}
    description: str


TESTS = Registry("significance test", SignificanceTest)


def register(test: SignificanceTest) -> SignificanceTest:
    """Add ``test`` to ``TESTS`` under its name."""
    return TESTS.register(test.name, test)


def welch(x, y) -> dict:
    """Welch's t-test of x against y (seed values), Hedges' g and P(X > Y) over all seed pairs."""
    x = np.asarray(pd.Series(x, dtype=float).dropna())
    y = np.asarray(pd.Series(y, dtype=float).dropna())
    if len(x) < 2 or len(y) < 2:
        return {"t": math.nan, "p": math.nan, "g": math.nan, "p_improve": math.nan}
    if x.var() == 0 and y.var() == 0:  # no spread on either side (e.g. every seed found 8 modes): no t
        t, p = math.nan, (1.0 if x[0] == y[0] else math.nan)
    else:
        with warnings.catch_warnings():  # one side without spread is fine (scipy warns of cancellation)
            warnings.simplefilter("ignore", RuntimeWarning)
            t, p = stats.ttest_ind(x, y, equal_var=False)
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    d = (x.mean() - y.mean()) / pooled if pooled > 0 else math.nan
    g = d * (1 - 3 / (4 * (len(x) + len(y)) - 9))  # Hedges' small-sample correction
    diff = x[:, None] - y[None, :]
    p_improve = float((diff > 0).mean() + 0.5 * (diff == 0).mean())
    return {"t": float(t), "p": float(p), "g": float(g), "p_improve": p_improve}


def mannwhitney(x, y) -> dict:
    """Mann-Whitney U test (two-sided) of x against y, with the same effect sizes as ``welch``."""
    out = welch(x, y)
    x = pd.Series(x, dtype=float).dropna()
    y = pd.Series(y, dtype=float).dropna()
    if len(x) >= 2 and len(y) >= 2:  # scipy's exact null distribution, which assumes no ties (modes tie often)
        out["p"] = float(stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    return out


register(SignificanceTest(name="welch", fn=welch,
                          description="Welch's t-test (unequal variances), two-sided; the default"))
register(SignificanceTest(name="mannwhitney", fn=mannwhitney,
                          description="Mann-Whitney U test, exact, two-sided (no normality assumed; no tie correction)"))
