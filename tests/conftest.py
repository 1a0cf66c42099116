import pytest
import torch

from ganbench.config import RunConfig


@pytest.fixture(scope="session", autouse=True)
def hermetic_cache(tmp_path_factory):
    """Tests never read or write the user's ~/.cache/ganbench: the feature/classifier cache and the
    data root live in a folder of this session (subprocesses inherit the variables); nor does the
    user's GANBENCH_JOBS decide how they run."""
    root = tmp_path_factory.mktemp("ganbench-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANBENCH_CACHE", str(root / "cache"))
        mp.setenv("GANBENCH_DATA", str(root / "data"))
        # `ganbench run` trains in this process unless a test asks for workers (--jobs N, or auto in
        # test_parallel.py): a worker would start torch afresh for every few-step run
        mp.setenv("GANBENCH_JOBS", "1")
        yield root


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """A run small enough to train in well under a second."""
    return RunConfig(steps=30, batch_size=64, width=32, depth=2)


@pytest.fixture
def one_thread():
    """One torch thread for the test (as each run under --jobs auto on the CPU), then the count it had."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """An InceptionV3 weights file with informative random values, shared by the whole session.

    The real weights cannot be downloaded in tests; numbers on this file mean nothing by
    themselves, but ganbench and torch-fidelity must agree on them.
    """
    from ganbench.features.inception import make_random_weights

    path = tmp_path_factory.mktemp("inception") / "random-inception-v3.pth"
    make_random_weights(path)
    return path


@pytest.fixture(scope="session")
def dinov2_weights(tmp_path_factory):
    """A DINOv2 ViT-S/14 checkpoint in the published format (518 x 518 position embedding,
    ``mask_token``) with random values: the real architecture, offline."""
    from ganbench.features.dinov2 import make_random_weights

    path = tmp_path_factory.mktemp("dinov2") / "random-dinov2-vits14.pth"
    make_random_weights(path, "vit-s-14")
    return path


@pytest.fixture(scope="session")
def clip_weights(tmp_path_factory):
    """A CLIP ViT-B/32 image encoder with random values, saved as a TorchScript archive like
    OpenAI's published files."""
    from ganbench.features.clip import make_random_weights

    path = tmp_path_factory.mktemp("clip") / "random-clip-vit-b-32.pt"
    make_random_weights(path, "vit-b-32", torchscript=True)
    return path
