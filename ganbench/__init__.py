"""ganbench: reproducible GAN baselines, sample-quality metrics and comparison tables."""

__version__ = "0.1.0"
