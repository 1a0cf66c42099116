import pytest
import torch

from ganbench.config import RunConfig


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A run small enough to train in well under a second."""
    return RunConfig(steps=30, batch_size=64, width=32, depth=2)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")
