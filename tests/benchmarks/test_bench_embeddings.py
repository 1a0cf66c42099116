"""DINOv2 and CLIP feature throughput, each paired with the library's own forward pass.

    pytest tests/benchmarks/test_bench_embeddings.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,mean

Same random-weights files (DINOv2 ViT-S/14, CLIP ViT-B/32: the real architectures), same 28 x 28
gray images, batches of 32, one network load outside the timing:

- ``dinov2``: ganbench's extractor (PIL bicubic resize, the DINOv2 code's position embedding)
  against timm's model read by timm's own checkpoint filter (its antialiased position-embedding
  resampling), fed torch's bicubic resize of the same images;
- ``clip``: ganbench's extractor against torch-fidelity's ``FeatureExtractorCLIP`` on the same
  TorchScript file (its TF1 bilinear resize).

The pairs differ only in the resize (and, for DINOv2, the position embedding's interpolation), so
their embeddings must point the same way (cosine similarity > 0.9 per image). Images/s are in
each result's ``extra_info``. With benchmarks disabled (the default run) each case runs once on 4
images, as a plain test.
"""

import numpy as np
import pytest
import torch

from ganbench.features import clip, dinov2
from ganbench.features.inception import to_uint8
from ganbench.features.weights import load_state_dict

BATCH = 32
_FEATURES: dict = {}


def images(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    a, b, c = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1 for _ in range(3))
    return (a * xx + b * yy + c * torch.sin(3 * xx * yy)).clamp(-1, 1)


def ganbench_dinov2(path):
    net = dinov2.DinoV2(path, batch_size=BATCH)
    return lambda x: net(x)


def timm_dinov2(path):
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0).eval()
    model.load_state_dict(checkpoint_filter_fn(load_state_dict(path, "DINOv2"), model))
    mean = torch.tensor(dinov2.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(dinov2.IMAGENET_STD).view(1, 3, 1, 1)

    def run(x):
        out = []
        with torch.inference_mode():
            for chunk in x.split(BATCH):
                u = to_uint8(chunk).float() / 255.0
                u = torch.nn.functional.interpolate(u, size=(224, 224), mode="bicubic").clamp(0, 1)
                out.append(model((u - mean) / std))
        return torch.cat(out).numpy()

    return run


def ganbench_clip(path):
    net = clip.Clip(path, batch_size=BATCH)
    return lambda x: net(x)


def torch_fidelity_clip(path):
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    net = FeatureExtractorCLIP("clip-vit-b-32", ["clip"], feature_extractor_weights_path=str(path))

    def run(x):
        with torch.no_grad():  # as torch_fidelity.utils.get_featuresdict_from_dataset
            return torch.cat([net(to_uint8(chunk))[0] for chunk in x.split(BATCH)]).numpy()

    return run


PAIRS = {"dinov2": (ganbench_dinov2, timm_dinov2), "clip": (ganbench_clip, torch_fidelity_clip)}


@pytest.mark.parametrize("space, which", [("dinov2", 0), ("dinov2", 1), ("clip", 0), ("clip", 1)],
                         ids=["dinov2-ganbench", "dinov2-timm", "clip-ganbench", "clip-torch-fidelity"])
def test_embedding_throughput(benchmark, dinov2_weights, clip_weights, space, which):
    n = 4 if benchmark.disabled else 64
    x = images(n)
    make = PAIRS[space][which]
    extract = make(dinov2_weights if space == "dinov2" else clip_weights)
    benchmark.group = f"{space}-features-{n}-images"
    feats = benchmark.pedantic(extract, args=(x,), rounds=1 if benchmark.disabled else 3, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["images_per_s"] = n / benchmark.stats.stats.min
    assert feats.shape[0] == n and np.isfinite(feats).all()
    _FEATURES[(space, which, n)] = feats
    other = _FEATURES.get((space, 1 - which, n))
    if other is not None:  # the second of the pair: the same directions, up to the resize
        a = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        b = other / np.linalg.norm(other, axis=1, keepdims=True)
        assert (a * b).sum(axis=1).min() > 0.9
