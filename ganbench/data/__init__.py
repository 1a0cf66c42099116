"""Datasets: ``DATASETS`` maps a name to a factory ``fn(cfg) -> Dataset`` (interface in ``base``).

One file per family: ``toy`` (2-D Gaussian mixtures), ``images`` (scikit-learn's digits and the
image base classes), ``mnist`` (MNIST, Fashion-MNIST, Stacked MNIST), ``cifar``, ``folder`` (your
own images), ``pairs`` (translation pairs with a hidden truth). ``checks`` holds the shape and range checks every sample passes.
"""

from __future__ import annotations

from ganbench.data.base import DATASETS, Batch, Dataset, data_root  # noqa: F401
from ganbench.data import toy, images, mnist, cifar, folder, pairs  # noqa: F401,I001  (register the built-in datasets, in this order)
